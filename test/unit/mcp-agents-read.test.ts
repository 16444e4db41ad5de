import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configYaml, startHarness, type Harness } from './mcp-harness.js';

/** Every optional agent field set: what agents.yaml holds and inspect_agent reports back. */
const FULL_FIELDS = {
  description: 'Full agent',
  timeout: 900,
  model: 'sonnet',
  max_budget_usd: 2.5,
  permission_mode: 'plan',
  allowed_tools: ['Read'],
  disallowed_tools: [],
  capabilities: ['db'],
  risky_capabilities: ['migrations'],
};

let h: Harness;

beforeEach(async () => {
  h = await startHarness();
});

afterEach(async () => {
  await h.close();
});

/** A path whose stat fails with ELOOP (a symlink pointing at itself): the portable stand-in, as root, for an unreadable directory. */
function loopPath(): string {
  const link = join(h.root, 'loop');
  symlinkSync(link, link);
  return link;
}

/** A path under a regular file: stat fails with ENOTDIR, i.e. the directory is missing. */
function underAFile(): string {
  const file = join(h.root, 'plain-file');
  writeFileSync(file, 'not a directory');
  return join(file, 'proj');
}

describe('list_agents', () => {
  it('answers the error envelope when no agents are configured', async () => {
    const answer = await h.call('list_agents');
    expect(answer.isError).toBe(true);
    expect(answer.json).toEqual({ error: 'No agents configured. Run: agent-dispatch add <name> <directory>', hint: expect.stringContaining('add_agent(name, directory)') });
  });

  it('lists agents in config order with health and detection flags', async () => {
    const a = h.project('a', { 'CLAUDE.md': '# A\nDoes things\n', '.mcp.json': '{"mcpServers": {}}' });
    const b = h.project('b');
    h.writeConfig(configYaml({ agents: { zeta: { directory: a, description: 'first' }, alpha: { directory: b } } }));
    const { json, isError } = await h.call('list_agents');
    expect(isError).toBe(false);
    expect(json.map((e: { name: string }) => e.name)).toEqual(['zeta', 'alpha']);
    expect(json[0]).toMatchObject({ name: 'zeta', directory: a, description: 'first', healthy: true, has_claude_md: true, has_mcp_config: true });
    expect(json[1]).toMatchObject({ name: 'alpha', directory: b, description: '', healthy: true, has_claude_md: false, has_mcp_config: false });
    // Model / timeout / budget are inspect_agent material, not list_agents.
    expect(json[0]).not.toHaveProperty('timeout');
    expect(json[0]).not.toHaveProperty('model');
  });

  describe('permissions (TestListAgentsPermissions)', () => {
    it('shows permission_mode and allowed / disallowed tools', async () => {
      const dir = h.project('p');
      h.writeConfig(
        configYaml({ agents: { p: { directory: dir, permission_mode: 'plan', allowed_tools: ['Read', 'Bash(git *)'], disallowed_tools: ['Write'] } } }),
      );
      const [entry] = (await h.call('list_agents')).json;
      expect(entry.permission_mode).toBe('plan');
      expect(entry.allowed_tools).toEqual(['Read', 'Bash(git *)']);
      expect(entry.disallowed_tools).toEqual(['Write']);
    });

    it('omits unset permission fields', async () => {
      h.writeConfig(configYaml({ agents: { p: { directory: h.project('p') } } }));
      const [entry] = (await h.call('list_agents')).json;
      expect(entry).not.toHaveProperty('permission_mode');
      expect(entry).not.toHaveProperty('allowed_tools');
      expect(entry).not.toHaveProperty('disallowed_tools');
    });

    it('shows an explicit empty tool list (distinct from inheriting)', async () => {
      h.writeConfig(configYaml({ agents: { p: { directory: h.project('p'), allowed_tools: [], disallowed_tools: [] } } }));
      const [entry] = (await h.call('list_agents')).json;
      expect(entry.allowed_tools).toEqual([]);
      expect(entry.disallowed_tools).toEqual([]);
    });
  });

  describe('health (TestListAgentsHealth)', () => {
    it('a nonexistent directory is healthy: false with no detections', async () => {
      h.writeConfig(configYaml({ agents: { gone: { directory: join(h.root, 'does-not-exist') } } }));
      const [entry] = (await h.call('list_agents')).json;
      expect(entry).toMatchObject({ healthy: false, has_claude_md: false, has_mcp_config: false });
      expect(entry).not.toHaveProperty('stacks');
    });

    it('a directory path under a regular file (ENOTDIR) is healthy: false', async () => {
      h.writeConfig(configYaml({ agents: { gone: { directory: underAFile() } } }));
      const [entry] = (await h.call('list_agents')).json;
      expect(entry).toMatchObject({ healthy: false, has_claude_md: false, has_mcp_config: false });
    });

    it('an unreadable directory (stat fails: symlink loop) is "UNREADABLE" for that agent only', async () => {
      const good = h.project('good', { 'CLAUDE.md': 'hi', Dockerfile: '' });
      h.writeConfig(configYaml({ agents: { good: { directory: good }, bad: { directory: loopPath() }, good2: { directory: good } } }));
      const { json, isError } = await h.call('list_agents');
      expect(isError).toBe(false);
      const byName = Object.fromEntries(json.map((e: { name: string }) => [e.name, e]));
      expect(byName.bad).toMatchObject({ healthy: 'UNREADABLE', has_claude_md: false, has_mcp_config: false });
      expect(byName.bad).not.toHaveProperty('stacks');
      expect(byName.good).toMatchObject({ healthy: true, has_claude_md: true, stacks: ['Docker'] });
      expect(byName.good2).toMatchObject({ healthy: true, has_claude_md: true });
    });

    it('an over-long path (ENAMETOOLONG) is "UNREADABLE" too', async () => {
      h.writeConfig(configYaml({ agents: { long: { directory: join(h.root, 'x'.repeat(300)) } } }));
      const [entry] = (await h.call('list_agents')).json;
      expect(entry.healthy).toBe('UNREADABLE');
    });
  });

  describe('enriched (TestListAgentsEnriched)', () => {
    it('surfaces MCP servers, stacks and databases', async () => {
      const dir = h.project('rich', {
        '.mcp.json': JSON.stringify({ mcpServers: { postgres: {}, sentry: {} } }),
        '.claude/settings.local.json': JSON.stringify({ mcpServers: { postgres: {}, grafana: {} } }),
        Dockerfile: 'FROM scratch',
        'go.mod': 'module x',
        'package.json': '{}',
        'alembic.ini': '',
        'migrations/': '',
      });
      h.writeConfig(configYaml({ agents: { rich: { directory: dir } } }));
      const [entry] = (await h.call('list_agents')).json;
      expect(entry.mcp_servers).toEqual(['postgres', 'sentry', 'grafana']);
      expect(entry.stacks).toEqual(['Docker', 'Go', 'Node.js']);
      expect(entry.dbs).toEqual(['Alembic', 'migrations']);
    });

    it('omits empty detections and empty capability fields', async () => {
      h.writeConfig(configYaml({ agents: { bare: { directory: h.project('bare') } } }));
      const [entry] = (await h.call('list_agents')).json;
      for (const key of ['mcp_servers', 'stacks', 'dbs', 'capabilities', 'risky_capabilities']) expect(entry).not.toHaveProperty(key);
    });

    it('surfaces declared capabilities', async () => {
      h.writeConfig(configYaml({ agents: { cap: { directory: h.project('cap'), capabilities: ['db', 'logs'], risky_capabilities: ['prod-write'] } } }));
      const [entry] = (await h.call('list_agents')).json;
      expect(entry.capabilities).toEqual(['db', 'logs']);
      expect(entry.risky_capabilities).toEqual(['prod-write']);
    });
  });

  describe('policy', () => {
    it('every entry carries its policy and a one-line policy_summary', async () => {
      h.writeConfig(
        configYaml({ agents: { d: { directory: h.project('d') }, r: { directory: h.project('r'), policy: 'readonly-inspector' } } }),
      );
      const [d, r] = (await h.call('list_agents')).json;
      expect(d.policy).toBe('default');
      expect(r.policy).toBe('readonly-inspector');
      for (const entry of [d, r]) {
        expect(typeof entry.policy_summary).toBe('string');
        expect(entry.policy_summary.length).toBeGreaterThan(0);
        expect(entry.policy_summary).not.toContain('\n');
        expect(entry).not.toHaveProperty('policy_error');
      }
      expect(r.policy_summary).toContain('repo ro');
      expect(d.policy_summary).not.toBe(r.policy_summary);
    });

    it('an agent whose policy ref is missing shows policy_error, and the listing still works', async () => {
      h.writeConfig(
        configYaml({ agents: { lost: { directory: h.project('lost'), policy: 'no-such-policy' }, fine: { directory: h.project('fine') } } }),
      );
      const { json, isError } = await h.call('list_agents');
      expect(isError).toBe(false);
      const [lost, fine] = json;
      expect(lost.policy).toBe('no-such-policy');
      expect(lost.policy_error).toContain("Policy 'no-such-policy' not found");
      expect(lost).not.toHaveProperty('policy_summary');
      expect(fine.policy_summary).toEqual(expect.any(String));
    });

    it('a user policy beside the injected config resolves (not beside process.env config)', async () => {
      mkdirSync(join(h.configDir, 'policies'), { recursive: true });
      writeFileSync(join(h.configDir, 'policies', 'mine.yaml'), 'version: 1\ndescription: mine\nrepo: ro\n');
      h.writeConfig(configYaml({ agents: { u: { directory: h.project('u'), policy: 'mine' } } }));
      const [entry] = (await h.call('list_agents')).json;
      expect(entry).not.toHaveProperty('policy_error');
      expect(entry.policy_summary).toContain('repo ro');
    });
  });
});

