import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createServer, INSTRUCTIONS } from '../../src/mcp/server.js';
import { configYaml, startHarness, type Harness } from './mcp-harness.js';

let h: Harness;

beforeEach(async () => {
  h = await startHarness();
});

afterEach(async () => {
  await h.close();
});

/** The original's 21 tools. */
const TOOLS = [
  'add_agent', 'cache_clear', 'cache_stats', 'dispatch', 'dispatch_async', 'dispatch_cancel', 'dispatch_dialogue', 'dispatch_gc',
  'dispatch_jobs', 'dispatch_parallel', 'dispatch_session', 'dispatch_status', 'dispatch_stream', 'dispatch_wait', 'fetch_result',
  'inspect_agent', 'inspect_group', 'list_agents', 'list_groups', 'remove_agent', 'update_agent',
];

describe('registration', () => {
  it('exactly the 21 tools of the original are registered', async () => {
    const { tools } = await h.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(TOOLS);
    for (const tool of tools) expect(tool.description?.length).toBeGreaterThan(10);
  });

  it('tools stay registered (and listable) while the config is broken', async () => {
    h.writeConfig('agents: [unclosed\n');
    const { tools } = await h.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(TOOLS);
  });

  it('the server identifies itself and sends its instructions', () => {
    expect(h.client.getServerVersion()?.name).toBe('agent-dispatch');
    expect(h.client.getInstructions()).toBe(INSTRUCTIONS);
    expect(h.client.getServerCapabilities()?.logging).toBeDefined();
  });

  it('createServer returns the context it uses, bound to the injected env', () => {
    const { context } = createServer({ AGENT_DISPATCH_CONFIG: '/somewhere/else/agents.yaml' });
    expect(context.configPath()).toBe('/somewhere/else/agents.yaml');
    expect(context.configDir()).toBe('/somewhere/else');
  });
});

describe('input that fails the schema gets the JSON envelope, not a raw exception', () => {
  it('inspect_agent with name: 42', async () => {
    const { json, isError, text } = await h.call('inspect_agent', { name: 42 });
    expect(isError).toBe(true);
    expect(Object.keys(json).sort()).toEqual(['error', 'hint']);
    expect(json.error).toContain('name');
    expect(text).not.toContain('    at '); // no stack trace
  });

  it('a missing required argument', async () => {
    const { json, isError } = await h.call('add_agent', { name: 'x' });
    expect(isError).toBe(true);
    expect(json.error).toContain('directory');
    expect(json.hint).toContain('tools/list');
  });

  it('a wrong type for a numeric parameter', async () => {
    const { json, isError } = await h.call('update_agent', { name: 'x', timeout: 'soon' });
    expect(isError).toBe(true);
    expect(json.error).toContain('timeout');
  });

  it('an unknown tool', async () => {
    const { json, isError } = await h.call('dispatch_everything');
    expect(isError).toBe(true);
    expect(json.error).toContain('dispatch_everything');
  });
});

/** Arguments that get each tool as far as loading the config. */
function callsFor(h: Harness): [string, Record<string, unknown>][] {
  return [
    ['list_agents', {}],
    ['inspect_agent', { name: 'api' }],
    ['list_groups', {}],
    ['inspect_group', { name: 'team' }],
    ['add_agent', { name: 'fresh', directory: h.project('fresh') }],
    ['update_agent', { name: 'api', description: 'new' }],
    ['remove_agent', { name: 'api' }],
    ['cache_stats', {}],
    ['cache_clear', {}],
    ['dispatch', { agent: 'api', task: 'x' }],
    ['dispatch_session', { agent: 'api', task: 'x' }],
    ['dispatch_stream', { agent: 'api', task: 'x' }],
  ];
}

