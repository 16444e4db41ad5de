import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PRESETS_DIR } from '../../src/policy/load.js';
import { configYaml, startHarness, type Harness } from './mcp-harness.js';

let h: Harness;

beforeEach(async () => {
  h = await startHarness();
});

afterEach(async () => {
  await h.close();
});

function agentOnDisk(name: string) {
  return h.loadedConfig().agents[name];
}

describe('add_agent (TestAddRemoveAgent)', () => {
  it('adds an agent with a description generated from CLAUDE.md, and persists it', async () => {
    const dir = h.project('api', { 'CLAUDE.md': '# API\nHandles payments.\n' });
    const { json, isError } = await h.call('add_agent', { name: 'api', directory: dir });
    expect(isError).toBe(false);
    expect(json).toEqual({ added: 'api', directory: dir, description: 'Handles payments.', policy: 'default' });
    const saved = agentOnDisk('api');
    expect(saved).toMatchObject({ directory: dir, description: 'Handles payments.', timeout: 300, policy: 'default' });
    expect(saved?.max_budget_usd ?? null).toBeNull();
    expect(saved?.allowed_tools ?? null).toBeNull();
  });

  it('an explicit description wins over auto-description', async () => {
    const dir = h.project('api', { 'CLAUDE.md': 'auto text' });
    const { json } = await h.call('add_agent', { name: 'api', directory: dir, description: 'Custom' });
    expect(json.description).toBe('Custom');
    expect(agentOnDisk('api')?.description).toBe('Custom');
  });

  it('returns and persists permission fields', async () => {
    const dir = h.project('perm');
    const { json } = await h.call('add_agent', {
      name: 'perm',
      directory: dir,
      permission_mode: 'plan',
      allowed_tools: 'Read, Grep ,,',
      disallowed_tools: 'Bash',
      timeout: 600,
      max_budget_usd: 1.5,
    });
    expect(json).toMatchObject({ permission_mode: 'plan', allowed_tools: ['Read', 'Grep'], disallowed_tools: ['Bash'] });
    expect(agentOnDisk('perm')).toMatchObject({
      permission_mode: 'plan',
      allowed_tools: ['Read', 'Grep'],
      disallowed_tools: ['Bash'],
      timeout: 600,
      max_budget_usd: 1.5,
    });
  });

  it('returns and persists capabilities', async () => {
    const { json } = await h.call('add_agent', {
      name: 'cap',
      directory: h.project('cap'),
      capabilities: 'db, logs',
      risky_capabilities: 'prod-write',
    });
    expect(json.capabilities).toEqual(['db', 'logs']);
    expect(json.risky_capabilities).toEqual(['prod-write']);
    expect(agentOnDisk('cap')).toMatchObject({ capabilities: ['db', 'logs'], risky_capabilities: ['prod-write'] });
  });

  it('omits empty list fields from the answer', async () => {
    const { json } = await h.call('add_agent', { name: 'plain', directory: h.project('plain'), description: 'x' });
    for (const key of ['permission_mode', 'allowed_tools', 'disallowed_tools', 'capabilities', 'risky_capabilities']) expect(json).not.toHaveProperty(key);
  });

  it('rejects an invalid name and writes nothing', async () => {
    const { json, isError } = await h.call('add_agent', { name: '-bad', directory: h.project('x') });
    expect(isError).toBe(true);
    expect(json.error).toContain("Invalid agent name: '-bad'");
    expect(h.configBytes()).toBeUndefined();
  });

  it('rejects a nonexistent directory', async () => {
    const missing = join(h.root, 'nope');
    const { json, isError } = await h.call('add_agent', { name: 'x', directory: missing });
    expect(isError).toBe(true);
    expect(json.error).toBe(`Directory does not exist: ${missing}`);
    expect(h.configBytes()).toBeUndefined();
  });

  it('rejects a file given as the directory', async () => {
    const dir = h.project('f', { 'file.txt': 'x' });
    const { json, isError } = await h.call('add_agent', { name: 'x', directory: join(dir, 'file.txt') });
    expect(isError).toBe(true);
    expect(json.error).toContain('Directory does not exist');
  });

  it('refuses a duplicate and keeps the first', async () => {
    const dir = h.project('dup');
    expect((await h.call('add_agent', { name: 'dup', directory: dir, description: 'first' })).isError).toBe(false);
    const { json, isError } = await h.call('add_agent', { name: 'dup', directory: dir, description: 'second' });
    expect(isError).toBe(true);
    expect(json.error).toContain("Agent 'dup' already exists");
    expect(agentOnDisk('dup')?.description).toBe('first');
  });

  it("'~nonexistentuser12345/proj' → Invalid directory", async () => {
    const { json, isError } = await h.call('add_agent', { name: 'x', directory: '~nonexistentuser12345/proj' });
    expect(isError).toBe(true);
    expect(json.error).toMatch(/^Invalid directory '~nonexistentuser12345\/proj': /);
    expect(h.configBytes()).toBeUndefined();
  });

  describe('timeout and budget at the tool boundary', () => {
    it('rejects a negative timeout and writes no config file', async () => {
      const { json, isError } = await h.call('add_agent', { name: 'x', directory: h.project('x'), timeout: -1 });
      expect(isError).toBe(true);
      expect(json.error).toContain('timeout must be a positive number of seconds (got -1)');
      expect(h.configBytes()).toBeUndefined();
    });

    it('rejects a non-integer timeout through the schema envelope', async () => {
      const { json, isError } = await h.call('add_agent', { name: 'x', directory: h.project('x'), timeout: 1.5 });
      expect(isError).toBe(true);
      expect(json).toEqual({ error: expect.any(String), hint: expect.any(String) });
      expect(h.configBytes()).toBeUndefined();
    });

    it('rejects a negative budget and writes no config file', async () => {
      const { json, isError } = await h.call('add_agent', { name: 'x', directory: h.project('x'), max_budget_usd: -1 });
      expect(isError).toBe(true);
      expect(json.error).toContain('max_budget_usd must be >= 0 (got -1)');
      expect(h.configBytes()).toBeUndefined();
    });

    it('accepts a zero budget (no per-agent cap)', async () => {
      const { isError } = await h.call('add_agent', { name: 'x', directory: h.project('x'), max_budget_usd: 0 });
      expect(isError).toBe(false);
      expect(agentOnDisk('x')?.max_budget_usd ?? null).toBeNull();
    });
  });

  it('an unknown permission mode is added, with a warning sent to the client as a log message', async () => {
    const { isError } = await h.call('add_agent', { name: 'w', directory: h.project('w'), permission_mode: 'yolo' });
    expect(isError).toBe(false);
    await vi.waitFor(() => expect(h.logs.some((l) => l.startsWith("Warning: Unknown permission_mode: 'yolo'"))).toBe(true));
    expect(agentOnDisk('w')?.permission_mode).toBe('yolo');
  });

  describe('policy', () => {
    it("refuses 'nonexistent-policy' with an envelope and writes nothing", async () => {
      const { json, isError } = await h.call('add_agent', { name: 'x', directory: h.project('x'), policy: 'nonexistent-policy' });
      expect(isError).toBe(true);
      expect(json.error).toContain("Policy 'nonexistent-policy' not found");
      expect(json.error).toContain('readonly-inspector');
      expect(h.configBytes()).toBeUndefined();
    });

    it("persists 'readonly-inspector' and list_agents shows it", async () => {
      const { json, isError } = await h.call('add_agent', { name: 'ro', directory: h.project('ro'), policy: 'readonly-inspector' });
      expect(isError).toBe(false);
      expect(json.policy).toBe('readonly-inspector');
      expect(agentOnDisk('ro')?.policy).toBe('readonly-inspector');
      const [entry] = (await h.call('list_agents')).json;
      expect(entry).toMatchObject({ name: 'ro', policy: 'readonly-inspector' });
      expect(entry.policy_summary).toContain('repo ro');
    });

    it("resolves a user policy beside the server's own config (the injected env), not process.env's", async () => {
      mkdirSync(join(h.configDir, 'policies'), { recursive: true });
      copyFileSync(join(PRESETS_DIR, 'readonly-inspector.yaml'), join(h.configDir, 'policies', 'team-policy.yaml'));
      const { json, isError } = await h.call('add_agent', { name: 'tp', directory: h.project('tp'), policy: 'team-policy' });
      expect(json.error).toBeUndefined();
      expect(isError).toBe(false);
      expect(agentOnDisk('tp')?.policy).toBe('team-policy');
      expect((await h.call('list_agents')).json[0]).not.toHaveProperty('policy_error');
    });

    it('refuses an invalid policy file with an envelope', async () => {
      mkdirSync(join(h.configDir, 'policies'), { recursive: true });
      const bad = join(h.configDir, 'policies', 'broken.yaml');
      writeFileSync(bad, 'version: 1\nrepo: sideways\n');
      const { json, isError } = await h.call('add_agent', { name: 'x', directory: h.project('x'), policy: 'broken' });
      expect(isError).toBe(true);
      expect(json.error).toContain("Policy 'broken'");
      expect(json.error).toContain('is invalid');
      expect(h.configBytes()).toBeUndefined();
    });
  });
});

