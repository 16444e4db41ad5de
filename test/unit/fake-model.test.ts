/**
 * The scripted fake of the Anthropic Messages API, spoken to over HTTP: routes, the directive script
 * (tool_use steps, recall, json, sleep), side requests, both wire formats, the request log, close().
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIRECTIVE, startFakeModel, type FakeModel, type FakeModelRequest } from '../../src/selftest/fake-model.js';
import { parseDirectives } from '../../src/selftest/fake-model-script.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function send(url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const req = request(`${url}${path}`, { method, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (data += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(text);
  });
}

type Block = { type: string; text?: string; id?: string; name?: string; input?: Record<string, unknown> };
interface Message {
  id: string;
  model: string;
  role: string;
  content: Block[];
  stop_reason: string;
  usage: { input_tokens: number; output_tokens: number };
}

const TOOLS = [{ name: 'Bash', description: 'run a command', input_schema: { type: 'object' } }];
const REMINDER = { type: 'text', text: '<system-reminder>\nToday is a day.\n</system-reminder>\n\n' };

function user(text: string): unknown {
  return { role: 'user', content: [REMINDER, { type: 'text', text }] };
}

function toolResult(id: string, content: unknown): unknown {
  return { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content }] };
}

interface SseEvent {
  event: string;
  data: Record<string, unknown> & { type: string };
}

/** Strict SSE framing: each frame is exactly `event: <type>` then `data: <json>` whose type matches. */
function parseSse(body: string): SseEvent[] {
  expect(body.endsWith('\n\n')).toBe(true);
  return body
    .slice(0, -2)
    .split('\n\n')
    .map((frame) => {
      const lines = frame.split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^event: [a-z_]+$/);
      expect(lines[1]).toMatch(/^data: /);
      const event = lines[0]!.slice('event: '.length);
      const data = JSON.parse(lines[1]!.slice('data: '.length)) as SseEvent['data'];
      expect(data.type).toBe(event);
      return { event, data };
    });
}

/** Rebuilds the message the way an SDK client does from the stream. */
function assemble(events: SseEvent[]): Message {
  const start = events[0]!.data['message'] as Message;
  const content: Block[] = [];
  const partial: string[] = [];
  let stopReason = '';
  let outputTokens = 0;
  for (const { data } of events) {
    const index = data['index'] as number;
    if (data.type === 'content_block_start') {
      content[index] = { ...(data['content_block'] as Block) };
      partial[index] = '';
    } else if (data.type === 'content_block_delta') {
      const delta = data['delta'] as { type: string; text?: string; partial_json?: string };
      if (delta.type === 'text_delta') content[index]!.text += delta.text!;
      else partial[index] += delta.partial_json!;
    } else if (data.type === 'content_block_stop') {
      if (content[index]!.type === 'tool_use') content[index]!.input = JSON.parse(partial[index]!) as Record<string, unknown>;
    } else if (data.type === 'message_delta') {
      stopReason = (data['delta'] as { stop_reason: string }).stop_reason;
      outputTokens = (data['usage'] as { output_tokens: number }).output_tokens;
    }
  }
  return { ...start, content, stop_reason: stopReason, usage: { ...start.usage, output_tokens: outputTokens } };
}

