import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUDIT_FILE, appendAudit, lastAuditRecord, type ConfigChangeRecord } from '../../src/dispatch/audit.js';
import { PRESETS_DIR } from '../../src/policy/load.js';
import { run, setupEnv, type Env } from './cli-harness.js';
import { configYaml, startHarness, type Harness } from './mcp-harness.js';

let h: Harness;

beforeEach(async () => {
  h = await startHarness();
});

afterEach(async () => {
  await h.close();
});

function changes(): ConfigChangeRecord[] {
  const path = join(h.configDir, AUDIT_FILE);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as ConfigChangeRecord)
    .filter((r) => r.kind === 'config-change');
}

/** An agent `api` on `policy`, written by hand (the user's own config), with optional settings. */
function seed(policy: string, settings?: Record<string, unknown>): void {
  h.writeConfig(configYaml({ agents: { api: { directory: h.project('api'), policy } }, ...(settings ? { settings } : {}) }));
}

function userPolicy(name: string, text: string): string {
  mkdirSync(join(h.configDir, 'policies'), { recursive: true });
  const path = join(h.configDir, 'policies', `${name}.yaml`);
  writeFileSync(path, text);
  return path;
}

describe('narrow-only (the default): update_agent', () => {
  it('narrowing default → readonly-inspector is accepted and recorded', async () => {
    seed('default');
    const { json, isError } = await h.call('update_agent', { name: 'api', policy: 'readonly-inspector' });
    expect(isError).toBe(false);
    expect(json.fields).toEqual(['policy']);
    expect(h.loadedConfig().agents['api']?.policy).toBe('readonly-inspector');
    const [record] = changes();
    expect(record).toMatchObject({
      kind: 'config-change',
      agent: 'api',
      via: 'mcp',
      tool: 'update_agent',
      policy: { from: 'default', to: 'readonly-inspector', from_hash: expect.stringMatching(/^[0-9a-f]{16}$/), to_hash: expect.stringMatching(/^[0-9a-f]{16}$/) },
      mode: 'narrow-only',
      outcome: 'accepted',
      reason: "no wider than 'default' on any axis",
    });
    expect(Date.parse(record!.time)).not.toBeNaN();
  });

  it('widening default → builder is refused naming the axes and the fix; the file is untouched; the refusal is recorded', async () => {
    seed('default');
    const before = h.configBytes();
    const { json, isError } = await h.call('update_agent', { name: 'api', policy: 'builder', description: 'also this' });
    expect(isError).toBe(true);
    expect(json.error).toContain("update_agent may not change agent 'api' from policy 'default' to 'builder' over MCP");
    expect(json.error).toContain("'builder' is wider than 'default' on repo, network, tools, resources");
    expect(json.error).toContain('repo ro → overlay');
    expect(json.hint).toContain("'agent-dispatch update api --policy builder'");
    expect(json.hint).toContain('settings.mcp_policy_changes.allow');
    expect(h.configBytes()).toEqual(before);
    expect(changes()).toEqual([
      expect.objectContaining({ outcome: 'refused', tool: 'update_agent', policy: expect.objectContaining({ from: 'default', to: 'builder' }), widened: ['repo', 'network', 'tools', 'resources'] }),
    ]);
  });

  it('a user policy that opens the network or passes the credential is refused (the issue: prompt-injected widening)', async () => {
    seed('default');
    userPolicy('wide-open', 'version: 1\ncredentials: env\nnetwork: {mode: open}\n');
    const { json, isError } = await h.call('update_agent', { name: 'api', policy: 'wide-open' });
    expect(isError).toBe(true);
    expect(json.error).toContain('on credentials, network');
    expect(h.loadedConfig().agents['api']?.policy).toBe('default');
  });

  it('the narrowing is judged against the current policy: from readonly-inspector, default is wider', async () => {
    seed('readonly-inspector');
    const { json, isError } = await h.call('update_agent', { name: 'api', policy: 'default' });
    expect(isError).toBe(true);
    expect(json.error).toContain("'default' is wider than 'readonly-inspector' on tools, resources");
  });

  it('a user policy that equals the current one is accepted (same content, other name)', async () => {
    seed('default');
    copyFileSync(join(PRESETS_DIR, 'default.yaml'), join((mkdirSync(join(h.configDir, 'policies'), { recursive: true }), h.configDir), 'policies', 'mine.yaml'));
    expect((await h.call('update_agent', { name: 'api', policy: 'mine' })).isError).toBe(false);
  });

  it('a policy file path is refused unless listed, even when narrower (the file could change after the check)', async () => {
    seed('default');
    const path = userPolicy('narrow', readFileSync(join(PRESETS_DIR, 'readonly-inspector.yaml'), 'utf8'));
    const { json, isError } = await h.call('update_agent', { name: 'api', policy: path });
    expect(isError).toBe(true);
    expect(json.error).toContain('a policy file path is only accepted when listed in settings.mcp_policy_changes.allow');
    expect(changes()).toEqual([expect.objectContaining({ outcome: 'refused', policy: expect.objectContaining({ to: path }) })]);
  });

  it('a policy listed in settings.mcp_policy_changes.allow is accepted even when wider', async () => {
    seed('default', { mcp_policy_changes: { mode: 'narrow-only', allow: ['builder'] } });
    const { isError } = await h.call('update_agent', { name: 'api', policy: 'builder' });
    expect(isError).toBe(false);
    expect(h.loadedConfig().agents['api']?.policy).toBe('builder');
    expect(changes()).toEqual([expect.objectContaining({ outcome: 'accepted', reason: 'listed in settings.mcp_policy_changes.allow' })]);
  });

  it('a current policy that no longer loads cannot be shown narrower: refused', async () => {
    userPolicy('gone-bad', 'version: 1\n');
    seed('gone-bad');
    userPolicy('gone-bad', 'version: 1\nrepo: sideways\n');
    const { json, isError } = await h.call('update_agent', { name: 'api', policy: 'readonly-inspector' });
    expect(isError).toBe(true);
    expect(json.error).toContain("the current policy 'gone-bad' does not load");
  });

  it('updates that do not touch the policy are not gated and not recorded', async () => {
    seed('default');
    expect((await h.call('update_agent', { name: 'api', description: 'new' })).isError).toBe(false);
    expect(changes()).toEqual([]);
  });
});