describe('model (add_agent had none: Appendix A 12; validated at the door)', () => {
  const FLAG_MODEL = "model '-x' starts with '-' and would be interpreted as a command-line flag by the claude CLI.";

  it('add_agent persists and returns model; inspect_agent shows it', async () => {
    const { json, isError } = await h.call('add_agent', { name: 'm', directory: h.project('m'), description: 'x', model: 'sonnet' });
    expect(isError).toBe(false);
    expect(json.model).toBe('sonnet');
    expect(agentOnDisk('m')?.model).toBe('sonnet');
    expect((await h.call('inspect_agent', { name: 'm', preview_lines: 0 })).json.model).toBe('sonnet');
  });

  it('add_agent and update_agent refuse a flag-like model with the message the CLI gives; nothing is written', async () => {
    const added = await h.call('add_agent', { name: 'm', directory: h.project('m'), model: '-x' });
    expect(added.isError).toBe(true);
    expect(added.json.error).toBe(FLAG_MODEL);
    expect(added.json.hint).toContain("'none' clears it");
    expect(h.configBytes()).toBeUndefined();
    await h.call('add_agent', { name: 'm', directory: h.project('m'), description: 'x' });
    const before = h.configBytes();
    const updated = await h.call('update_agent', { name: 'm', model: '-x' });
    expect(updated.json.error).toBe(FLAG_MODEL);
    expect(h.configBytes()).toEqual(before);
  });

  it.each([
    ['model', 'son net'],
    ['model', 'a\nb'],
    ['permission_mode', '-p'],
    ['permission_mode', 'plan\t'],
  ])('update_agent %s %j is refused', async (field, value) => {
    await h.call('add_agent', { name: 'm', directory: h.project('m'), description: 'x' });
    const { json, isError } = await h.call('update_agent', { name: 'm', [field]: value });
    expect(isError).toBe(true);
    expect(json.error).toMatch(new RegExp(`^${field} `));
  });
});