describe('fake model over HTTP', () => {
  let fake: FakeModel;

  beforeAll(async () => {
    fake = await startFakeModel();
  });
  afterAll(async () => {
    await fake.close();
  });

  async function messages(body: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Message> {
    const reply = await send(fake.url, 'POST', '/v1/messages?beta=true', { model: 'claude-test-1', max_tokens: 1000, ...body }, headers);
    expect(reply.status).toBe(200);
    if (body['stream'] === true) {
      expect(reply.headers['content-type']).toBe('text/event-stream');
      return assemble(parseSse(reply.body));
    }
    expect(reply.headers['content-type']).toBe('application/json');
    return JSON.parse(reply.body) as Message;
  }

  function textOf(message: Message): string {
    expect(message.content).toHaveLength(1);
    expect(message.content[0]!.type).toBe('text');
    return message.content[0]!.text!;
  }

  it('answers the probes claude sends and 404s unknown paths with an Anthropic-style error', async () => {
    expect(fake.url).toBe(`http://127.0.0.1:${fake.port}`);
    expect((await send(fake.url, 'HEAD', '/')).status).toBe(200);
    expect((await send(fake.url, 'HEAD', '/api/hello')).status).toBe(200);
    expect((await send(fake.url, 'GET', '/api/hello')).status).toBe(200);
    const missing = await send(fake.url, 'GET', '/v1/nothing-here', undefined, { 'x-api-key': 'k-404' });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body)).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    expect(fake.requests.find((r) => r.apiKey === 'k-404')).toMatchObject({ method: 'GET', path: '/v1/nothing-here', hasTools: false });
  });

  it('replies "fake-model: ok" without directives, echoing the model, with nonzero usage', async () => {
    const message = await messages({ tools: TOOLS, messages: [user('hello')] });
    expect(textOf(message)).toBe('fake-model: ok');
    expect(message).toMatchObject({ type: 'message', role: 'assistant', model: 'claude-test-1', stop_reason: 'end_turn' });
    expect(message.usage.input_tokens).toBeGreaterThan(0);
    expect(message.usage.output_tokens).toBeGreaterThan(0);
  });

  it('streams well-formed SSE in the order of the real API', async () => {
    const reply = await send(fake.url, 'POST', '/v1/messages', {
      model: 'claude-test-2',
      stream: true,
      tools: TOOLS,
      messages: [user('[[reply: streamed text that is long enough to be split]]')],
    });
    const events = parseSse(reply.body).map((e) => e.event);
    expect(events[0]).toBe('message_start');
    expect(events.slice(-2)).toEqual(['message_delta', 'message_stop']);
    expect(events.filter((e) => e === 'content_block_delta').length).toBeGreaterThan(1);
    const message = assemble(parseSse(reply.body));
    expect(message.model).toBe('claude-test-2');
    expect(textOf(message)).toBe('streamed text that is long enough to be split');
    expect(message.stop_reason).toBe('end_turn');
  });

  for (const stream of [false, true]) {
    it(`sequences bash steps as tool_use turns, then reports their results (stream: ${stream})`, async () => {
      const prompt = user(`do it ${DIRECTIVE.bash('echo one')} ${DIRECTIVE.bash('id -u')} ${DIRECTIVE.reply('all done')}`);
      const first = await messages({ stream, tools: TOOLS, messages: [prompt] });
      expect(first.stop_reason).toBe('tool_use');
      expect(first.content).toEqual([
        { type: 'tool_use', id: expect.stringMatching(/^toolu_/), name: 'Bash', input: { command: 'echo one', description: 'scripted step' } },
      ]);
      const id1 = first.content[0]!.id!;
      const history = [prompt, { role: 'assistant', content: first.content }, toolResult(id1, 'one')];
      const second = await messages({ stream, tools: TOOLS, messages: history });
      expect(second.stop_reason).toBe('tool_use');
      expect(second.content[0]!.input).toEqual({ command: 'id -u', description: 'scripted step' });
      const id2 = second.content[0]!.id!;
      expect(id2).not.toBe(id1);
      history.push({ role: 'assistant', content: second.content }, toolResult(id2, [{ type: 'text', text: '0' }]));
      const final = await messages({ stream, tools: TOOLS, messages: history });
      expect(final.stop_reason).toBe('end_turn');
      expect(textOf(final)).toBe('TOOL_RESULT 1:\none\n\nTOOL_RESULT 2:\n0\n\nall done');
    });
  }

  it('reads directives only from the latest prompt, across string and block content and system messages', async () => {
    const history = [
      { role: 'user', content: 'first prompt [[bash: echo old]]' },
      { role: 'assistant', content: [{ type: 'text', text: 'TOOL_RESULT 1:\nold' }] },
      user('[[reply: second]]'),
      { role: 'system', content: 'Available agent types: [[bash: echo never]]' },
    ];
    expect(textOf(await messages({ tools: TOOLS, messages: history }))).toBe('second');
  });

  it('does not take a reminder-only user message after a tool result for a new prompt', async () => {
    const prompt = user('[[bash: echo a]] [[bash: echo b]]');
    const history = [
      prompt,
      { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: { command: 'echo a' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'a' }, REMINDER] },
      { role: 'user', content: [REMINDER] },
    ];
    const next = await messages({ tools: TOOLS, messages: history });
    expect(next.content[0]!.input).toMatchObject({ command: 'echo b' });
  });

  it('recalls the first prompt of the conversation without Claude Code reminders', async () => {
    const history = [
      user('remember the word pelican-7'),
      { role: 'assistant', content: [{ type: 'text', text: 'fake-model: ok' }] },
      user(DIRECTIVE.recall()),
    ];
    expect(textOf(await messages({ tools: TOOLS, messages: history }))).toBe('RECALL: remember the word pelican-7');
  });

  it('answers exactly the JSON of a json directive, also JSON that ends in brackets', async () => {
    const plain = await messages({ tools: TOOLS, messages: [user('[[json: {"a":1}]]')] });
    expect(textOf(plain)).toBe('{"a":1}');
    const nested = await messages({ tools: TOOLS, messages: [user('x [[json: [1,[2,[3]]]]]')] });
    expect(textOf(nested)).toBe('[1,[2,[3]]]');
    const value = { text: 'has ]] and [[ inside', list: [[1]] };
    const helper = await messages({ tools: TOOLS, messages: [user(DIRECTIVE.json(value))] });
    expect(JSON.parse(textOf(helper))).toEqual(value);
  });

  it('gives side requests (no tools) a short answer and never a scripted step', async () => {
    const prompt = user('[[bash: echo side]] [[reply: main only]]');
    const side = await messages({ stream: true, messages: [prompt] });
    expect(textOf(side)).toBe('fake-model: side request');
    const emptyTools = await messages({ tools: [], max_tokens: 1, messages: [prompt] });
    expect(textOf(emptyTools)).toBe('fake-model: side request');
    // claude 2.1.197's session-title request: no tools, a json_schema output format
    const title = await messages({
      tools: [],
      messages: [{ role: 'user', content: [{ type: 'text', text: '<session>\n[[bash: echo side]]\n</session>' }] }],
      output_config: {
        format: {
          type: 'json_schema',
          schema: { type: 'object', properties: { title: { type: 'string' } }, required: ['title'], additionalProperties: false },
        },
      },
    });
    expect(JSON.parse(textOf(title))).toEqual({ title: expect.any(String) });
    expect((await messages({ tools: TOOLS, messages: [prompt] })).content[0]!.type).toBe('tool_use');
  });

  it('logs every request with its credential headers in process; the log is not served over HTTP by default', async () => {
    await messages({ tools: TOOLS, messages: [user('hi')] }, { 'x-api-key': 'key-log-1' });
    await messages({ stream: true, model: 'claude-other', messages: [user('hi')] }, { authorization: 'Bearer tok-log-2' });
    const one = fake.requests.find((r) => r.apiKey === 'key-log-1');
    expect(one).toEqual({ method: 'POST', path: '/v1/messages', apiKey: 'key-log-1', model: 'claude-test-1', stream: false, hasTools: true, at: expect.any(Number) });
    const two = fake.requests.find((r) => r.authorization === 'Bearer tok-log-2');
    expect(two).toMatchObject({ model: 'claude-other', stream: true, hasTools: false });
    expect(two!.apiKey).toBeUndefined();
    const served = await send(fake.url, 'GET', '/_fake/requests');
    expect(served.status).toBe(404);
    expect(served.body).not.toContain('key-log-1');
    expect(served.body).not.toContain('tok-log-2');
  });

  it('serves the log at /_fake/requests only when asked to (exposeLog)', async () => {
    const exposed = await startFakeModel({ exposeLog: true });
    try {
      await send(exposed.url, 'POST', '/v1/messages', { model: 'm', messages: [user('hi')] }, { 'x-api-key': 'key-log-3' });
      const served = JSON.parse((await send(exposed.url, 'GET', '/_fake/requests')).body) as FakeModelRequest[];
      expect(served).toEqual(exposed.requests);
      expect(served.some((r) => r.apiKey === 'key-log-3')).toBe(true);
      expect(served.some((r) => r.path === '/_fake/requests')).toBe(false);
    } finally {
      await exposed.close();
    }
  });

  it('counts tokens and refuses a body that is not JSON', async () => {
    const count = await send(fake.url, 'POST', '/v1/messages/count_tokens', { model: 'm', messages: [user('hello')] });
    expect(JSON.parse(count.body)).toEqual({ input_tokens: expect.any(Number) });
    const bad = await send(fake.url, 'POST', '/v1/messages', 'not json{');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body)).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });

  it('delays the answer by a sleep directive, and only the main loop', async () => {
    const prompt = user(`${DIRECTIVE.sleep(300)} [[reply: woke]]`);
    const started = Date.now();
    expect(textOf(await messages({ tools: TOOLS, messages: [prompt] }))).toBe('woke');
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    const sideStarted = Date.now();
    await messages({ messages: [prompt] });
    expect(Date.now() - sideStarted).toBeLessThan(290);
  });
});

