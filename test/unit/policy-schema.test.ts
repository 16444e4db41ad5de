import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatIssues } from '../../src/config/issues.js';
import { policyJsonSchema } from '../../src/policy/json-schema.js';
import {
  describePolicyProblem,
  isPolicyPath,
  loadPolicy,
  policyHash,
  presetNames,
  PRESETS_DIR,
  type PolicyLoad,
} from '../../src/policy/load.js';
import { hostPatternSchema, policyKeysAt, policySchema, type Policy } from '../../src/policy/schema.js';

let configDir: string;

beforeEach(() => {
  configDir = mkdtempSync(join(tmpdir(), 'ad-policy-'));
});

afterEach(() => {
  rmSync(configDir, { recursive: true, force: true });
});

function ok(load: PolicyLoad): Extract<PolicyLoad, { kind: 'ok' }> {
  expect(load.kind, load.kind === 'ok' ? '' : describePolicyProblem(load)).toBe('ok');
  return load as Extract<PolicyLoad, { kind: 'ok' }>;
}

function invalid(load: PolicyLoad): Extract<PolicyLoad, { kind: 'invalid' }> {
  expect(load.kind).toBe('invalid');
  return load as Extract<PolicyLoad, { kind: 'invalid' }>;
}

function writePolicy(relative: string, text: string): string {
  const path = join(configDir, relative);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  return path;
}

function problems(input: unknown): string {
  const result = policySchema.safeParse(input, { reportInput: true });
  expect(result.success).toBe(false);
  return formatIssues(result.error!.issues, policyKeysAt);
}

describe('shipped presets', () => {
  it('ships default, builder and readonly-inspector', () => {
    expect(presetNames()).toEqual(expect.arrayContaining(['builder', 'default', 'readonly-inspector']));
  });

  it.each(presetNames())('%s parses', (name) => {
    const load = ok(loadPolicy(name, configDir));
    expect(load.source).toEqual({ ref: name, path: join(PRESETS_DIR, `${name}.yaml`), preset: true });
    expect(load.policy.version).toBe(1);
    expect(load.policy.description).not.toBe('');
    expect(load.hash).toMatch(/^[0-9a-f]{16}$/);
  });

  it('the default preset is exactly the schema defaults', () => {
    const preset = ok(loadPolicy('default', configDir)).policy;
    expect(preset).toEqual(policySchema.parse({ version: 1, description: preset.description }));
  });

  it('builder uses an overlay repo and readonly-inspector denies the shell', () => {
    expect(ok(loadPolicy('builder', configDir)).policy.repo).toBe('overlay');
    const inspector = ok(loadPolicy('readonly-inspector', configDir)).policy;
    expect(inspector.tools.deny).toContain('Bash');
    expect(inspector.tools.allow).not.toContain('Bash');
  });
});