describe('remove_agent', () => {
  it('removes an agent; a second remove is "not found"', async () => {
    await h.call('add_agent', { name: 'a', directory: h.project('a') });
    await h.call('add_agent', { name: 'b', directory: h.project('b') });
    const first = await h.call('remove_agent', { name: 'a' });
    expect(first).toMatchObject({ isError: false, json: { removed: 'a' } });
    expect(Object.keys(h.loadedConfig().agents)).toEqual(['b']);
    const again = await h.call('remove_agent', { name: 'a' });
    expect(again.isError).toBe(true);
    expect(again.json.error).toBe("Agent 'a' not found. Available: b");
  });

  it('removing from an empty config is "not found" with (none)', async () => {
    const { json, isError } = await h.call('remove_agent', { name: 'ghost' });
    expect(isError).toBe(true);
    expect(json.error).toBe("Agent 'ghost' not found. Available: (none)");
  });

  it('leaves group membership alone (the member is flagged unknown at read time)', async () => {
    h.writeConfig(
      configYaml({
        agents: { a: { directory: h.project('a') } },
        groups: { team: { description: '', shared_context: '', members: [{ agent: 'a', use_for: '' }] } },
      }),
    );
    await h.call('remove_agent', { name: 'a' });
    expect(h.loadedConfig().groups['team']?.members.map((m) => m.agent)).toEqual(['a']);
    const [group] = (await h.call('list_groups')).json;
    expect(group.members).toEqual([{ agent: 'a', unknown: true }]);
  });
});