describe('fake model lifecycle', () => {
  it('close() does not wait for a sleeping request', async () => {
    const fake = await startFakeModel({ host: '127.0.0.1', port: 0 });
    const pending = send(fake.url, 'POST', '/v1/messages', { model: 'm', tools: TOOLS, messages: [user('[[sleep: 60000]]')] });
    const outcome = pending.then(
      () => 'answered',
      () => 'connection closed',
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(fake.requests).toHaveLength(1);
    const started = Date.now();
    await fake.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await outcome).toBe('connection closed');
    await fake.close(); // idempotent
  });

  it('listens on the port it is given', async () => {
    const first = await startFakeModel();
    const second = await startFakeModel({ port: first.port + 1 }).catch(() => undefined);
    try {
      if (second) expect(second.url).toBe(`http://127.0.0.1:${first.port + 1}`);
      await expect(startFakeModel({ port: first.port })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await second?.close();
      await first.close();
    }
  });
});

describe('directive text', () => {
  it('round-trips through the parser, falling back to base64 where the plain form cannot carry the value', () => {
    for (const cmd of ['echo hi', '[[ -f /etc/passwd ]] && echo yes', 'echo "]]"', 'printf "a\\nb"\necho two', '  padded  ']) {
      expect(parseDirectives(DIRECTIVE.bash(cmd)).bash).toEqual([cmd]);
      expect(parseDirectives(DIRECTIVE.reply(cmd)).replies).toEqual([cmd]);
    }
    expect(DIRECTIVE.bash('echo hi')).toBe('[[bash: echo hi]]');
    expect(DIRECTIVE.bash('echo "]]"')).toMatch(/^\[\[bash64: [A-Za-z0-9+/=]+\]\]$/);
    expect(DIRECTIVE.json({ a: 1 })).toBe('[[json: {"a":1}]]');
    expect(DIRECTIVE.recall()).toBe('[[recall]]');
    expect(DIRECTIVE.sleep(25.7)).toBe('[[sleep: 25]]');
  });

  it('parses every directive in order and ignores unclosed ones', () => {
    const parsed = parseDirectives('a [[bash: one]] b [[ reply : r1 ]] [[recall]] [[sleep: 10]] [[sleep: 5]] [[bash: two]] [[reply: r2 [[bash: unclosed');
    expect(parsed).toEqual({ bash: ['one', 'two'], replies: ['r1'], recall: true, sleepMs: 15, json: undefined });
  });
});