describe('policy schema', () => {
  it('fills every default from a bare version: 1', () => {
    expect(policySchema.parse({ version: 1 })).toEqual({
      version: 1,
      description: '',
      repo: 'ro',
      repo_git: 'protected',
      mounts: [],
      env: { pass: [], set: {} },
      credentials: 'inject',
      network: { mode: 'gateway', allow: [] },
      tools: { permission_mode: 'default', allow: null, deny: [], mcp_servers: 'none' },
      resources: { memory: '2g', cpus: 1, pids: 512, nofile: 4096, tmp_size: '256m', timeout: 3600, max_file_size: '1g' },
      image: 'agent-dispatch/agent:latest',
    } satisfies Policy);
  });

  it('fills defaults inside partial sections', () => {
    const policy = policySchema.parse({ version: 1, mounts: [{ source: '/data' }], resources: { memory: '4g' }, tools: { deny: ['WebFetch'] } });
    expect(policy.mounts).toEqual([{ source: '/data', mode: 'ro' }]);
    expect(policy.resources).toMatchObject({ memory: '4g', cpus: 1, pids: 512 });
    expect(policy.tools).toEqual({ permission_mode: 'default', allow: null, deny: ['WebFetch'], mcp_servers: 'none' });
  });

  it('tools.mcp_servers: none (default), repo, or a list of server names; nothing else', () => {
    const servers = (v: unknown) => policySchema.parse({ version: 1, tools: { mcp_servers: v } }).tools.mcp_servers;
    expect(servers('repo')).toBe('repo');
    expect(servers(['docs', 'search_v2', 'my.server-1'])).toEqual(['docs', 'search_v2', 'my.server-1']);
    expect(servers([])).toEqual([]);
    expect(problems({ version: 1, tools: { mcp_servers: 'all' } })).toContain('mcp_servers');
    expect(problems({ version: 1, tools: { mcp_servers: ['--strict-mcp-config'] } })).toContain('is not an MCP server name');
    expect(problems({ version: 1, tools: { mcp_servers: ['a b'] } })).toContain('is not an MCP server name');
  });

  it('repo_git: protected (default) or writable', () => {
    expect(policySchema.parse({ version: 1 }).repo_git).toBe('protected');
    expect(policySchema.parse({ version: 1, repo: 'rw', repo_git: 'writable' }).repo_git).toBe('writable');
    expect(problems({ version: 1, repo_git: 'yes' })).toContain('repo_git');
  });

  it('refuses version 2, and a missing version', () => {
    expect(problems({ version: 2 })).toContain('version must be 1');
    expect(problems({})).toContain('version must be 1');
    expect(problems({ version: '1' })).toContain('version');
  });

  it.each([
    [{ version: 1, netwrok: {} }, "netwrok: unknown key; did you mean 'network'?"],
    [{ version: 1, tools: { alow: ['Read'] } }, "tools.alow: unknown key; did you mean 'allow'?"],
    [{ version: 1, resources: { memroy: '1g' } }, "resources.memroy: unknown key; did you mean 'memory'?"],
    [{ version: 1, env: { passs: [] } }, "env.passs: unknown key; did you mean 'pass'?"],
    [{ version: 1, network: { allowed: [] } }, "network.allowed: unknown key; did you mean 'allow'?"],
    [{ version: 1, mounts: [{ source: '/data', mdoe: 'ro' }] }, "mounts.0.mdoe: unknown key; did you mean 'mode'?"],
  ])('rejects unknown keys with a suggestion (%j)', (input, expected) => {
    expect(problems(input)).toContain(expected);
  });

  it('lists the known keys when nothing is close', () => {
    expect(problems({ version: 1, zzzzzzzz: 1 })).toContain('remove it (known keys: version, description, repo');
  });

  it.each(['api.example.com', '*.example.com', 'example.com:8443', 'example.com:*', 'localhost', 'x.com:443', '*', 'EXAMPLE.com'])(
    'accepts host pattern %j',
    (pattern) => {
      expect(hostPatternSchema.safeParse(pattern).success).toBe(true);
    },
  );

  it.each(['http://x', 'exa mple.com', 'x.com:70000', 'x.com:0', '-x.com', 'x.com/path', '', 'a.*.com', 'x.com:', '*example.com'])(
    'rejects host pattern %j',
    (pattern) => {
      expect(hostPatternSchema.safeParse(pattern).success).toBe(false);
    },
  );

  it('explains a bad host pattern and a bad port', () => {
    expect(problems({ version: 1, network: { allow: ['http://x'] } })).toContain("network.allow.0: 'http://x' is not a host pattern");
    expect(problems({ version: 1, network: { allow: ['x.com:70000'] } })).toContain('port outside 1-65535');
  });

  it.each(['HOME', 'PATH', 'ANTHROPIC_BASE_URL', 'HTTPS_PROXY', 'AGENT_DISPATCH_DEPTH'])('refuses reserved name %s in env.pass and env.set', (name) => {
    expect(problems({ version: 1, env: { pass: [name] } })).toContain(`env.pass.0: ${name} is set by the sandbox itself`);
    expect(problems({ version: 1, env: { set: { [name]: 'x' } } })).toContain(`env.set.${name}: ${name} is set by the sandbox itself`);
  });

  it.each(['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'CLAUDE_CODE_OAUTH_TOKEN'])('refuses credential %s in env, pointing at credentials: env', (name) => {
    expect(problems({ version: 1, env: { pass: [name] } })).toContain("set 'credentials: env'");
    expect(problems({ version: 1, env: { set: { [name]: 'sk-x' } } })).toContain(`env.set.${name}: ${name} is the Anthropic credential`);
  });

  it('refuses names that are not variable names', () => {
    expect(problems({ version: 1, env: { pass: ['1BAD'] } })).toContain("'1BAD' is not a variable name");
    expect(problems({ version: 1, env: { set: { 'A-B': 'x' } } })).toContain("'A-B' is not a variable name");
    expect(policySchema.safeParse({ version: 1, env: { pass: ['LANG', '_X1'], set: { TZ: 'UTC' } } }).success).toBe(true);
  });

  it('checks mounts, sizes and bounds', () => {
    expect(problems({ version: 1, mounts: [{ source: 'relative/dir' }] })).toContain('must be an absolute path');
    expect(problems({ version: 1, mounts: [{ source: '/data', target: 'rel' }] })).toContain('target must be an absolute path');
    expect(problems({ version: 1, mounts: [{ source: '/data', mode: 'overlay' }] })).toContain('mounts.0.mode');
    expect(policySchema.safeParse({ version: 1, mounts: [{ source: '~/data', target: '/data', mode: 'rw' }] }).success).toBe(true);
    expect(problems({ version: 1, resources: { memory: 'lots' } })).toContain("memory is a size such as '2g'");
    expect(problems({ version: 1, resources: { pids: 1 } })).toContain('resources.pids');
    expect(problems({ version: 1, resources: { cpus: 0 } })).toContain('resources.cpus');
    expect(problems({ version: 1, resources: { timeout: 100_000 } })).toContain('resources.timeout');
    expect(problems({ version: 1, tools: { permission_mode: 'yolo' } })).toContain('tools.permission_mode');
    expect(problems({ version: 1, repo: 'rwx' })).toContain('repo');
    expect(problems({ version: 1, credentials: 'file' })).toContain('credentials');
  });
});