describe('update_agent (TestUpdateAgent)', () => {
  beforeEach(async () => {
    await h.call('add_agent', { name: 'api', directory: h.project('api'), description: 'orig' });
  });

  it('updates permission fields, lists them in application order, persists them', async () => {
    const { json, isError } = await h.call('update_agent', {
      name: 'api',
      permission_mode: 'acceptEdits',
      allowed_tools: 'Read,Edit',
      disallowed_tools: 'Bash',
    });
    expect(isError).toBe(false);
    expect(json).toEqual({ updated: 'api', fields: ['permission_mode', 'allowed_tools', 'disallowed_tools'] });
    expect(agentOnDisk('api')).toMatchObject({ permission_mode: 'acceptEdits', allowed_tools: ['Read', 'Edit'], disallowed_tools: ['Bash'] });
  });

  it("'none' clears permission_mode, tool lists and model back to inherit", async () => {
    await h.call('update_agent', { name: 'api', permission_mode: 'plan', allowed_tools: 'Read', disallowed_tools: 'Bash', model: 'opus' });
    const { json } = await h.call('update_agent', { name: 'api', permission_mode: 'none', allowed_tools: 'NONE', disallowed_tools: 'None', model: 'none' });
    expect(json.fields).toEqual(['model', 'permission_mode', 'allowed_tools', 'disallowed_tools']);
    const saved = agentOnDisk('api');
    expect(saved?.permission_mode ?? null).toBeNull();
    expect(saved?.allowed_tools ?? null).toBeNull();
    expect(saved?.disallowed_tools ?? null).toBeNull();
    expect(saved?.model ?? null).toBeNull();
    const [entry] = (await h.call('list_agents')).json;
    expect(entry).not.toHaveProperty('allowed_tools');
  });

  it("capabilities: set, then 'none' empties them", async () => {
    await h.call('update_agent', { name: 'api', capabilities: 'db,logs', risky_capabilities: 'deploy' });
    expect(agentOnDisk('api')).toMatchObject({ capabilities: ['db', 'logs'], risky_capabilities: ['deploy'] });
    const { json } = await h.call('update_agent', { name: 'api', capabilities: 'none', risky_capabilities: 'none' });
    expect(json.fields).toEqual(['capabilities', 'risky_capabilities']);
    expect(agentOnDisk('api')).toMatchObject({ capabilities: [], risky_capabilities: [] });
  });

  it('an unknown agent is "not found"', async () => {
    const { json, isError } = await h.call('update_agent', { name: 'ghost', description: 'x' });
    expect(isError).toBe(true);
    expect(json.error).toContain("Agent 'ghost' not found");
  });

  it('nothing to change → "Nothing to update", file untouched', async () => {
    const before = h.configBytes();
    const { json, isError } = await h.call('update_agent', { name: 'api' });
    expect(isError).toBe(true);
    expect(json.error).toBe('Nothing to update. Pass at least one non-empty field.');
    expect(h.configBytes()).toEqual(before);
  });

  it('updates description and timeout', async () => {
    const { json } = await h.call('update_agent', { name: 'api', description: 'new', timeout: 1200 });
    expect(json.fields).toEqual(['description', 'timeout']);
    expect(agentOnDisk('api')).toMatchObject({ description: 'new', timeout: 1200 });
  });

  it('rejects a negative timeout and persists nothing', async () => {
    const before = h.configBytes();
    const { json, isError } = await h.call('update_agent', { name: 'api', timeout: -5, description: 'changed' });
    expect(isError).toBe(true);
    expect(json.error).toContain('timeout must be a positive number of seconds (got -5)');
    expect(h.configBytes()).toEqual(before);
    expect(agentOnDisk('api')).toMatchObject({ description: 'orig', timeout: 300 });
  });

  it('timeout 0 means unchanged', async () => {
    const { json } = await h.call('update_agent', { name: 'api', timeout: 0, description: 'd' });
    expect(json.fields).toEqual(['description']);
    expect(agentOnDisk('api')?.timeout).toBe(300);
  });

  it('max_budget_usd: > 0 sets it, 0 leaves it, < 0 clears it', async () => {
    await h.call('update_agent', { name: 'api', max_budget_usd: 3 });
    expect(agentOnDisk('api')?.max_budget_usd).toBe(3);
    await h.call('update_agent', { name: 'api', max_budget_usd: 0, description: 'd' });
    expect(agentOnDisk('api')?.max_budget_usd).toBe(3);
    const { json, isError } = await h.call('update_agent', { name: 'api', max_budget_usd: -1 });
    expect(isError).toBe(false);
    expect(json.fields).toEqual(['max_budget_usd']);
    expect(agentOnDisk('api')?.max_budget_usd ?? null).toBeNull();
  });

  it('policy: a preset is accepted, an unknown one refused with the file untouched', async () => {
    expect((await h.call('update_agent', { name: 'api', policy: 'readonly-inspector' })).json.fields).toEqual(['policy']);
    expect(agentOnDisk('api')?.policy).toBe('readonly-inspector');
    const before = h.configBytes();
    const { json, isError } = await h.call('update_agent', { name: 'api', policy: 'nonexistent-policy' });
    expect(isError).toBe(true);
    expect(json.error).toContain("Policy 'nonexistent-policy' not found");
    expect(h.configBytes()).toEqual(before);
  });

  it('allowed_tools entries must each be one tool: a space-joined entry cannot smuggle a second tool', async () => {
    const before = h.configBytes();
    const { json, isError } = await h.call('update_agent', { name: 'api', allowed_tools: 'Read(*) Bash' });
    expect(isError).toBe(true);
    expect(json.error).toContain("allowed_tools: 'Read(*) Bash' is not a single tool pattern");
    expect(h.configBytes()).toEqual(before);
    expect((await h.call('update_agent', { name: 'api', allowed_tools: 'Bash(git diff *),Read' })).isError).toBe(false);
    expect(agentOnDisk('api')?.allowed_tools).toEqual(['Bash(git diff *)', 'Read']);
  });

  it('policy: a policy with error findings (Docker socket mount) cannot be attached; the file is untouched', async () => {
    mkdirSync(join(h.configDir, 'policies'), { recursive: true });
    writeFileSync(join(h.configDir, 'policies', 'socket.yaml'), 'version: 1\nmounts:\n  - {source: /var/run/docker.sock, mode: rw}\n');
    const before = h.configBytes();
    const { json, isError } = await h.call('update_agent', { name: 'api', policy: 'socket' });
    expect(isError).toBe(true);
    expect(json.error).toContain("Policy 'socket' cannot be used");
    expect(json.error).toContain('mount-docker-socket');
    expect(json.hint).toContain('agent-dispatch policy check');
    expect(h.configBytes()).toEqual(before);
    const added = await h.call('add_agent', { name: 'other', directory: h.project('other'), policy: 'socket' });
    expect(added.isError).toBe(true);
    expect(h.configBytes()).toEqual(before);
  });

  it("policy: a user policy beside the server's own config (injected env) is accepted", async () => {
    mkdirSync(join(h.configDir, 'policies'), { recursive: true });
    copyFileSync(join(PRESETS_DIR, 'readonly-inspector.yaml'), join(h.configDir, 'policies', 'team-policy.yaml'));
    const { json, isError } = await h.call('update_agent', { name: 'api', policy: 'team-policy' });
    expect(json.error).toBeUndefined();
    expect(isError).toBe(false);
    expect(agentOnDisk('api')?.policy).toBe('team-policy');
  });

  it('an unknown permission mode is applied; the warning and the summary reach the client as log messages', async () => {
    const { isError } = await h.call('update_agent', { name: 'api', permission_mode: 'yolo' });
    expect(isError).toBe(false);
    await vi.waitFor(() => {
      expect(h.logs.some((l) => l.startsWith("Warning: Unknown permission_mode: 'yolo'"))).toBe(true);
      expect(h.logs).toContain("Updated agent 'api': permission_mode");
    });
    expect(agentOnDisk('api')?.permission_mode).toBe('yolo');
  });

  it('concurrent update_agent calls both land', async () => {
    await h.call('add_agent', { name: 'web', directory: h.project('web'), description: 'orig' });
    const results = await Promise.all([
      h.call('update_agent', { name: 'api', description: 'api-new' }),
      h.call('update_agent', { name: 'web', description: 'web-new' }),
      h.call('update_agent', { name: 'api', timeout: 777 }),
      h.call('update_agent', { name: 'web', capabilities: 'x' }),
    ]);
    expect(results.map((r) => r.isError)).toEqual([false, false, false, false]);
    expect(agentOnDisk('api')).toMatchObject({ description: 'api-new', timeout: 777 });
    expect(agentOnDisk('web')).toMatchObject({ description: 'web-new', capabilities: ['x'] });
  });
});