describe('inspect_agent (TestInspectAgent)', () => {
  it('returns config fields, detections and previews; a 50-line README is truncated to 40 lines', async () => {
    const readme = Array.from({ length: 50 }, (_, i) => `readme line ${i + 1}`).join('\n');
    const dir = h.project('full', {
      'CLAUDE.md': '# Project\nUse the staging DB.\n',
      'README.md': readme,
      '.mcp.json': JSON.stringify({ mcpServers: { db: {} } }),
      'pyproject.toml': '[project]\n',
      'prisma/': '',
    });
    h.writeConfig(
      configYaml({
        agents: {
          full: { directory: dir, ...FULL_FIELDS },
        },
      }),
    );
    const { json, isError } = await h.call('inspect_agent', { name: 'full' });
    expect(isError).toBe(false);
    expect(json).toMatchObject({
      name: 'full',
      directory: dir,
      ...FULL_FIELDS,
      policy: 'default',
      healthy: true,
      mcp_servers: ['db'],
      stacks: ['Python'],
      dbs: ['Prisma'],
      has_claude_md: true,
      has_readme: true,
      has_mcp_config: true,
      claude_md_preview: '# Project\nUse the staging DB.',
    });
    expect(json.policy_summary).toEqual(expect.any(String));
    expect(json).not.toHaveProperty('claude_md_truncated');
    expect(json.readme_truncated).toBe(true);
    const lines = json.readme_preview.split('\n');
    expect(lines).toHaveLength(40);
    expect(lines[39]).toBe('readme line 40');
    // Key order: config first, then health, then detections.
    const keys = Object.keys(json);
    expect(keys.slice(0, 4)).toEqual(['name', 'directory', 'description', 'timeout']);
    expect(keys.indexOf('healthy')).toBeLessThan(keys.indexOf('mcp_servers'));
  });

  it('detections are always present (possibly empty) for a healthy directory', async () => {
    h.writeConfig(configYaml({ agents: { bare: { directory: h.project('bare') } } }));
    const { json } = await h.call('inspect_agent', { name: 'bare' });
    expect(json).toMatchObject({ healthy: true, mcp_servers: [], stacks: [], dbs: [], has_claude_md: false, has_readme: false, has_mcp_config: false });
    expect(json).not.toHaveProperty('claude_md_preview');
    expect(json).not.toHaveProperty('readme_preview');
  });

  it('preview_lines 0 omits the preview text', async () => {
    const dir = h.project('p0', { 'CLAUDE.md': 'a\nb\n', 'README.md': 'c\n' });
    h.writeConfig(configYaml({ agents: { p0: { directory: dir } } }));
    const { json } = await h.call('inspect_agent', { name: 'p0', preview_lines: 0 });
    for (const key of ['claude_md_preview', 'claude_md_truncated', 'readme_preview', 'readme_truncated']) expect(json).not.toHaveProperty(key);
    expect(json.has_claude_md).toBe(true);
  });

  it('negative preview_lines clamps to 0; huge values clamp to 200', async () => {
    const dir = h.project('clamp', { 'README.md': Array.from({ length: 300 }, (_, i) => `r${i}`).join('\n') });
    h.writeConfig(configYaml({ agents: { clamp: { directory: dir } } }));
    expect((await h.call('inspect_agent', { name: 'clamp', preview_lines: -5 })).json).not.toHaveProperty('readme_preview');
    const { json } = await h.call('inspect_agent', { name: 'clamp', preview_lines: 100000 });
    expect(json.readme_preview.split('\n')).toHaveLength(200);
    expect(json.readme_truncated).toBe(true);
  });

  it('preview_lines is taken like the original int(): "3" and 3.9 both mean 3', async () => {
    const dir = h.project('coerce', { 'README.md': 'l1\nl2\nl3\nl4\nl5\n' });
    h.writeConfig(configYaml({ agents: { coerce: { directory: dir } } }));
    for (const value of ['3', 3.9]) {
      const { json, isError } = await h.call('inspect_agent', { name: 'coerce', preview_lines: value });
      expect(isError).toBe(false);
      expect(json.readme_preview).toBe('l1\nl2\nl3');
    }
    const bad = await h.call('inspect_agent', { name: 'coerce', preview_lines: 'many' });
    expect(bad.isError).toBe(true);
    expect(bad.json).toHaveProperty('error');
  });

  it('truncates by characters too: max(200, lines*200)', async () => {
    const dir = h.project('wide', { 'CLAUDE.md': `${'x'.repeat(500)}\n` });
    h.writeConfig(configYaml({ agents: { wide: { directory: dir } } }));
    const { json } = await h.call('inspect_agent', { name: 'wide', preview_lines: 1 });
    expect(json.claude_md_preview).toBe('x'.repeat(200));
    expect(json.claude_md_truncated).toBe(true);
    const full = (await h.call('inspect_agent', { name: 'wide', preview_lines: 3 })).json;
    expect(full.claude_md_preview).toBe('x'.repeat(500));
    expect(full).not.toHaveProperty('claude_md_truncated');
  });

  it('invalid UTF-8 in a preview is replaced, not fatal', async () => {
    const dir = h.project('bytes', { 'CLAUDE.md': Buffer.from([0x6f, 0x6b, 0x20, 0xff, 0xfe, 0x0a]) });
    h.writeConfig(configYaml({ agents: { bytes: { directory: dir } } }));
    const { json, isError } = await h.call('inspect_agent', { name: 'bytes' });
    expect(isError).toBe(false);
    expect(json.claude_md_preview).toBe('ok \uFFFD\uFFFD');
  });

  it('unknown agent → error envelope naming the available agents', async () => {
    h.writeConfig(configYaml({ agents: { api: { directory: h.project('api') } } }));
    const { json, isError } = await h.call('inspect_agent', { name: 'nope' });
    expect(isError).toBe(true);
    expect(json.error).toBe("Unknown agent: 'nope'. Available: api");
  });

  it('missing directory → healthy: false, no scan and no previews', async () => {
    h.writeConfig(configYaml({ agents: { gone: { directory: join(h.root, 'gone'), timeout: 60 }, under: { directory: underAFile() } } }));
    for (const name of ['gone', 'under']) {
      const { json, isError } = await h.call('inspect_agent', { name });
      expect(isError).toBe(false);
      expect(json.healthy).toBe(false);
      for (const key of ['mcp_servers', 'stacks', 'dbs', 'has_claude_md', 'has_readme', 'claude_md_preview', 'readme_preview', 'scan_error']) {
        expect(json).not.toHaveProperty(key);
      }
    }
  });

  it('unreadable directory (stat fails: symlink loop) → healthy: "UNREADABLE", nothing else scanned', async () => {
    h.writeConfig(configYaml({ agents: { loop: { directory: loopPath() } } }));
    const { json, isError } = await h.call('inspect_agent', { name: 'loop' });
    expect(isError).toBe(false);
    expect(json.healthy).toBe('UNREADABLE');
    expect(json).not.toHaveProperty('stacks');
    expect(json).not.toHaveProperty('has_claude_md');
  });
});