describe('resource minimums', () => {
  it.each([
    ['memory', '0', 'memory must be at least 6m'],
    ['memory', '0g', 'memory must be at least 6m'],
    ['memory', '5m', 'memory must be at least 6m'],
    ['memory', '6291455', 'memory must be at least 6m'],
    ['tmp_size', '0', 'tmp_size must be at least 1m'],
    ['tmp_size', '0m', 'tmp_size must be at least 1m'],
    ['tmp_size', '1023k', 'tmp_size must be at least 1m'],
  ])('refuses %s %j (0 would mean no limit)', (key, value, message) => {
    const text = problems({ version: 1, resources: { [key]: value } });
    expect(text).toContain(`resources.${key}: ${message}`);
    expect(text).toContain(`'${value}'`);
  });

  it.each([
    ['memory', '6m'],
    ['memory', '6291456'],
    ['memory', '0.5g'],
    ['tmp_size', '1m'],
    ['tmp_size', '1024k'],
    ['tmp_size', '1048576'],
  ])('accepts %s %j', (key, value) => {
    expect(policySchema.safeParse({ version: 1, resources: { [key]: value } }).success).toBe(true);
  });

  it('a malformed size gets only the format message', () => {
    expect(problems({ version: 1, resources: { memory: 'lots' } })).toBe("resources.memory: memory is a size such as '2g' or '512m'");
  });
});