const BROKEN: [string, () => string | Buffer, RegExp][] = [
  ['directory: 123 (schema)', () => 'agents:\n  api:\n    directory: 123\n', /has an invalid schema: agents\.api\.directory/],
  ['bad YAML', () => 'agents:\n  api: [unclosed\n', /is not valid YAML/],
  [
    'cp1251 bytes',
    () => Buffer.concat([Buffer.from('agents:\n  api:\n    directory: /tmp\n    description: "'), Buffer.from([0xcf, 0xf0, 0xe8, 0xe2, 0xe5, 0xf2]), Buffer.from('"\n')]),
    /is not valid UTF-8/,
  ],
];

describe('a broken config: every tool answers the envelope and the file is untouched (TestBrokenConfigSurface, TestNonUtf8Config)', () => {
  describe.each(BROKEN)('%s', (_label, content, pattern) => {
    it('every tool that reads the config', async () => {
      h.writeConfig(content());
      const before = h.configBytes();
      for (const [tool, args] of callsFor(h)) {
        const { json, isError } = await h.call(tool, args);
        expect(isError, tool).toBe(true);
        expect(Object.keys(json).sort(), tool).toEqual(['error', 'hint']);
        expect(json.error, tool).toContain(`Config at ${h.configPath} `);
        expect(json.error, tool).toMatch(pattern);
        expect(json.hint, tool).toContain('agent-dispatch doctor');
        expect(h.configBytes(), tool).toEqual(before);
      }
    });
  });

  it('an unknown key is refused too (with a did-you-mean), not silently ignored', async () => {
    h.writeConfig(configYaml({ agents: { api: { directory: h.project('api'), allowed_tool: ['Read'] } } }));
    const { json, isError } = await h.call('list_agents');
    expect(isError).toBe(true);
    expect(json.error).toContain("did you mean 'allowed_tools'");
  });
});

describe('non-ASCII stays raw (TestNonAsciiIsNotEscaped)', () => {
  const RU = 'Сервис платежей: отвечает за счета';

  it('list_agents keeps Cyrillic raw', async () => {
    h.writeConfig(configYaml({ agents: { api: { directory: h.project('проект'), description: RU } } }));
    const { text, json } = await h.call('list_agents');
    expect(text).toContain(RU);
    expect(text).toContain('проект');
    expect(text).not.toMatch(/\\u[0-9a-f]{4}/i);
    expect(json[0].description).toBe(RU);
  });

  it('list_groups / inspect_group keep Cyrillic raw', async () => {
    h.writeConfig(
      configYaml({
        agents: { api: { directory: h.project('api'), description: RU } },
        groups: { team: { description: 'Команда', shared_context: 'Общий контекст', members: [{ agent: 'api', use_for: 'вопросы по оплате' }] } },
      }),
    );
    const listed = await h.call('list_groups');
    expect(listed.text).toContain('Команда');
    expect(listed.text).toContain('вопросы по оплате');
    const inspected = await h.call('inspect_group', { name: 'team' });
    expect(inspected.text).toContain('Общий контекст');
    expect(inspected.text).toContain(RU);
    for (const t of [listed.text, inspected.text]) expect(t).not.toMatch(/\\u[0-9a-f]{4}/i);
  });

  it('error envelopes keep Cyrillic raw', async () => {
    const { text, isError } = await h.call('inspect_agent', { name: 'агент' });
    expect(isError).toBe(true);
    expect(text).toContain("'агент'");
    expect(text).not.toMatch(/\\u[0-9a-f]{4}/i);
  });

  it('add_agent answers a Cyrillic description raw and persists it', async () => {
    const { text } = await h.call('add_agent', { name: 'ru', directory: h.project('ru'), description: RU });
    expect(text).toContain(RU);
    expect(h.loadedConfig().agents['ru']?.description).toBe(RU);
  });

  it('a lone surrogate still produces well-formed, encodable text (escaped)', async () => {
    h.writeConfig(`agents:\n  api:\n    directory: ${h.project('api')}\n    description: "bad \\ud800 end"\n`);
    const { text, json } = await h.call('list_agents');
    expect(json[0].description).toBe('bad \ud800 end');
    expect(text).toContain('\\ud800');
    expect(Buffer.from(text, 'utf8').toString('utf8')).toBe(text);
  });
});