describe('config mutations invalidate the cache (TestConfigMutationInvalidatesCache)', () => {
  function seed(): void {
    const cache = h.context.cacheFor(h.context.config());
    if (!cache) throw new Error('cache should be enabled by default');
    cache.put({ agent: 'api', task: 't1' }, { success: true, result: 'a1' });
    cache.put({ agent: 'api', task: 't2' }, { success: true, result: 'a2' });
    cache.put({ agent: 'web', task: 't1' }, { success: true, result: 'w1' });
  }

  beforeEach(async () => {
    await h.call('add_agent', { name: 'api', directory: h.project('api'), description: 'a' });
    await h.call('add_agent', { name: 'web', directory: h.project('web'), description: 'w' });
    seed();
  });

  it("update_agent drops that agent's entries and keeps the others'", async () => {
    await h.call('update_agent', { name: 'api', description: 'changed' });
    const cache = h.context.cacheFor(h.context.config())!;
    expect(cache.get({ agent: 'api', task: 't1' })).toBeUndefined();
    expect(cache.get({ agent: 'web', task: 't1' })).toMatchObject({ result: 'w1' });
    expect((await h.call('cache_stats')).json.size).toBe(1);
  });

  it('remove_agent drops that agent\'s entries', async () => {
    await h.call('remove_agent', { name: 'web' });
    expect((await h.call('cache_stats')).json.size).toBe(2);
  });

  it('add_agent drops stale entries stored under the new name', async () => {
    await h.call('remove_agent', { name: 'api' });
    h.context.cacheFor(h.context.config())!.put({ agent: 'api', task: 'stale' }, { success: true });
    await h.call('add_agent', { name: 'api', directory: h.project('api2'), description: 'again' });
    expect(h.context.cacheFor(h.context.config())!.get({ agent: 'api', task: 'stale' })).toBeUndefined();
  });

  it('a refused update leaves the cache alone', async () => {
    await h.call('update_agent', { name: 'api', timeout: -1 });
    expect((await h.call('cache_stats')).json.size).toBe(3);
  });
});