describe('tool patterns in tools.allow and tools.deny', () => {
  it.each(['Read(*) Bash', 'Grep(x),WebFetch', 'Read Bash', '-x', 'Bash(a(b))', ''])('refuses %j, saying why', (entry) => {
    expect(problems({ version: 1, tools: { allow: ['Read', entry] } })).toContain(`tools.allow.1: '${entry}'`);
    expect(problems({ version: 1, tools: { deny: [entry] } })).toContain(`tools.deny.0: '${entry}'`);
  });

  it('explains that claude splits lists on commas and spaces', () => {
    expect(problems({ version: 1, tools: { allow: ['Grep(x),WebFetch'] } })).toContain('claude splits tool lists on commas and spaces');
  });

  it('accepts names, MCP tools and specifiers with spaces', () => {
    const tools = { allow: ['Read', 'mcp__server__tool', 'mcp__srv__*', 'Bash(git diff:*)', 'Bash(git diff *)'], deny: ['WebFetch', 'Bash(rm -rf *)'] };
    expect(policySchema.safeParse({ version: 1, tools }).success).toBe(true);
  });

  it('every shipped preset passes', () => {
    for (const name of presetNames()) expect(loadPolicy(name, configDir).kind).toBe('ok');
  });
});

describe('loadPolicy', () => {
  it("reports a missing policy as kind 'not-found' with the searched paths", () => {
    const load = loadPolicy('nope', configDir);
    expect(load).toEqual({
      kind: 'not-found',
      ref: 'nope',
      searched: [join(configDir, 'policies', 'nope.yaml'), join(PRESETS_DIR, 'nope.yaml')],
    });
    const line = describePolicyProblem(load as Exclude<PolicyLoad, { kind: 'ok' }>);
    expect(line).toContain(join(configDir, 'policies', 'nope.yaml'));
    expect(line).toContain('default');
    expect(line).not.toContain('\n');
  });

  it('reports a missing path ref with the resolved path', () => {
    expect(loadPolicy('custom/missing.yaml', configDir)).toEqual({
      kind: 'not-found',
      ref: 'custom/missing.yaml',
      searched: [join(configDir, 'custom', 'missing.yaml')],
    });
  });

  it("shadows a preset with the user's <configDir>/policies/<name>.yaml", () => {
    const path = writePolicy('policies/default.yaml', 'version: 1\ndescription: mine\nrepo: rw\n');
    const load = ok(loadPolicy('default', configDir));
    expect(load.source).toEqual({ ref: 'default', path, preset: false });
    expect(load.policy.repo).toBe('rw');
  });

  it('resolves path refs relative to the config directory', () => {
    const path = writePolicy('custom/strict.yaml', 'version: 1\ndescription: strict\n');
    expect(ok(loadPolicy('custom/strict.yaml', configDir)).source).toEqual({ ref: 'custom/strict.yaml', path, preset: false });
    expect(ok(loadPolicy('./custom/strict.yaml', configDir)).source.path).toBe(path);
    const bare = writePolicy('bare.yml', 'version: 1\n');
    expect(ok(loadPolicy('bare.yml', configDir)).source.path).toBe(bare);
    expect(ok(loadPolicy(path, join(configDir, 'elsewhere'))).source.path).toBe(path);
  });

  it('tells names from paths', () => {
    expect(isPolicyPath('default')).toBe(false);
    expect(isPolicyPath('readonly-inspector')).toBe(false);
    expect(isPolicyPath('x.yaml')).toBe(true);
    expect(isPolicyPath('x.yml')).toBe(true);
    expect(isPolicyPath('dir/x')).toBe(true);
    expect(isPolicyPath('~/p.yaml')).toBe(true);
  });

  it('reports unknown keys in a file with a suggestion', () => {
    writePolicy('policies/typo.yaml', 'version: 1\nnetwork:\n  mode: gateway\n  alow: [x.com]\n');
    const load = invalid(loadPolicy('typo', configDir));
    expect(load.detail).toContain("network.alow: unknown key; did you mean 'allow'?");
    const line = describePolicyProblem(load);
    expect(line).toContain(join(configDir, 'policies', 'typo.yaml'));
    expect(line).not.toContain('\n');
  });

  it('names the wrong value of a wrong type', () => {
    writePolicy('policies/t.yaml', 'version: 1\nresources:\n  cpus: two\n');
    expect(invalid(loadPolicy('t', configDir)).detail).toContain('resources.cpus: expected number, got string "two"');
  });

  it('reports broken YAML, non-UTF-8 and python tags as invalid', () => {
    writePolicy('policies/broken.yaml', 'version: 1\ntools: [unclosed\n');
    expect(invalid(loadPolicy('broken', configDir)).detail).toContain('not valid YAML');
    writeFileSync(join(configDir, 'policies', 'cp1251.yaml'), Buffer.from([0x64, 0x65, 0x73, 0x63, 0x72, 0x69, 0x70, 0x74, 0x69, 0x6f, 0x6e, 0x3a, 0x20, 0xcf, 0xf0, 0x0a]));
    expect(invalid(loadPolicy('cp1251', configDir)).detail).toContain('UTF-8');
    writePolicy('policies/py.yaml', 'version: 1\nimage: !!python/object/apply:os.system ["true"]\n');
    expect(invalid(loadPolicy('py', configDir)).detail).toContain('not valid YAML');
  });

  it('reports an empty file as a missing version', () => {
    writePolicy('policies/empty.yaml', '');
    expect(invalid(loadPolicy('empty', configDir)).detail).toContain('version must be 1');
  });
});

