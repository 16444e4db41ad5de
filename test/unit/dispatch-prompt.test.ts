import { describe, expect, it } from 'vitest';
import { buildPrompt, JSON_RESPONSE_FOOTER } from '../../src/dispatch/prompt.js';

describe('buildPrompt (TestBuildPrompt)', () => {
  it('a bare task is unchanged', () => {
    expect(buildPrompt({ task: 'fix bug' })).toBe('fix bug');
  });

  it('context without caller or goal uses the simple form, exactly', () => {
    expect(buildPrompt({ task: 'fix bug', context: 'Error: NPE' })).toBe('Context:\nError: NPE\n\nTask:\nfix bug');
  });

  it('caller and goal give the sectioned form', () => {
    expect(buildPrompt({ task: 'fix bug', caller: 'web', goal: 'ship' })).toBe(
      '## Goal\nship\n\n## Dispatched by\nweb\n\n## Task\nfix bug',
    );
  });

  it('all four sections, in order', () => {
    expect(buildPrompt({ task: 't', context: 'c', caller: 'web', goal: 'g' })).toBe(
      '## Goal\ng\n\n## Dispatched by\nweb\n\n## Context\nc\n\n## Task\nt',
    );
  });

  it('caller without goal has no Goal section', () => {
    const prompt = buildPrompt({ task: 't', caller: 'web' });
    expect(prompt).toBe('## Dispatched by\nweb\n\n## Task\nt');
    expect(prompt).not.toContain('## Goal');
  });

  it('goal without caller has no Dispatched by section', () => {
    const prompt = buildPrompt({ task: 't', goal: 'g', context: 'c' });
    expect(prompt).toBe('## Goal\ng\n\n## Context\nc\n\n## Task\nt');
    expect(prompt).not.toContain('## Dispatched by');
  });

  it('empty strings mean "not set"', () => {
    expect(buildPrompt({ task: 't', context: '', caller: '', goal: '', responseFormat: '' })).toBe('t');
    expect(buildPrompt({ task: 't', context: 'c', caller: '', goal: '' })).toBe('Context:\nc\n\nTask:\nt');
  });

  it('a task that looks like a flag is left as is (it goes to stdin, not argv)', () => {
    expect(buildPrompt({ task: '--output-format' })).toBe('--output-format');
  });
});

describe('JSON response footer (TestStructuredResponse, prompt side)', () => {
  it('is absent without response_format, and for other formats', () => {
    expect(buildPrompt({ task: 't' })).not.toContain('## Response format');
    expect(buildPrompt({ task: 't', responseFormat: 'text' })).toBe('t');
  });

  it('is appended to a simple prompt', () => {
    expect(buildPrompt({ task: 'list users', responseFormat: 'json' })).toBe('list users' + JSON_RESPONSE_FOOTER);
  });

  it('is appended to a structured prompt, which then ends with the error fallback', () => {
    const prompt = buildPrompt({ task: 't', caller: 'web', responseFormat: 'json' });
    expect(prompt.startsWith('## Dispatched by\nweb\n\n## Task\nt\n\n## Response format\n')).toBe(true);
    expect(prompt.endsWith('{"error": "<reason>"}.')).toBe(true);
  });

  it('has the original wording', () => {
    expect(JSON_RESPONSE_FOOTER).toBe(
      '\n\n## Response format\nRespond with a single valid JSON value (object, array, or scalar) and nothing else. ' +
        'Do not wrap the JSON in markdown code fences. Do not add any explanatory text before or after. ' +
        'If you cannot satisfy this, respond with {"error": "<reason>"}.',
    );
  });
});