describe('narrow-only: add_agent is judged against the default policy', () => {
  it("no policy → 'default', accepted and recorded", async () => {
    const { isError } = await h.call('add_agent', { name: 'web', directory: h.project('web'), description: 'w' });
    expect(isError).toBe(false);
    expect(changes()).toEqual([expect.objectContaining({ tool: 'add_agent', agent: 'web', policy: expect.objectContaining({ to: 'default' }), outcome: 'accepted', reason: 'the default policy' })]);
    expect(changes()[0]!.policy).not.toHaveProperty('from');
  });

  it('a narrower preset is accepted; a wider one refused with nothing written', async () => {
    expect((await h.call('add_agent', { name: 'ro', directory: h.project('ro'), policy: 'readonly-inspector' })).isError).toBe(false);
    const before = h.configBytes();
    const { json, isError } = await h.call('add_agent', { name: 'bld', directory: h.project('bld'), policy: 'builder' });
    expect(isError).toBe(true);
    expect(json.error).toContain("add_agent may not add agent 'bld' with policy 'builder' over MCP");
    expect(json.hint).toContain("'agent-dispatch add bld <directory> --policy builder'");
    expect(h.configBytes()).toEqual(before);
    expect(changes().map((r) => r.outcome)).toEqual(['accepted', 'refused']);
  });

  it("a user's own default policy is the baseline (the one every new agent gets)", async () => {
    userPolicy('default', readFileSync(join(PRESETS_DIR, 'builder.yaml'), 'utf8'));
    expect((await h.call('add_agent', { name: 'bld', directory: h.project('bld'), policy: 'builder' })).isError).toBe(false);
  });
});

describe("mode 'none' and 'any'", () => {
  it('none: no policy change at all, not even a narrowing; the default policy is still fine for add_agent', async () => {
    seed('default', { mcp_policy_changes: { mode: 'none' } });
    const narrowed = await h.call('update_agent', { name: 'api', policy: 'readonly-inspector' });
    expect(narrowed.isError).toBe(true);
    expect(narrowed.json.error).toContain("settings.mcp_policy_changes.mode is 'none'");
    expect((await h.call('add_agent', { name: 'web', directory: h.project('web'), description: 'w' })).isError).toBe(false);
    expect((await h.call('add_agent', { name: 'ro', directory: h.project('ro'), policy: 'readonly-inspector' })).isError).toBe(true);
    expect(changes().map((r) => [r.tool, r.outcome, r.mode])).toEqual([
      ['update_agent', 'refused', 'none'],
      ['add_agent', 'accepted', 'none'],
      ['add_agent', 'refused', 'none'],
    ]);
  });

  it('any: a widening is accepted, and still recorded', async () => {
    seed('default', { mcp_policy_changes: { mode: 'any' } });
    expect((await h.call('update_agent', { name: 'api', policy: 'builder' })).isError).toBe(false);
    expect(changes()).toEqual([expect.objectContaining({ outcome: 'accepted', mode: 'any', reason: "settings.mcp_policy_changes.mode is 'any'" })]);
  });
});

describe('the audit log', () => {
  it('an accepted change that cannot be recorded is not made', async () => {
    seed('default');
    mkdirSync(join(h.configDir, AUDIT_FILE));
    const before = h.configBytes();
    const { json, isError } = await h.call('update_agent', { name: 'api', policy: 'readonly-inspector' });
    expect(isError).toBe(true);
    expect(json.error).toContain('could not record the policy change');
    expect(json.hint).toContain('Nothing was changed');
    expect(h.configBytes()).toEqual(before);
  });

  it("config-change records do not count as an agent's last dispatch", async () => {
    seed('default');
    appendAudit(h.configDir, { time: '2026-01-01T00:00:00Z', job: 'j1', agent: 'api', success: true, duration_ms: 5 });
    await h.call('update_agent', { name: 'api', policy: 'readonly-inspector' });
    expect(lastAuditRecord(h.configDir, 'api')).toMatchObject({ job: 'j1' });
    expect((await h.call('inspect_agent', { name: 'api', preview_lines: 0 })).json.last_dispatch).toMatchObject({ time: '2026-01-01T00:00:00Z' });
  });
});

describe('the CLI is the user\'s own hand: not gated, not recorded as an MCP change', () => {
  let env: Env;
  beforeEach(() => {
    env = setupEnv();
  });
  afterEach(() => {
    env.cleanup();
  });

  it('add --policy builder and update --policy with an open-network file work', async () => {
    const dir = env.project('bld');
    expect((await run('add', 'bld', dir, '-d', 'b', '--policy', 'builder')).code).toBe(0);
    mkdirSync(join(env.stateDir, 'policies'), { recursive: true });
    writeFileSync(join(env.stateDir, 'policies', 'open.yaml'), 'version: 1\ncredentials: env\nnetwork: {mode: open}\n');
    const r = await run('update', 'bld', '--policy', 'open');
    expect(r.code, r.all).toBe(0);
    expect(env.config().agents['bld']!['policy']).toBe('open');
    expect(existsSync(join(env.stateDir, AUDIT_FILE))).toBe(false);
  });
});