describe('policyHash', () => {
  it('is stable across key order and formatting', () => {
    writePolicy('a.yaml', 'version: 1\nrepo: rw\nnetwork:\n  mode: gateway\n  allow: [x.com]\nresources:\n  memory: 1g\n  cpus: 2\n');
    writePolicy('b.yaml', '# same policy\nresources: {cpus: 2, memory: 1g}\nnetwork: {allow: [x.com], mode: gateway}\nrepo: rw\nversion: 1\n');
    expect(ok(loadPolicy('a.yaml', configDir)).hash).toBe(ok(loadPolicy('b.yaml', configDir)).hash);
  });

  it('hashes the effective policy: spelled-out defaults hash like omitted ones', () => {
    expect(policyHash(policySchema.parse({ version: 1 }))).toBe(policyHash(policySchema.parse({ version: 1, repo: 'ro', credentials: 'inject' })));
  });

  it('changes when anything that matters changes', () => {
    const base = policySchema.parse({ version: 1 });
    const hashes = new Set([
      policyHash(base),
      policyHash(policySchema.parse({ version: 1, repo: 'rw' })),
      policyHash(policySchema.parse({ version: 1, network: { allow: ['x.com'] } })),
      policyHash(policySchema.parse({ version: 1, tools: { deny: ['Bash'] } })),
      policyHash(policySchema.parse({ version: 1, tools: { allow: [] } })),
      policyHash(policySchema.parse({ version: 1, env: { pass: ['LANG'] } })),
    ]);
    expect(hashes.size).toBe(6);
  });

  it('does not depend on array order being sorted (order is meaningful)', () => {
    const a = policySchema.parse({ version: 1, network: { allow: ['a.com', 'b.com'] } });
    const b = policySchema.parse({ version: 1, network: { allow: ['b.com', 'a.com'] } });
    expect(policyHash(a)).not.toBe(policyHash(b));
  });
});

describe('policies/policy.schema.json', () => {
  const file = join(PRESETS_DIR, 'policy.schema.json');

  it('is up to date with the zod schema (regenerate: npm run build && npm run schema)', () => {
    expect(readFileSync(file, 'utf8')).toBe(`${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
  });

  it('describes the same top-level keys and refuses unknown ones', () => {
    const schema = policyJsonSchema() as { properties: Record<string, unknown>; required: string[]; additionalProperties: boolean; $id: string; title: string };
    expect(Object.keys(schema.properties)).toEqual(Object.keys(policySchema.shape));
    expect(schema.required).toEqual(['version']);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.$id).toBeTruthy();
    expect(schema.title).toContain('policy');
  });

  it('is not mistaken for a preset', () => {
    expect(presetNames()).not.toContain('policy.schema');
  });
});
