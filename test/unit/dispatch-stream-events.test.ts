import { describe, expect, it } from 'vitest';
import { progressFromLine } from '../../src/dispatch/stream-events.js';

const assistant = (content: unknown): string => JSON.stringify({ type: 'assistant', message: { role: 'assistant', content }, session_id: 's' });

describe('progressFromLine (TestDispatchStream progress)', () => {
  it('forwards assistant text', () => {
    expect(progressFromLine(assistant([{ type: 'text', text: 'Looking at the logs' }]))).toEqual([{ kind: 'text', message: 'Looking at the logs' }]);
  });

  it('forwards tool use as "Using tool: <name>"', () => {
    expect(progressFromLine(assistant([{ type: 'tool_use', id: 'toolu_1', name: 'Read', input: { path: 'x' } }]))).toEqual([
      { kind: 'tool', message: 'Using tool: Read' },
    ]);
  });

  it('keeps block order across text and tools', () => {
    const events = progressFromLine(
      assistant([
        { type: 'text', text: 'First' },
        { type: 'tool_use', name: 'mcp__db__query' },
        { type: 'thinking', thinking: 'hidden' },
        { type: 'text', text: 'Then' },
      ]),
    );
    expect(events.map((e) => e.message)).toEqual(['First', 'Using tool: mcp__db__query', 'Then']);
  });

  it('truncates text to 500 characters and tool names to 100', () => {
    const [text] = progressFromLine(assistant([{ type: 'text', text: 'a'.repeat(2000) }]));
    expect(text!.message).toHaveLength(500);
    const [tool] = progressFromLine(assistant([{ type: 'tool_use', name: 'T'.repeat(1000) }]));
    expect(tool!.message).toBe(`Using tool: ${'T'.repeat(100)}`);
  });

  it('truncation never splits a surrogate pair', () => {
    const [text] = progressFromLine(assistant([{ type: 'text', text: 'a' + '😀'.repeat(600) }]));
    expect([...text!.message]).toHaveLength(500);
    expect(text!.message.endsWith('😀')).toBe(true);
  });

  it('a tool with no usable name shows "?"', () => {
    for (const block of [{ type: 'tool_use' }, { type: 'tool_use', name: '' }, { type: 'tool_use', name: null }, { type: 'tool_use', name: { x: 1 } }]) {
      expect(progressFromLine(assistant([block]))).toEqual([{ kind: 'tool', message: 'Using tool: ?' }]);
    }
  });

  it('skips empty and non-string text', () => {
    expect(progressFromLine(assistant([{ type: 'text', text: '' }, { type: 'text', text: '  \n' }, { type: 'text', text: 42 }, { type: 'text' }]))).toEqual([]);
  });

  it('ignores every other event type', () => {
    for (const line of [
      JSON.stringify({ type: 'system', subtype: 'init', session_id: 's' }),
      JSON.stringify({ type: 'user', message: { content: [{ type: 'tool_result', content: [{ type: 'text', text: 'x' }] }] } }),
      JSON.stringify({ type: 'result', result: 'done', message: { content: [{ type: 'text', text: 'x' }] } }),
      JSON.stringify({ type: 'system', subtype: 'api_retry', attempt: 1, error: 'authentication_failed' }),
    ]) {
      expect(progressFromLine(line)).toEqual([]);
    }
  });

  it('passes replacement characters from undecodable bytes through', () => {
    expect(progressFromLine(assistant([{ type: 'text', text: 'caf\uFFFD' }]))).toEqual([{ kind: 'text', message: 'caf\uFFFD' }]);
  });

  it('caps the events one line can produce', () => {
    const blocks = Array.from({ length: 10_000 }, () => ({ type: 'tool_use', name: 'Bash' }));
    expect(progressFromLine(assistant(blocks)).length).toBeLessThanOrEqual(50);
  });
});

describe('progressFromLine on hostile lines (Appendix A #4)', () => {
  it.each([
    '',
    '   ',
    'not json',
    '{"type":"assistant"',
    '\uFFFD\uFFFD\uFFFD',
    'null',
    '42',
    '"assistant"',
    '[{"type":"assistant"}]',
    '{"type":"assistant"}',
    '{"type":"assistant","message":null}',
    '{"type":"assistant","message":"text"}',
    '{"type":"assistant","message":[1,2]}',
    '{"type":"assistant","message":{}}',
    '{"type":"assistant","message":{"content":null}}',
    '{"type":"assistant","message":{"content":"just text"}}',
    '{"type":"assistant","message":{"content":{"type":"text","text":"x"}}}',
    '{"type":"assistant","message":{"content":[null,1,"s",[],true]}}',
    '{"type":["assistant"],"message":{"content":[{"type":"text","text":"x"}]}}',
    '{"__proto__":{"type":"assistant"},"message":{"content":[{"type":"text","text":"x"}]}}',
  ])('%j yields no events and does not throw', (line) => {
    expect(progressFromLine(line)).toEqual([]);
  });

  it('non-string input does not throw', () => {
    for (const value of [undefined, null, 42, {}, []]) expect(progressFromLine(value as unknown as string)).toEqual([]);
  });

  it('good blocks survive next to bad ones', () => {
    const line = '{"type":"assistant","message":{"content":[null,{"type":"text","text":"ok"},7,{"type":"tool_use","name":"Grep"}]}}';
    expect(progressFromLine(line)).toEqual([
      { kind: 'text', message: 'ok' },
      { kind: 'tool', message: 'Using tool: Grep' },
    ]);
  });

  it('tolerates CRLF and surrounding whitespace', () => {
    expect(progressFromLine(`  ${assistant([{ type: 'text', text: 'hi' }])}\r\n`)).toEqual([{ kind: 'text', message: 'hi' }]);
  });
});
