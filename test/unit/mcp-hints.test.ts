import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configYaml, startHarness, type Harness } from './mcp-harness.js';

let h: Harness;

beforeEach(async () => {
  h = await startHarness();
});

afterEach(async () => {
  await h.close();
});

/** Every failure the agent and group tools answer: [what, tool, args, setup]. Each must say what to do next. */
const ENVELOPES: [string, string, Record<string, unknown>, (h: Harness) => void][] = [
  ['no agents configured', 'list_agents', {}, () => undefined],
  ['unknown agent (inspect)', 'inspect_agent', { name: 'ghost' }, withAgent],
  ['unknown agent, none configured', 'inspect_agent', { name: 'ghost' }, () => undefined],
  ['no groups configured', 'list_groups', {}, withAgent],
  ['unknown group', 'inspect_group', { name: 'nope' }, withGroup],
  ['unknown group, none configured', 'inspect_group', { name: 'nope' }, withAgent],
  ['duplicate agent', 'add_agent', { name: 'api', directory: '.', description: 'x' }, withAgent],
  ['invalid agent name', 'add_agent', { name: '-bad', directory: '.' }, () => undefined],
  ['missing directory', 'add_agent', { name: 'x', directory: '/nonexistent/agent-dispatch-test' }, () => undefined],
  ['unknown ~user directory', 'add_agent', { name: 'x', directory: '~nonexistentuser12345/p' }, () => undefined],
  ['negative timeout', 'add_agent', { name: 'x', directory: '.', timeout: -1 }, () => undefined],
  ['negative budget', 'add_agent', { name: 'x', directory: '.', max_budget_usd: -1 }, () => undefined],
  ['flag-like model', 'add_agent', { name: 'x', directory: '.', model: '--dangerously-skip-permissions' }, () => undefined],
  ['flag-like permission mode', 'add_agent', { name: 'x', directory: '.', permission_mode: '-p' }, () => undefined],
  ['two tools in one entry', 'add_agent', { name: 'x', directory: '.', allowed_tools: 'Read(*) Bash' }, () => undefined],
  ['unknown policy', 'add_agent', { name: 'x', directory: '.', policy: 'no-such-policy' }, () => undefined],
  ['policy with error findings', 'add_agent', { name: 'x', directory: '.', policy: 'socket' }, withSocketPolicy],
  ['widening policy', 'update_agent', { name: 'api', policy: 'builder' }, withAgent],
  ['agent not found (update)', 'update_agent', { name: 'ghost', description: 'x' }, withAgent],
  ['nothing to update', 'update_agent', { name: 'api' }, withAgent],
  ['agent not found (remove)', 'remove_agent', { name: 'ghost' }, withAgent],
  ['schema: over-long name', 'add_agent', { name: 'a'.repeat(1_000_000), directory: '.' }, () => undefined],
  ['schema: wrong type', 'update_agent', { name: 'api', timeout: 'soon' }, withAgent],
  ['broken agents.yaml', 'list_agents', {}, (h) => h.writeConfig('agents: [\n')],
];

function withAgent(h: Harness): void {
  h.writeConfig(configYaml({ agents: { api: { directory: h.project('api') } } }));
}

function withGroup(h: Harness): void {
  h.writeConfig(configYaml({ agents: { api: { directory: h.project('api') } }, groups: { team: { members: [{ agent: 'api' }] } } }));
}

function withSocketPolicy(h: Harness): void {
  mkdirSync(join(h.configDir, 'policies'), { recursive: true });
  writeFileSync(join(h.configDir, 'policies', 'socket.yaml'), 'version: 1\nmounts:\n  - {source: /var/run/docker.sock, mode: rw}\n');
}

describe('every error envelope says what to do next', () => {
  it.each(ENVELOPES)('%s (%s)', async (_what, tool, args, setup) => {
    setup(h);
    const resolved = args['directory'] === '.' ? { ...args, directory: h.project('x') } : args;
    const { json, isError } = await h.call(tool, resolved);
    expect(isError).toBe(true);
    expect(typeof json.error).toBe('string');
    expect(typeof json.hint).toBe('string');
    expect(json.hint.trim().length).toBeGreaterThan(10);
  });

  it('unknown agent points at list_agents, and at add_agent when none is configured', async () => {
    withAgent(h);
    expect((await h.call('inspect_agent', { name: 'ghost' })).json).toEqual({ error: "Unknown agent: 'ghost'. Available: api", hint: expect.stringContaining('list_agents') });
    h.writeConfig(configYaml({ agents: {} }));
    expect((await h.call('inspect_agent', { name: 'ghost' })).json.hint).toContain('add_agent(name, directory)');
  });

  it('unknown group points at list_groups', async () => {
    withGroup(h);
    expect((await h.call('inspect_group', { name: 'nope' })).json).toEqual({ error: "Unknown group: 'nope'. Available: team", hint: expect.stringContaining('list_groups') });
  });

  it('a duplicate agent says how to change or replace it', async () => {
    withAgent(h);
    const { json } = await h.call('add_agent', { name: 'api', directory: h.project('api2') });
    expect(json.hint).toContain('update_agent');
  });
});
