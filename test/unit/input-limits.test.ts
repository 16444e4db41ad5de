import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { LIMITS } from '../../src/limits.js';
import { run, setupEnv, type Env } from './cli-harness.js';
import { configYaml, startHarness, type Harness } from './mcp-harness.js';

const MB = 1024 * 1024;
const huge = (c = 'a') => c.repeat(MB);

describe('MCP: every string input of the agent and group tools is bounded', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await startHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  // [tool, field, limit]: a 1 MB value is refused by the input schema, naming the field and the limit.
  it.each([
    ['add_agent', 'name', LIMITS.name],
    ['add_agent', 'directory', LIMITS.path],
    ['add_agent', 'description', LIMITS.description],
    ['add_agent', 'model', LIMITS.model],
    ['add_agent', 'permission_mode', LIMITS.permission_mode],
    ['add_agent', 'allowed_tools', LIMITS.csv],
    ['add_agent', 'disallowed_tools', LIMITS.csv],
    ['add_agent', 'capabilities', LIMITS.csv],
    ['add_agent', 'risky_capabilities', LIMITS.csv],
    ['add_agent', 'policy', LIMITS.policy],
    ['update_agent', 'name', LIMITS.name],
    ['update_agent', 'model', LIMITS.model],
    ['update_agent', 'permission_mode', LIMITS.permission_mode],
    ['update_agent', 'description', LIMITS.description],
    ['update_agent', 'policy', LIMITS.policy],
    ['remove_agent', 'name', LIMITS.name],
    ['inspect_agent', 'name', LIMITS.name],
    ['inspect_group', 'name', LIMITS.name],
  ] as const)('%s %s: 1 MB is refused (limit %i), nothing written, the value not echoed', async (tool, field, limit) => {
    const args: Record<string, unknown> = { name: 'api', directory: h.project('api'), [field]: huge() };
    const { json, isError, text } = await h.call(tool, args);
    expect(isError).toBe(true);
    expect(json.error).toContain(`${field} must be at most ${limit} characters (got ${MB})`);
    expect(json.hint).toBeTruthy();
    expect(text.length).toBeLessThan(2000);
    expect(h.configBytes()).toBeUndefined();
  });

  it('a value at the limit is accepted', async () => {
    const { isError } = await h.call('add_agent', { name: 'n'.repeat(LIMITS.name), directory: h.project('api'), description: 'd'.repeat(LIMITS.description), model: 'm'.repeat(LIMITS.model) });
    expect(isError).toBe(false);
    expect(h.loadedConfig().agents['n'.repeat(LIMITS.name)]?.model).toHaveLength(LIMITS.model);
  });

  it('one tool entry over its limit, or too many entries, is refused naming the field', async () => {
    const long = await h.call('add_agent', { name: 'a', directory: h.project('a'), allowed_tools: `Read,Bash(${'x'.repeat(LIMITS.tool)})` });
    expect(long.json.error).toBe(`allowed_tools entry must be at most ${LIMITS.tool} characters (got ${LIMITS.tool + 6}).`);
    const many = await h.call('add_agent', { name: 'a', directory: h.project('a'), disallowed_tools: Array.from({ length: LIMITS.list_entries + 1 }, (_, i) => `T${i}`).join(',') });
    expect(many.json.error).toBe(`disallowed_tools must have at most ${LIMITS.list_entries} entries.`);
    const label = await h.call('add_agent', { name: 'a', directory: h.project('a'), capabilities: 'c'.repeat(LIMITS.capability + 1) });
    expect(label.json.error).toBe(`capabilities entry must be at most ${LIMITS.capability} characters (got ${LIMITS.capability + 1}).`);
    expect(h.configBytes()).toBeUndefined();
  });

  it('an auto-generated description is cut to the limit, never refused', async () => {
    const dir = h.project('long', { 'CLAUDE.md': `${'word '.repeat(LIMITS.description)}\n` });
    const { json, isError } = await h.call('add_agent', { name: 'long', directory: dir });
    expect(isError).toBe(false);
    expect(json.description).toHaveLength(LIMITS.description);
    expect(json.description.endsWith('…')).toBe(true);
  });
});

describe('agents.yaml: the same limits, with the path of the field', () => {
  let env: Env;
  beforeEach(() => {
    env = setupEnv();
  });
  afterEach(() => {
    env.cleanup();
  });

  it.each([
    ['model', { model: 'm'.repeat(LIMITS.model + 1) }, `agents.api.model: must be at most ${LIMITS.model} characters (got ${LIMITS.model + 1})`],
    ['permission_mode', { permission_mode: 'p'.repeat(LIMITS.permission_mode + 1) }, `agents.api.permission_mode: must be at most ${LIMITS.permission_mode} characters`],
    ['description', { description: 'd'.repeat(LIMITS.description + 1) }, `agents.api.description: must be at most ${LIMITS.description} characters`],
    ['allowed_tools entry', { allowed_tools: ['t'.repeat(LIMITS.tool + 1)] }, `agents.api.allowed_tools.0: must be at most ${LIMITS.tool} characters`],
  ])('%s over its limit makes the config invalid, saying where and how much', (_what, fields, message) => {
    env.writeConfigText(configYaml({ agents: { api: { directory: env.project('api'), ...fields } } }));
    const load = loadConfig(env.configPath);
    expect(load.kind).toBe('invalid');
    expect(load.kind === 'invalid' && load.detail).toContain(message);
  });

  it('an agent name over the limit is refused as a key', () => {
    env.writeConfigText(configYaml({ agents: { ['n'.repeat(LIMITS.name + 1)]: { directory: env.project('api') } } }));
    const load = loadConfig(env.configPath);
    expect(load.kind === 'invalid' && load.detail).toContain(`name must be at most ${LIMITS.name} characters`);
  });

  it('a group shared_context over the limit is refused', () => {
    env.writeConfigText(configYaml({ groups: { team: { shared_context: 's'.repeat(LIMITS.shared_context + 1) } } }));
    const load = loadConfig(env.configPath);
    expect(load.kind === 'invalid' && load.detail).toContain(`groups.team.shared_context: must be at most ${LIMITS.shared_context} characters`);
  });

  it('the CLI refuses an over-long value with the same wording, exit 1, nothing written', async () => {
    const add = await run('add', 'api', env.project('api'), '-d', 'd'.repeat(LIMITS.description + 1));
    expect(add.code).toBe(1);
    expect(add.stderr).toContain(`description must be at most ${LIMITS.description} characters (got ${LIMITS.description + 1}).`);
    const group = await run('group', 'add', 'team', '--shared-context', 's'.repeat(LIMITS.shared_context + 1));
    expect(group.code).toBe(1);
    expect(group.stderr).toContain(`shared_context must be at most ${LIMITS.shared_context} characters`);
    expect(env.configExists()).toBe(false);
  });
});

describe('README documents every limit', () => {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Input limits'));

  it.each(Object.entries(LIMITS))('%s: %i', (name, value) => {
    const row = section.split('\n').find((line) => line.startsWith('|') && line.includes(`\`${name}\``));
    expect(row, `README input limits table has no row for ${name}`).toBeDefined();
    expect(row!.replace(/[ ,_]/g, '')).toContain(`|${value}|`);
  });
});
