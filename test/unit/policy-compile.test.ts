import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/errors.js';
import { configSchema, parseAgent, settingsSchema, type AgentInput, type Settings } from '../../src/config/schema.js';
import { checked, claudeFlags, effectiveBudget } from '../../src/policy/claude-args.js';
import { compileSandbox, hasUserinfo, PINNED_ENV, type CompileInput, type CompiledSandbox } from '../../src/policy/compile.js';
import { parseSize } from '../../src/policy/container-spec.js';
import * as layout from '../../src/policy/layout.js';
import { loadPolicy } from '../../src/policy/load.js';
import { resolveAgentPolicy } from '../../src/policy/resolve.js';
import { effectiveTools, permissionRank } from '../../src/policy/permissions.js';
import { isValidToolPattern, toolPatternProblem } from '../../src/policy/tool-pattern.js';
import { CREDENTIAL_ENV, policySchema, RESERVED_ENV, type Policy, type PolicyInput } from '../../src/policy/schema.js';
import { lintCompiled } from '../../src/policy/lint.js';
import { gitdirOf, inspectRepoGit, type RepoGit } from '../../src/policy/repo-git.js';
import { redactCompiled } from '../../src/policy/redact.js';

const REAL_KEY = 'sk-ant-api03-REAL-HOST-KEY-must-never-leak-0123456789';
let repo: string;
let defaultPolicy: Policy;

beforeAll(() => {
  repo = mkdtempSync(join(tmpdir(), 'ad-repo-'));
  // a config dir with no policies/ of its own, so the shipped preset is what loads
  const load = loadPolicy('default', join(repo, 'no-config-here'));
  if (load.kind !== 'ok') throw new Error('default preset must load');
  defaultPolicy = load.policy;
});

afterAll(() => {
  rmSync(repo, { recursive: true, force: true });
});

/** The default preset with some sections replaced (a shallow merge per section, then validated). */
function policy(overrides: Partial<PolicyInput> = {}): Policy {
  return policySchema.parse({ ...defaultPolicy, ...overrides });
}

function compile(options: {
  agent?: Partial<AgentInput>;
  settings?: Partial<Settings>;
  policy?: Policy;
  hostEnv?: Record<string, string | undefined>;
  depth?: number;
  repoOwner?: { uid: number; gid: number };
  scope?: string;
  repoGit?: RepoGit;
} = {}): CompiledSandbox {
  const input: CompileInput = {
    agentName: 'api',
    agent: parseAgent({ directory: repo, ...options.agent }),
    settings: settingsSchema.parse(options.settings ?? {}),
    policy: options.policy ?? defaultPolicy,
    policyRef: 'default',
    policyHash: 'abcdef0123456789',
    hostEnv: options.hostEnv ?? { ANTHROPIC_API_KEY: REAL_KEY, PATH: '/host/bin', SECRET_HOST_THING: 'zzz-host-only-value' },
    depth: options.depth ?? 0,
    ...(options.repoOwner ? { repoOwner: options.repoOwner } : {}),
    ...(options.scope !== undefined ? { scope: options.scope } : {}),
    ...(options.repoGit ? { repoGit: options.repoGit } : {}),
  };
  return compileSandbox(input);
}

function namedVolumeSources(compiled: CompiledSandbox): string[] {
  return compiled.container.HostConfig.Mounts.filter((m) => m.Type === 'volume').map((m) => m.Source!);
}

function envOf(compiled: CompiledSandbox): Record<string, string> {
  return Object.fromEntries(compiled.container.Env.map((e) => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
}

function expectInvalidInput(fn: () => unknown): AppError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(AppError);
  expect((caught as AppError).code).toBe('INVALID_INPUT');
  expect((caught as AppError).message).toContain("starts with '-'");
  return caught as AppError;
}

describe('container hardening (default preset)', () => {
  const c = () => compile().container;

  it.each([
    ['ReadonlyRootfs', true],
    ['CapDrop', ['ALL']],
    ['CapAdd', []],
    ['Privileged', false],
    ['SecurityOpt', ['no-new-privileges']],
    ['NetworkMode', 'none'],
    ['IpcMode', 'private'],
    ['PidMode', ''],
    ['UTSMode', ''],
    ['UsernsMode', ''],
    ['Devices', []],
    ['Init', true],
    ['AutoRemove', false],
  ] as const)('HostConfig.%s = %j', (key, value) => {
    expect(c().HostConfig[key]).toEqual(value);
  });

  it('runs as 1000:1000 in the repo, with no stdin or tty', () => {
    expect(c().User).toBe('1000:1000');
    expect(c().WorkingDir).toBe(repo);
    expect(c().Image).toBe('agent-dispatch/agent:latest');
    expect(c()).toMatchObject({ Tty: false, OpenStdin: false, AttachStdin: false, StdinOnce: false });
  });

  it('has no network but the gateway in gateway mode', () => {
    const compiled = compile();
    expect(compiled.container.NetworkDisabled).toBe(true);
    expect(compiled.container.HostConfig.NetworkMode).toBe('none');
    expect(compiled.network).toEqual({ mode: 'gateway', anthropicApi: true, allow: [] });
    const env = envOf(compiled);
    const proxy = `http://127.0.0.1:${layout.GATEWAY_BRIDGE_PORT}`;
    expect(env).toMatchObject({ HTTPS_PROXY: proxy, HTTP_PROXY: proxy, https_proxy: proxy, http_proxy: proxy, ANTHROPIC_BASE_URL: proxy, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' });
  });

  it('uses a bridge network in open mode, with no proxy and no gateway volume', () => {
    const compiled = compile({ policy: policy({ network: { mode: 'open', allow: [] }, credentials: 'env' }) });
    expect(compiled.container.NetworkDisabled).toBe(false);
    expect(compiled.container.HostConfig.NetworkMode).toBe('bridge');
    expect(envOf(compiled)).not.toHaveProperty('HTTPS_PROXY');
    expect(compiled.container.HostConfig.Mounts.map((m) => m.Target)).not.toContain(layout.GATEWAY_SOCKET_DIR);
  });

  it('compiles network.allow into rules (port 443 unless given)', () => {
    const compiled = compile({ policy: policy({ network: { mode: 'gateway', allow: ['pypi.org', '*.example.com:8443', 'Git.Example.org:*'] } }) });
    expect(compiled.network.allow).toEqual([
      { host: 'pypi.org', port: 443 },
      { host: '*.example.com', port: 8443 },
      { host: 'git.example.org', port: '*' },
    ]);
  });

  it('mounts /tmp, $HOME and the Claude config dir as small private tmpfs (only the transcripts persist)', () => {
    const tmpfs = c().HostConfig.Tmpfs;
    expect(tmpfs['/tmp']).toBe('rw,nosuid,nodev,size=256m,mode=1777');
    expect(tmpfs[layout.CONTAINER_HOME]).toBe('rw,nosuid,nodev,size=256m,uid=1000,gid=1000,mode=0700');
    expect(tmpfs[layout.CLAUDE_CONFIG_DIR]).toBe('rw,nosuid,nodev,size=256m,uid=1000,gid=1000,mode=0700');
    expect(Object.keys(tmpfs)).toHaveLength(3);
  });

  it('labels the container with agent, policy and policy hash', () => {
    expect(c().Labels).toEqual({
      'agent-dispatch.agent': 'api',
      'agent-dispatch.policy': 'default',
      'agent-dispatch.policy-hash': 'abcdef0123456789',
    });
  });
});

describe('repo mounts', () => {
  it('ro: the repo is bind-mounted read-only at the same absolute path', () => {
    const compiled = compile();
    expect(compiled.container.HostConfig.Mounts[0]).toEqual({
      Type: 'bind',
      Source: repo,
      Target: repo,
      ReadOnly: true,
      BindOptions: { Propagation: 'rprivate' },
    });
    expect(compiled.mounts[0]).toMatchObject({ source: repo, target: repo, mode: 'ro' });
  });

  it("rw: writable, and the container runs as the repo owner's uid", () => {
    const compiled = compile({ policy: policy({ repo: 'rw' }), repoOwner: { uid: 1234, gid: 2345 } });
    expect(compiled.container.HostConfig.Mounts[0]).toMatchObject({ Source: repo, Target: repo, ReadOnly: false });
    expect(compiled.container.User).toBe('1234:2345');
    expect(compiled.container.HostConfig.Tmpfs[layout.CONTAINER_HOME]).toContain('uid=1234,gid=2345');
  });

  it('rw with a root-owned repo never runs as root: keeps 1000 and says so', () => {
    const compiled = compile({ policy: policy({ repo: 'rw' }), repoOwner: { uid: 0, gid: 0 } });
    expect(compiled.container.User).toBe('1000:1000');
    expect(compiled.notes.join('\n')).toMatch(/owned by root/);
  });

  it('rw without a known owner uses 1000; ro ignores the owner', () => {
    expect(compile({ policy: policy({ repo: 'rw' }) }).container.User).toBe('1000:1000');
    expect(compile({ repoOwner: { uid: 1234, gid: 1234 } }).container.User).toBe('1000:1000');
  });

  it('overlay: no repo mount in the compiled spec (the dispatcher mounts a kernel overlay per dispatch); no tmpfs, no copy', () => {
    const compiled = compile({ policy: policy({ repo: 'overlay' }) });
    const mounts = compiled.container.HostConfig.Mounts;
    expect(mounts.some((m) => m.Target === repo || m.Source === repo)).toBe(false);
    expect(compiled.container.HostConfig.Tmpfs).not.toHaveProperty(repo);
    expect(compiled.container.WorkingDir).toBe(repo);
    expect(compiled.mounts[0]).toMatchObject({ kind: 'volume', source: repo, target: repo, mode: 'overlay' });
    expect(compiled.mounts.map((m) => m.mode)).toEqual(['overlay', 'rw', 'ro']);
  });

  it("overlay runs as the repo owner's uid too, so the agent can read and change the owner's 0600 files (never root)", () => {
    const compiled = compile({ policy: policy({ repo: 'overlay' }), repoOwner: { uid: 1234, gid: 2345 } });
    expect(compiled.container.User).toBe('1234:2345');
    expect(compiled.container.HostConfig.Tmpfs[layout.CONTAINER_HOME]).toContain('uid=1234,gid=2345');
    expect(namedVolumeSources(compiled)[0]).toMatch(/\.uid1234$/);
    const rootOwned = compile({ policy: policy({ repo: 'overlay' }), repoOwner: { uid: 0, gid: 0 } });
    expect(rootOwned.container.User).toBe('1000:1000');
    expect(rootOwned.notes.join('\n')).toMatch(/owned by root/);
  });


  it('adds extra mounts with ~ expanded, at the same path unless a target is given', () => {
    const compiled = compile({
      policy: policy({ mounts: [{ source: '~/datasets', mode: 'ro' }, { source: '/srv/cache', target: '/cache', mode: 'rw' }] }),
    });
    const binds = compiled.container.HostConfig.Mounts.filter((m) => m.Type === 'bind');
    expect(binds).toEqual([
      expect.objectContaining({ Source: repo, Target: repo }),
      expect.objectContaining({ Source: join(homedir(), 'datasets'), Target: join(homedir(), 'datasets'), ReadOnly: true }),
      expect.objectContaining({ Source: '/srv/cache', Target: '/cache', ReadOnly: false }),
    ]);
  });

  it('uses per-agent named volumes, scoped by config and agent directory, for Claude state (rw) and the gateway socket (ro)', () => {
    const volumes = compile({ scope: '/home/u/.config/agent-dispatch' }).container.HostConfig.Mounts.filter((m) => m.Type === 'volume');
    const scope = layout.volumeScope('/home/u/.config/agent-dispatch', repo);
    expect(scope).toMatch(/^[0-9a-f]{12}$/);
    const Labels = { 'agent-dispatch.agent': 'api', 'agent-dispatch.scope': scope, 'agent-dispatch.config-dir': '/home/u/.config/agent-dispatch' };
    expect(volumes).toEqual([
      {
        Type: 'volume',
        Source: `agent-dispatch-claude.api.${scope}`,
        Target: layout.CLAUDE_SESSIONS_DIR,
        ReadOnly: false,
        VolumeOptions: { NoCopy: true, Labels },
      },
      {
        Type: 'volume',
        Source: `agent-dispatch-gateway.api.${scope}`,
        Target: layout.GATEWAY_SOCKET_DIR,
        ReadOnly: true,
        VolumeOptions: { NoCopy: true, Labels },
      },
    ]);
  });

  it('another config directory, another agent directory, or another uid gives another session volume', () => {
    const state = (c: CompiledSandbox) => namedVolumeSources(c)[0];
    const base = state(compile({ scope: '/cfg/one' }));
    expect(state(compile({ scope: '/cfg/one' }))).toBe(base);
    expect(state(compile({ scope: '/cfg/two' }))).not.toBe(base);
    expect(state(compile({ scope: '/cfg/one', agent: { directory: join(repo, 'sub') } }))).not.toBe(base);
    expect(state(compile({ scope: '/cfg/one', policy: policy({ repo: 'rw' }), repoOwner: { uid: 1001, gid: 1001 } }))).toBe(`${base}.uid1001`);
  });

  it("volume names cannot collide across agent names: 'web' as uid 1001 is not 'web-uid1001'", () => {
    const scope = layout.volumeScope('/cfg', '/srv/web');
    expect(layout.claudeStateVolume('web', scope, 1001)).toBe(`agent-dispatch-claude.web.${scope}.uid1001`);
    expect(layout.claudeStateVolume('web-uid1001', scope)).toBe(`agent-dispatch-claude.web-uid1001.${scope}`);
    expect(layout.claudeStateVolume('web', scope, 1001)).not.toBe(layout.claudeStateVolume('web-uid1001', scope));
    // Docker's volume-name grammar
    for (const name of [layout.claudeStateVolume('a_b-C9', scope, 4242), layout.gatewayVolume('a_b-C9', scope)]) {
      expect(name).toMatch(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/);
    }
  });

  it("the scope keeps its two parts apart: ('/x', '/y/z') and ('/x/y', '/z') differ", () => {
    expect(layout.volumeScope('/x', '/y/z')).not.toBe(layout.volumeScope('/x/y', '/z'));
    expect(layout.volumeScope(undefined, '/srv/x')).not.toBe(layout.volumeScope('/cfg', '/srv/x'));
  });
});

describe('environment allowlist', () => {
  it('sets only the fixed safe values by default', () => {
    const compiled = compile({ depth: 2 });
    const env = envOf(compiled);
    expect(env).toMatchObject({
      HOME: layout.CONTAINER_HOME,
      PATH: layout.CONTAINER_PATH,
      CLAUDE_CONFIG_DIR: layout.CLAUDE_CONFIG_DIR,
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      AGENT_DISPATCH_DEPTH: '3',
    });
    expect(compiled.envNames.sort()).toEqual(Object.keys(env).sort());
    expect(compiled.missingEnv).toEqual([]);
  });

  it('AGENT_DISPATCH_DEPTH is depth + 1', () => {
    expect(envOf(compile({ depth: 0 }))['AGENT_DISPATCH_DEPTH']).toBe('1');
  });

  it('never copies a host variable that env.pass does not name', () => {
    const json = JSON.stringify(compile());
    expect(json).not.toContain('SECRET_HOST_THING');
    expect(json).not.toContain('zzz-host-only-value');
    expect(json).not.toContain('/host/bin');
  });

  it('copies env.pass names, reports missing ones, and sets env.set values', () => {
    const compiled = compile({
      policy: policy({ env: { pass: ['LANG', 'NOT_SET_ANYWHERE', 'EMPTY'], set: { TZ: 'UTC', FOO: 'bar=baz' } } }),
      hostEnv: { LANG: 'C.UTF-8', EMPTY: '', OTHER: 'x' },
    });
    const env = envOf(compiled);
    expect(env).toMatchObject({ LANG: 'C.UTF-8', EMPTY: '', TZ: 'UTC', FOO: 'bar=baz' });
    expect(env).not.toHaveProperty('NOT_SET_ANYWHERE');
    expect(env).not.toHaveProperty('OTHER');
    expect(compiled.missingEnv).toEqual(['NOT_SET_ANYWHERE']);
  });

  it('credentials inject: the container sees a placeholder; the real key appears nowhere', () => {
    const compiled = compile({
      hostEnv: { ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_AUTH_TOKEN: `${REAL_KEY}-tok`, CLAUDE_CODE_OAUTH_TOKEN: `${REAL_KEY}-oauth` },
    });
    expect(envOf(compiled)['ANTHROPIC_API_KEY']).toBe(layout.CREDENTIAL_PLACEHOLDER);
    expect(envOf(compiled)).not.toHaveProperty('ANTHROPIC_AUTH_TOKEN');
    expect(envOf(compiled)).not.toHaveProperty('CLAUDE_CODE_OAUTH_TOKEN');
    expect(JSON.stringify(compiled)).not.toContain(REAL_KEY);
  });

  it('credentials inject also holds with a policy that passes other variables', () => {
    const compiled = compile({ policy: policy({ env: { pass: ['LANG'], set: {} }, repo: 'overlay' }), hostEnv: { ANTHROPIC_API_KEY: REAL_KEY, LANG: 'C' } });
    expect(JSON.stringify(compiled)).not.toContain(REAL_KEY);
  });

  it('credentials env: the key is passed in (explicitly chosen)', () => {
    const compiled = compile({ policy: policy({ credentials: 'env' }), hostEnv: { ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: 'https://corp-proxy.example' } });
    const env = envOf(compiled);
    expect(env['ANTHROPIC_API_KEY']).toBe(REAL_KEY);
    // in gateway mode the base URL is the gateway, never the host's
    expect(env['ANTHROPIC_BASE_URL']).toBe(`http://127.0.0.1:${layout.GATEWAY_BRIDGE_PORT}`);
  });

  it("credentials env with an open network passes the host's base URL; unset credentials are not invented", () => {
    const compiled = compile({
      policy: policy({ credentials: 'env', network: { mode: 'open', allow: [] } }),
      hostEnv: { ANTHROPIC_AUTH_TOKEN: 'tok', ANTHROPIC_BASE_URL: 'https://corp-proxy.example', ANTHROPIC_API_KEY: '' },
    });
    const env = envOf(compiled);
    expect(env['ANTHROPIC_AUTH_TOKEN']).toBe('tok');
    expect(env['ANTHROPIC_BASE_URL']).toBe('https://corp-proxy.example');
    expect(env).not.toHaveProperty('ANTHROPIC_API_KEY');
  });
});

describe('reserved environment names', () => {
  it.each([
    ['default preset (gateway, inject, ro)', {}],
    ['open network, credentials env, overlay', { network: { mode: 'open' as const, allow: [] }, credentials: 'env' as const, repo: 'overlay' as const }],
    ['rw', { repo: 'rw' as const }],
  ])('every name the sandbox sets itself is reserved, so no policy can pass or set it: %s', (_label, overrides) => {
    const hostEnv = { ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_AUTH_TOKEN: 'tok', CLAUDE_CODE_OAUTH_TOKEN: 'oauth', ANTHROPIC_BASE_URL: 'https://proxy.example', LANG: 'C' };
    const compiled = compile({ policy: policy(overrides), hostEnv, depth: 1 });
    const sandboxOwn = Object.keys(envOf(compiled));
    expect(sandboxOwn.length).toBeGreaterThan(5);
    for (const name of sandboxOwn) expect([...RESERVED_ENV, ...CREDENTIAL_ENV], name).toContain(name);
  });

  it.each(['CLAUDE_CONFIG_DIR', 'DISABLE_AUTOUPDATER', 'USER', 'NO_PROXY'])('a policy may not set or pass %s', (name) => {
    expect(policySchema.safeParse({ version: 1, env: { set: { [name]: '/x' } } }).success).toBe(false);
    expect(policySchema.safeParse({ version: 1, env: { pass: [name] } }).success).toBe(false);
  });
});

describe('resources and timeout', () => {
  it('maps the default preset resources', () => {
    const host = compile().container.HostConfig;
    expect(host.Memory).toBe(2 * 1024 ** 3);
    expect(host.MemorySwap).toBe(host.Memory);
    expect(host.NanoCpus).toBe(1e9);
    expect(host.PidsLimit).toBe(512);
    expect(host.Ulimits).toEqual([{ Name: 'nofile', Soft: 4096, Hard: 4096 }, { Name: 'fsize', Soft: 1024 ** 3, Hard: 1024 ** 3 }]);
  });

  it.each([
    [{ memory: '512m', cpus: 1.5, pids: 64, nofile: 1024 }, 512 * 1024 ** 2, 1.5e9, 64, 1024],
    [{ memory: '6291456', cpus: 0.25, pids: 16, nofile: 64 }, 6 * 1024 ** 2, 2.5e8, 16, 64],
    [{ memory: '1.5g', cpus: 4, pids: 4096, nofile: 65536 }, 1.5 * 1024 ** 3, 4e9, 4096, 65536],
  ])('maps %j', (resources, memory, nanoCpus, pids, nofile) => {
    const host = compile({ policy: policy({ resources: { ...defaultPolicy.resources, ...resources } }) }).container.HostConfig;
    expect(host.Memory).toBe(memory);
    expect(host.MemorySwap).toBe(memory);
    expect(host.NanoCpus).toBe(nanoCpus);
    expect(host.PidsLimit).toBe(pids);
    expect(host.Ulimits[0]).toEqual({ Name: 'nofile', Soft: nofile, Hard: nofile });
  });

  it.each([
    ['agent timeout', { timeout: 120 }, {}, 3600, 120, false],
    ['agent 0 inherits the settings default', { timeout: 0 }, { default_timeout: 90 }, 3600, 90, false],
    ['agent default 300', {}, {}, 3600, 300, false],
    ['capped by the policy', { timeout: 5000 }, {}, 3600, 3600, true],
    ['settings default capped', { timeout: 0 }, { default_timeout: 7000 }, 600, 600, true],
  ])('timeout: %s', (_label, agent, settings, cap, expected, noted) => {
    const compiled = compile({ agent, settings, policy: policy({ resources: { ...defaultPolicy.resources, timeout: cap } }) });
    expect(compiled.timeoutSeconds).toBe(expected);
    expect(compiled.notes.some((n) => n.includes('capped'))).toBe(noted);
  });
});

describe('tool narrowing (effectiveTools)', () => {
  const settings = settingsSchema.parse({});
  const tools = (agent: Partial<AgentInput>, p: Policy = defaultPolicy, s: Settings = settings) =>
    effectiveTools(parseAgent({ directory: repo, ...agent }), s, p);

  it('caps bypassPermissions at the policy default, with a note', () => {
    const t = tools({ permission_mode: 'bypassPermissions' });
    expect(t.permissionMode).toBe('default');
    expect(t.notes.join()).toContain("'bypassPermissions' narrowed to 'default'");
  });

  it('keeps a narrower mode', () => {
    expect(tools({ permission_mode: 'plan' }).permissionMode).toBe('plan');
    expect(tools({ permission_mode: 'plan' }).notes).toEqual([]);
    expect(tools({ permission_mode: ' dontAsk ' }).permissionMode).toBe('dontAsk');
  });

  it("uses 'default' when neither agent nor settings ask (never unset), or the policy cap when it is narrower", () => {
    expect(tools({}).permissionMode).toBe('default');
    expect(tools({ permission_mode: '  ' }).permissionMode).toBe('default');
    expect(tools({}, policy({ tools: { permission_mode: 'plan', allow: null, deny: [] } })).permissionMode).toBe('plan');
    expect(tools({}, policy({ tools: { permission_mode: 'dontAsk', allow: null, deny: [] } })).permissionMode).toBe('dontAsk');
    expect(tools({}, policy({ tools: { permission_mode: 'bypassPermissions', allow: ['Read'], deny: [] } })).permissionMode).toBe('default');
    expect(tools({}, policy({ tools: { permission_mode: 'acceptEdits', allow: null, deny: [] } })).permissionMode).toBe('default');
    expect(tools({}).notes).toEqual([]);
  });

  it('inherits settings.default_permission_mode, also narrowed', () => {
    const s = settingsSchema.parse({ default_permission_mode: 'acceptEdits' });
    expect(tools({}, defaultPolicy, s).permissionMode).toBe('default');
    expect(tools({}, policy({ tools: { permission_mode: 'acceptEdits', allow: null, deny: [] } }), s).permissionMode).toBe('acceptEdits');
  });

  it('treats manual as default', () => {
    expect(tools({ permission_mode: 'manual' }).permissionMode).toBe('default');
  });

  it.each([
    ['yolo', 'default'],
    ['Plan', 'default'],
    ['BYPASSPERMISSIONS', 'bypassPermissions'],
    ['acceptedits', 'acceptEdits'],
    ['Default', 'plan'],
  ] as const)("an unknown mode (%j) gets the least permissive mode 'plan', whatever the policy's cap (%s), with a note", (mode, cap) => {
    const t = tools({ permission_mode: mode }, policy({ tools: { permission_mode: cap, allow: ['Read'], deny: [] } }));
    expect(t.permissionMode).toBe('plan');
    expect(t.notes.join()).toContain(`'${mode}' is unknown; the least permissive mode 'plan' is used`);
  });

  it('an unknown settings default mode also gets plan', () => {
    expect(tools({}, defaultPolicy, settingsSchema.parse({ default_permission_mode: 'Auto' })).permissionMode).toBe('plan');
  });

  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty'])('treats the object-prototype name %j as unknown', (mode) => {
    const t = tools({ permission_mode: mode });
    expect(t.permissionMode).toBe('plan');
    expect(t.notes.join()).toContain('is unknown');
    expect(permissionRank(mode)).toBeUndefined();
  });

  it('narrows allowed_tools to the policy allow list; Bash covers Bash(git *)', () => {
    const p = policy({ tools: { permission_mode: 'default', allow: ['Read', 'Bash'], deny: [] } });
    const t = tools({ allowed_tools: ['Read', 'Write', 'Bash(git *)', 'WebFetch'] }, p);
    expect(t.allowedTools).toEqual(['Read', 'Bash(git *)']);
    expect(t.notes.join()).toContain('Write, WebFetch');
  });

  it('a specific pattern in the policy does not cover the bare tool', () => {
    const p = policy({ tools: { permission_mode: 'default', allow: ['Bash(git *)'], deny: [] } });
    expect(tools({ allowed_tools: ['Bash', 'Bash(git *)', 'Bash(rm *)'] }, p).allowedTools).toEqual(['Bash(git *)']);
  });

  it('inherit (no agent list, no settings default) takes the policy list; explicit [] stays empty', () => {
    const p = policy({ tools: { permission_mode: 'default', allow: ['Read', 'Grep'], deny: [] } });
    expect(tools({}, p).allowedTools).toEqual(['Read', 'Grep']);
    expect(tools({ allowed_tools: null }, p).allowedTools).toEqual(['Read', 'Grep']);
    expect(tools({ allowed_tools: [] }, p).allowedTools).toEqual([]);
    const s = settingsSchema.parse({ default_allowed_tools: ['Read', 'Edit'] });
    expect(tools({}, p, s).allowedTools).toEqual(['Read']);
  });

  it('without a policy allow list, the agent (or settings) list is used as is', () => {
    expect(tools({ allowed_tools: ['Read', 'Bash(npm test)'] }).allowedTools).toEqual(['Read', 'Bash(npm test)']);
    expect(tools({}).allowedTools).toEqual([]);
    expect(tools({}, defaultPolicy, settingsSchema.parse({ default_allowed_tools: ['Grep'] })).allowedTools).toEqual(['Grep']);
  });

  it('deny = policy deny ∪ agent disallowed, and denied tools leave the allowed list', () => {
    const p = policy({ tools: { permission_mode: 'default', allow: ['Read', 'Bash', 'Edit'], deny: ['Edit', 'WebFetch'] } });
    const t = tools({ allowed_tools: ['Read', 'Bash(rm *)', 'Edit'], disallowed_tools: ['Bash', 'WebFetch'] }, p);
    expect(t.disallowedTools).toEqual(['Edit', 'WebFetch', 'Bash']);
    expect(t.allowedTools).toEqual(['Read']);
    expect(t.notes.join()).toContain('denied tools removed');
  });

  it('agent disallowed_tools [] cannot drop the policy deny list; inherit uses settings', () => {
    const p = policy({ tools: { permission_mode: 'default', allow: null, deny: ['WebSearch'] } });
    expect(tools({ disallowed_tools: [] }, p).disallowedTools).toEqual(['WebSearch']);
    const s = settingsSchema.parse({ default_disallowed_tools: ['Write'] });
    expect(tools({}, p, s).disallowedTools).toEqual(['WebSearch', 'Write']);
    expect(tools({ disallowed_tools: [] }, p, s).disallowedTools).toEqual(['WebSearch']);
  });
});

describe('managed settings', () => {
  const NO_COMMANDS = { apiKeyHelper: '', awsAuthRefresh: '', awsCredentialExport: '', gcpAuthRefresh: '', otelHeadersHelper: '', proxyAuthHelper: '' };
  const LOCKS = { allowManagedPermissionRulesOnly: true, allowManagedHooksOnly: true, disableAllHooks: true };
  /** The default `tools.mcp_servers: none`: no MCP server from any source, and claude runs no git of its own. */
  const NO_REPO_CODE = { includeGitInstructions: false, allowManagedMcpServersOnly: true, allowedMcpServers: [] };

  it('carries the effective allow and deny lists as the only permission rules, no hooks, no command settings; bypass disabled by default', () => {
    const compiled = compile({
      policy: policy({ tools: { permission_mode: 'default', allow: ['Read', 'Bash'], deny: ['WebFetch'] } }),
      agent: { allowed_tools: ['Read', 'Bash(git *)', 'Write'], disallowed_tools: ['Bash(rm:*)'] },
    });
    expect(compiled.managedSettings).toEqual({
      permissions: { allow: ['Read', 'Bash(git *)'], deny: ['WebFetch', 'Bash(rm:*)'], disableBypassPermissionsMode: 'disable' },
      ...LOCKS,
      env: expect.any(Object),
      ...NO_COMMANDS,
      ...NO_REPO_CODE,
    });
    expect(compiled.managedSettings.permissions.allow).toEqual(compiled.tools.allowedTools);
    expect(compiled.managedSettings.permissions.deny).toEqual(compiled.tools.disallowedTools);
  });

  it('does not disable bypass mode when the policy allows it (the locks stay)', () => {
    const compiled = compile({ policy: policy({ tools: { permission_mode: 'bypassPermissions', allow: ['Read'], deny: [] } }) });
    expect(compiled.managedSettings).toMatchObject({ permissions: { allow: ['Read'], deny: [] }, ...LOCKS, ...NO_COMMANDS });
    expect(compiled.managedSettings.permissions).not.toHaveProperty('disableBypassPermissionsMode');
  });

  it('an explicit empty allow list stays empty (nothing pre-approved)', () => {
    expect(compile({ agent: { allowed_tools: [] } }).managedSettings.permissions.allow).toEqual([]);
  });

  it("pins the sandbox's own environment values and empties the redirect/injection names it does not set", () => {
    const compiled = compile({ depth: 1, policy: policy({ env: { pass: [], set: { LANG: 'C.UTF-8' } } }) });
    const env = compiled.managedSettings.env;
    expect(env).toMatchObject({
      HOME: layout.CONTAINER_HOME,
      PATH: layout.CONTAINER_PATH,
      CLAUDE_CONFIG_DIR: layout.CLAUDE_CONFIG_DIR,
      AGENT_DISPATCH_DEPTH: '2',
      LANG: 'C.UTF-8',
    });
    // default preset: gateway mode, so the proxy and base URL are the sandbox's own
    expect(env['ANTHROPIC_BASE_URL']).toBe(envOf(compiled)['ANTHROPIC_BASE_URL']);
    expect(env['HTTPS_PROXY']).toBe(envOf(compiled)['HTTPS_PROXY']);
    expect(env['http_proxy']).toBe(envOf(compiled)['http_proxy']);
    for (const name of ['LD_PRELOAD', 'LD_LIBRARY_PATH', 'BASH_ENV', 'NODE_OPTIONS', 'NODE_EXTRA_CA_CERTS', 'GIT_CONFIG_PARAMETERS', 'RIPGREP_CONFIG_PATH']) {
      expect(env[name]).toBe('');
    }
    expect(env).toMatchObject(PINNED_ENV);
    // every pinned value is the container's, empty or a fixed neutral one: nothing the container does not already have
    for (const [name, value] of Object.entries(env)) expect(value === '' || envOf(compiled)[name] === value || PINNED_ENV[name] === value, name).toBe(true);
  });

  it('never carries a secret from the host: credentials, env.pass names, a base URL with credentials in it', () => {
    const open = policy({ credentials: 'env', network: { mode: 'open' }, env: { pass: ['GITHUB_TOKEN', 'NODE_OPTIONS'], set: {} } });
    const hostEnv = { ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: 'https://user:pw@proxy.example', GITHUB_TOKEN: 'ghp_secret', NODE_OPTIONS: '--max-old-space-size=512' };
    const compiled = compile({ policy: open, hostEnv });
    const text = JSON.stringify(compiled.managedSettings);
    for (const secret of [REAL_KEY, 'ghp_secret', 'user:pw', '--max-old-space-size']) expect(text).not.toContain(secret);
    const env = compiled.managedSettings.env;
    for (const name of ['ANTHROPIC_API_KEY', 'GITHUB_TOKEN', 'NODE_OPTIONS']) expect(env).not.toHaveProperty(name);
    expect(env['LD_PRELOAD']).toBe('');
  });

  it("credentials: env pins the host's base URL to its value, so a repo's settings env cannot send the key elsewhere", () => {
    const open = policy({ credentials: 'env', network: { mode: 'open' } });
    const compiled = compile({ policy: open, hostEnv: { ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: 'https://corp-proxy.example/anthropic' } });
    expect(compiled.managedSettings.env['ANTHROPIC_BASE_URL']).toBe('https://corp-proxy.example/anthropic');
    expect(envOf(compiled)['ANTHROPIC_BASE_URL']).toBe('https://corp-proxy.example/anthropic');
    expect(compiled.withheldEnv).toEqual([]);
    expect(JSON.stringify(compiled.managedSettings)).not.toContain(REAL_KEY);
  });

  it.each(['https://user:pw@proxy.example', 'https://token@proxy.example/v1', 'http://u:p@[::1]:8080', 'not a url user:pw@proxy'])(
    'credentials: env withholds a base URL with userinfo (%s): not in the container, pinned empty, said in a note and a warning',
    (url) => {
      const open = policy({ credentials: 'env', network: { mode: 'open' } });
      const compiled = compile({ policy: open, hostEnv: { ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: url } });
      expect(envOf(compiled)).not.toHaveProperty('ANTHROPIC_BASE_URL');
      expect(compiled.managedSettings.env['ANTHROPIC_BASE_URL']).toBe('');
      expect(JSON.stringify(compiled)).not.toContain(url);
      expect(compiled.withheldEnv.map((w) => w.name)).toEqual(['ANTHROPIC_BASE_URL']);
      expect(compiled.notes.join('\n')).toContain('ANTHROPIC_BASE_URL is not passed into the container');
      const findings = lintCompiled(compiled);
      expect(findings.filter((f) => f.code === 'env-withheld')).toEqual([
        { severity: 'warning', code: 'env-withheld', message: expect.stringContaining('ANTHROPIC_BASE_URL is not passed into the container') },
      ]);
      expect(findings.some((f) => f.code === 'narrowed' && f.message.includes('ANTHROPIC_BASE_URL'))).toBe(false);
    },
  );

  it.each([
    ['https://proxy.example', false],
    ['https://proxy.example/path@x', false],
    ['https://proxy.example/?next=a@b', false],
    ['proxy.example:8080', false],
    ['https://user@proxy.example', true],
    ['https://:pw@proxy.example', true],
    ['https://@proxy.example', true],
  ] as const)('hasUserinfo(%j) = %s', (url, expected) => {
    expect(hasUserinfo(url)).toBe(expected);
  });

  it("policy show's redaction also hides the host base URL pinned in the managed settings", () => {
    const open = policy({ credentials: 'env', network: { mode: 'open' } });
    const compiled = compile({ policy: open, hostEnv: { ANTHROPIC_API_KEY: REAL_KEY, ANTHROPIC_BASE_URL: 'https://corp-proxy.example' } });
    const safe = redactCompiled(compiled, open);
    expect(JSON.stringify(safe)).not.toContain('corp-proxy.example');
    expect(JSON.stringify(safe)).not.toContain(REAL_KEY);
    expect(safe.managedSettings.env['ANTHROPIC_BASE_URL']).toBe('<passed from the server environment>');
    expect(safe.managedSettings.env['HOME']).toBe(layout.CONTAINER_HOME);
    // without a host value the pinned empty string stays (nothing came from the host)
    expect(redactCompiled(compile({ policy: open, hostEnv: {} }), open).managedSettings.env['ANTHROPIC_BASE_URL']).toBe('');
  });

  it('credentials: env without a host base URL pins it empty, so no settings file can point the key elsewhere', () => {
    const open = policy({ credentials: 'env', network: { mode: 'open' } });
    const compiled = compile({ policy: open, hostEnv: { ANTHROPIC_API_KEY: REAL_KEY } });
    expect(compiled.managedSettings.env['ANTHROPIC_BASE_URL']).toBe('');
    expect(compiled.managedSettings.env['HTTPS_PROXY']).toBe('');
  });

  it.each(['plan', 'acceptEdits', 'dontAsk', 'auto'] as const)('disables bypass mode under a %s cap', (mode) => {
    const compiled = compile({ policy: policy({ tools: { permission_mode: mode, allow: null, deny: [] } }) });
    expect(compiled.managedSettings.permissions.disableBypassPermissionsMode).toBe('disable');
  });
});

describe('claude args', () => {
  it('budget, model and one --allowedTools per tool', () => {
    expect(compile({ agent: { max_budget_usd: 0.5, model: 'sonnet', allowed_tools: ['Read', 'Bash(git *)'] } }).claudeArgs).toEqual([
      '--max-budget-usd',
      '0.5',
      '--model',
      'sonnet',
      '--permission-mode',
      'default',
      '--setting-sources',
      'project',
      '--strict-mcp-config',
      '--allowedTools',
      'Read',
      '--allowedTools',
      'Bash(git *)',
    ]);
  });

  it("only --permission-mode default and --setting-sources project for a bare agent under the default policy (the mode is always passed, so a repo's defaultMode cannot raise it)", () => {
    expect(compile().claudeArgs).toEqual(['--permission-mode', 'default', '--setting-sources', 'project', '--strict-mcp-config']);
  });

  it('--setting-sources project is always passed: user settings and .claude.json MCP servers in the session volume are never read', () => {
    for (const c of [compile(), compile({ policy: policy({ tools: { permission_mode: 'bypassPermissions', allow: null, deny: [] } }) })]) {
      const i = c.claudeArgs.indexOf('--setting-sources');
      expect(c.claudeArgs[i + 1]).toBe('project');
      expect(c.claudeArgs.filter((a) => a === '--setting-sources')).toHaveLength(1);
    }
  });

  it('--permission-mode is passed whatever the policy cap', () => {
    for (const [cap, expected] of [
      ['plan', 'plan'],
      ['dontAsk', 'dontAsk'],
      ['default', 'default'],
      ['acceptEdits', 'default'],
      ['bypassPermissions', 'default'],
    ] as const) {
      const args = compile({ policy: policy({ tools: { permission_mode: cap, allow: ['Read'], deny: [] } }) }).claudeArgs;
      expect(args.slice(0, 2)).toEqual(['--permission-mode', expected]);
    }
  });

  it('inherits settings defaults', () => {
    const compiled = compile({
      settings: {
        default_max_budget_usd: 2,
        default_permission_mode: 'plan',
        default_allowed_tools: ['Read', 'Grep'],
        default_disallowed_tools: ['WebFetch'],
      },
    });
    expect(compiled.claudeArgs).toEqual([
      '--max-budget-usd',
      '2',
      '--permission-mode',
      'plan',
      '--setting-sources',
      'project',
      '--strict-mcp-config',
      '--allowedTools',
      'Read',
      '--allowedTools',
      'Grep',
      '--disallowedTools',
      'WebFetch',
    ]);
  });

  it('explicit allowed_tools [] yields no --allowedTools even with settings defaults', () => {
    const args = compile({ agent: { allowed_tools: [] }, settings: { default_allowed_tools: ['Read'] } }).claudeArgs;
    expect(args).not.toContain('--allowedTools');
  });

  it('a budget of 0 falls back to the settings default; none means no flag', () => {
    const settings = settingsSchema.parse({ default_max_budget_usd: 1.25 });
    expect(effectiveBudget(parseAgent({ directory: repo, max_budget_usd: 0 }), settings)).toBe(1.25);
    expect(effectiveBudget(parseAgent({ directory: repo }), settingsSchema.parse({}))).toBeUndefined();
    expect(compile({ agent: { max_budget_usd: 0 } }).claudeArgs).not.toContain('--max-budget-usd');
  });

  it('a narrowed mode is what is passed', () => {
    expect(compile({ agent: { permission_mode: 'bypassPermissions' } }).claudeArgs).toEqual(['--permission-mode', 'default', '--setting-sources', 'project', '--strict-mcp-config']);
  });

  it('a policy deny list becomes --disallowedTools', () => {
    const args = compile({ policy: policy({ tools: { permission_mode: 'default', allow: null, deny: ['WebFetch', 'WebSearch'] } }) }).claudeArgs;
    expect(args).toEqual(['--permission-mode', 'default', '--setting-sources', 'project', '--strict-mcp-config', '--disallowedTools', 'WebFetch', '--disallowedTools', 'WebSearch']);
  });

  it('refuses a model that starts with -', () => {
    expectInvalidInput(() => compile({ agent: { model: '--dangerously-skip-permissions' } }));
  });

  it('refuses an allowed or disallowed tool that starts with -', () => {
    expectInvalidInput(() => compile({ agent: { allowed_tools: ['Read', '--dangerously-skip-permissions'] } }));
    expectInvalidInput(() => compile({ agent: { disallowed_tools: ['-x'] } }));
    expectInvalidInput(() => compile({ settings: { default_allowed_tools: ['-p'] } }));
  });

  it('refuses a permission mode that starts with -', () => {
    const agent = parseAgent({ directory: repo });
    const settings = settingsSchema.parse({});
    const error = expectInvalidInput(() =>
      claudeFlags(agent, settings, { permissionMode: '--dangerously-skip-permissions' as never, allowedTools: [], disallowedTools: [], notes: [] }),
    );
    expect(error.hint).toContain('agents.yaml');
  });

  it('an agent permission_mode starting with - never reaches argv: it is unknown, so plan is used', () => {
    const compiled = compile({ agent: { permission_mode: '--dangerously-skip-permissions' } });
    expect(compiled.claudeArgs).toEqual(['--permission-mode', 'plan', '--setting-sources', 'project', '--strict-mcp-config']);
    expect(compiled.notes.join()).toContain('is unknown');
  });

  it.each<[string, Parameters<typeof compile>[0], string]>([
    ['allowed_tools', { agent: { allowed_tools: ['Read', 'Read(*) Bash'] } }, 'Read(*) Bash'],
    ['allowed_tools', { agent: { allowed_tools: ['Grep(x),WebFetch'] } }, 'Grep(x),WebFetch'],
    ['allowed_tools', { agent: { allowed_tools: ['Read Bash'] } }, 'Read Bash'],
    ['allowed_tools', { agent: { allowed_tools: [' Read'] } }, ' Read'],
    ['allowed_tools', { agent: { allowed_tools: ['Bash(a)(b)'] } }, 'Bash(a)(b)'],
    ['allowed_tools', { agent: { allowed_tools: [''] } }, "''"],
    ['disallowed_tools', { agent: { disallowed_tools: ['WebFetch,WebSearch'] } }, 'WebFetch,WebSearch'],
    ['settings.default_allowed_tools', { settings: { default_allowed_tools: ['Read,Write'] } }, 'Read,Write'],
    ['settings.default_disallowed_tools', { settings: { default_disallowed_tools: ['Bash(x) Edit'] } }, 'Bash(x) Edit'],
  ])('refuses a %s entry that is not one tool pattern (%j)', (label, options, entry) => {
    let caught: unknown;
    try {
      compile(options);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(AppError);
    expect((caught as AppError).code).toBe('INVALID_INPUT');
    expect((caught as AppError).message).toContain(`${label} entry '`);
    expect((caught as AppError).message).toContain(entry);
    expect((caught as AppError).message).toContain('not a single tool pattern');
  });

  it("a smuggling entry is refused even when the policy's allow list would cover its first name", () => {
    // before: toolName('Read(*) Bash') is 'Read', so it was kept and claude split it into Read(*) and Bash
    const p = policy({ tools: { permission_mode: 'default', allow: ['Read', 'Grep'], deny: [] } });
    expect(() => compile({ policy: p, agent: { allowed_tools: ['Read(*) Bash'] } })).toThrow(/not a single tool pattern/);
    expect(() => compile({ policy: p, agent: { allowed_tools: ['Grep(x),WebFetch'] } })).toThrow(/not a single tool pattern/);
  });

  it('an unused settings default is not checked when the agent has its own list', () => {
    expect(() => compile({ agent: { allowed_tools: ['Read'] }, settings: { default_allowed_tools: ['Read Bash'] } })).not.toThrow();
  });

  it('valid patterns pass, including MCP names and specifiers with spaces, colons and commas', () => {
    const allowed = ['mcp__server__tool', 'mcp__srv__*', 'mcp__srv', 'Bash(git diff:*)', 'Bash(git diff *)', 'Bash(npm run test, lint)', 'WebFetch(domain:example.com)', 'Read(~/x/**)', 'Edit(src/*.ts)'];
    expect(compile({ agent: { allowed_tools: allowed } }).claudeArgs.filter((_, i, a) => a[i - 1] === '--allowedTools')).toEqual(allowed);
  });

  it('checked passes ordinary values through', () => {
    expect(checked('model', 'claude-sonnet-4-5')).toBe('claude-sonnet-4-5');
    expect(checked('tool', 'Bash(git log --oneline)')).toBe('Bash(git log --oneline)');
  });
});

describe('resolveAgentPolicy', () => {
  it('an agent tool entry that is not one tool pattern is a compile-failed error naming it', () => {
    const config = configSchema.parse({ agents: { api: { directory: repo, allowed_tools: ['Read', 'Read(*) Bash'] } } });
    const report = resolveAgentPolicy(config, 'api', { configDir: join(repo, 'no-config-here'), home: '/home/tester', hostEnv: {} });
    expect(report.compiled).toBeUndefined();
    expect(report.findings).toContainEqual(
      expect.objectContaining({ severity: 'error', code: 'compile-failed', message: expect.stringContaining("allowed_tools entry 'Read(*) Bash'") }),
    );
  });

  it('a valid agent compiles with --permission-mode always set', () => {
    const config = configSchema.parse({ agents: { api: { directory: repo } } });
    const report = resolveAgentPolicy(config, 'api', { configDir: join(tmpdir(), 'ad-no-config-here'), home: '/home/tester', hostEnv: {} });
    expect(report.findings.filter((f) => f.severity === 'error')).toEqual([]);
    expect(report.compiled?.claudeArgs).toEqual(['--permission-mode', 'default', '--setting-sources', 'project', '--strict-mcp-config']);
  });

  it('scopes the volumes by its config directory: two configs with an agent of the same name get different ones', () => {
    const config = configSchema.parse({ agents: { api: { directory: repo } } });
    const volumesFor = (configDir: string) =>
      namedVolumeSources(resolveAgentPolicy(config, 'api', { configDir, home: '/home/tester', hostEnv: {} }).compiled!);
    const one = volumesFor(join(repo, 'config-one'));
    const two = volumesFor(join(repo, 'config-two'));
    expect(one[0]).toBe(layout.claudeStateVolume('api', layout.volumeScope(join(repo, 'config-one'), repo)));
    expect(one[0]).not.toBe(two[0]);
    expect(one[1]).not.toBe(two[1]);
    expect(volumesFor(join(repo, 'config-one'))).toEqual(one);
  });
});

describe('isValidToolPattern', () => {
  it.each(['Read', 'Bash', 'mcp__server__tool', 'mcp__my-server__do_thing', 'mcp__srv__*', 'Bash(git diff:*)', 'Bash(git diff *)', 'Bash(echo a,b)', 'Bash()', 'NotebookEdit', 'Task.v2'])(
    '%j is one tool pattern',
    (entry) => {
      expect(isValidToolPattern(entry)).toBe(true);
      expect(toolPatternProblem(entry)).toBeUndefined();
    },
  );

  it.each(['', ' ', 'Read Bash', 'Read,Bash', 'Read(*) Bash', 'Grep(x),WebFetch', 'Bash(x)Edit', 'Bash(a(b))', 'Bash(x', 'Bash)', '(x)', 'Read\tBash', 'Read\nBash', 'Bash(a\nb)', '-x', '--dangerously-skip-permissions', 'Read;Bash', 'Read|Bash'])(
    '%j is not',
    (entry) => {
      expect(isValidToolPattern(entry)).toBe(false);
      expect(toolPatternProblem(entry)).toContain(entry);
    },
  );
});

describe('extra mounts are bound at their canonical path', () => {
  const withMounts = (mounts: PolicyInput['mounts'], realpath?: (p: string) => string) => {
    const input: CompileInput = {
      agentName: 'api',
      agent: parseAgent({ directory: repo }),
      settings: settingsSchema.parse({}),
      policy: policy({ mounts }),
      policyRef: 'default',
      policyHash: 'abcdef0123456789',
      hostEnv: {},
      depth: 0,
      ...(realpath ? { realpath } : {}),
    };
    return compileSandbox(input).container.HostConfig.Mounts.filter((m) => m.Type === 'bind').slice(1);
  };

  it('a symlinked source is bound at its target; with no target it appears at the path as written', () => {
    const realpath = (p: string) => (p === '/srv/link' ? '/srv/real' : p.startsWith('/srv/link/') ? `/srv/real${p.slice(9)}` : p);
    expect(withMounts([{ source: '/srv/link' }, { source: '/srv/link/sub/', target: '/data/' }], realpath)).toEqual([
      expect.objectContaining({ Source: '/srv/real', Target: '/srv/link' }),
      expect.objectContaining({ Source: '/srv/real/sub', Target: '/data' }),
    ]);
  });

  it('dot segments are resolved (real file system)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ad-mount-'));
    try {
      mkdirSync(join(dir, 'real'));
      symlinkSync(join(dir, 'real'), join(dir, 'link'));
      expect(withMounts([{ source: `${dir}/x/../link`, target: '/data' }])).toEqual([expect.objectContaining({ Source: realpathSync(join(dir, 'real')), Target: '/data' })]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('parseSize', () => {
  it.each([
    ['1024', 1024],
    ['1k', 1024],
    ['512m', 512 * 1024 ** 2],
    ['2G', 2 * 1024 ** 3],
    [' 1.5g ', 1.5 * 1024 ** 3],
  ])('%j is %d bytes', (size, bytes) => {
    expect(parseSize(size)).toBe(bytes);
  });

  it('throws on something that is not a size', () => {
    expect(() => parseSize('lots')).toThrow('not a size');
  });
});

describe('repo: rw protects .git (repo_git)', () => {
  const rw = (extra: Partial<PolicyInput> = {}) => policy({ repo: 'rw', ...extra });
  const binds = (c: CompiledSandbox) => c.container.HostConfig.Mounts.filter((m) => m.Type === 'bind').map((m) => [m.Source, m.Target, m.ReadOnly]);

  it('a .git directory is bound read-only over the writable repo', () => {
    const c = compile({ policy: rw(), repoGit: { kind: 'dir' } });
    expect(binds(c)).toEqual([
      [repo, repo, false],
      [`${repo}/.git`, `${repo}/.git`, true],
    ]);
    expect(c.mounts.find((m) => m.target === `${repo}/.git`)?.what).toContain('read-only');
  });

  it('a .git file is bound read-only, and the git dir it names too when that lies inside the repo', () => {
    expect(binds(compile({ policy: rw(), repoGit: { kind: 'file', gitdir: '/elsewhere/main/.git/worktrees/x', missing: false } }))).toEqual([
      [repo, repo, false],
      [`${repo}/.git`, `${repo}/.git`, true],
    ]);
    expect(binds(compile({ policy: rw(), repoGit: { kind: 'file', gitdir: `${repo}/.realgit`, missing: false } }))).toEqual([
      [repo, repo, false],
      [`${repo}/.git`, `${repo}/.git`, true],
      [`${repo}/.realgit`, `${repo}/.realgit`, true],
    ]);
  });

  it('no .git: nothing is bound (a bind would create one on the host), and a note says what that means', () => {
    const c = compile({ policy: rw(), repoGit: { kind: 'absent' } });
    expect(binds(c)).toEqual([[repo, repo, false]]);
    expect(c.notes.join('\n')).toContain('has no .git');
  });

  it.each([
    [{ kind: 'symlink' } as RepoGit, 'symbolic link'],
    [{ kind: 'other' } as RepoGit, 'special file'],
    [{ kind: 'file', gitdir: '/r/.missing', missing: true } as RepoGit, 'does not exist'],
  ])('refuses what a read-only bind cannot protect: %j', (repoGit, why) => {
    const git = repoGit.kind === 'file' ? { ...repoGit, gitdir: `${repo}/.missing` } : repoGit;
    expect(() => compile({ policy: rw(), repoGit: git })).toThrow(why);
  });

  it('repo_git: writable, ro and overlay: no .git bind', () => {
    expect(binds(compile({ policy: rw({ repo_git: 'writable' }), repoGit: { kind: 'dir' } }))).toEqual([[repo, repo, false]]);
    expect(binds(compile({ policy: policy({ repo: 'ro' }), repoGit: { kind: 'dir' } }))).toEqual([[repo, repo, true]]);
    expect(binds(compile({ policy: policy({ repo: 'overlay' }), repoGit: { kind: 'dir' } })).every(([, target]) => target !== `${repo}/.git`)).toBe(true);
  });

  it('inspectRepoGit reads the real file system: directory, file with a relative gitdir, link, nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ad-repogit-'));
    try {
      expect(inspectRepoGit(dir)).toEqual({ kind: 'absent' });
      mkdirSync(join(dir, '.git'));
      expect(inspectRepoGit(dir)).toEqual({ kind: 'dir' });
      rmSync(join(dir, '.git'), { recursive: true });
      mkdirSync(join(dir, 'real'));
      writeFileSync(join(dir, '.git'), 'gitdir: real\n');
      expect(inspectRepoGit(dir)).toEqual({ kind: 'file', gitdir: join(realpathSync(dir), 'real'), missing: false });
      writeFileSync(join(dir, '.git'), 'gitdir: ../gone\n');
      expect(inspectRepoGit(dir)).toEqual({ kind: 'file', gitdir: join(dirname(dir), 'gone'), missing: true });
      rmSync(join(dir, '.git'));
      symlinkSync('real', join(dir, '.git'));
      expect(inspectRepoGit(dir)).toEqual({ kind: 'symlink' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gitdirOf: absolute, relative to the repo, or none', () => {
    expect(gitdirOf('gitdir: /a/b/.git/worktrees/x\n', '/r')).toBe('/a/b/.git/worktrees/x');
    expect(gitdirOf('gitdir: ../.git/modules/sub', '/p/sub')).toBe('/p/.git/modules/sub');
    expect(gitdirOf('not a gitfile', '/r')).toBeUndefined();
  });
});

describe('tools.mcp_servers', () => {
  const withServers = (mcp_servers: Policy['tools']['mcp_servers']) =>
    compile({ policy: policy({ tools: { ...defaultPolicy.tools, mcp_servers } }) });

  it('none: an empty managed allowlist only the managed file may set, and --strict-mcp-config', () => {
    const c = withServers('none');
    expect(c.managedSettings).toMatchObject({ allowManagedMcpServersOnly: true, allowedMcpServers: [] });
    expect(c.claudeArgs).toContain('--strict-mcp-config');
  });

  it('a list: only those names, no --strict-mcp-config (it would drop them too)', () => {
    const c = withServers(['docs', 'search']);
    expect(c.managedSettings).toMatchObject({ allowManagedMcpServersOnly: true, allowedMcpServers: [{ serverName: 'docs' }, { serverName: 'search' }] });
    expect(c.claudeArgs).not.toContain('--strict-mcp-config');
  });

  it('repo: no MCP restriction at all', () => {
    const c = withServers('repo');
    expect(c.managedSettings).not.toHaveProperty('allowedMcpServers');
    expect(c.managedSettings).not.toHaveProperty('allowManagedMcpServersOnly');
    expect(c.claudeArgs).not.toContain('--strict-mcp-config');
  });

  it('claude runs no git of its own whatever the policy (includeGitInstructions off, its env switch pinned)', () => {
    for (const c of [withServers('none'), withServers('repo')]) {
      expect(c.managedSettings.includeGitInstructions).toBe(false);
      expect(c.managedSettings.env['CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS']).toBe('1');
    }
  });

  it('a policy that sets a pinned name itself keeps its value', () => {
    const c = compile({ policy: policy({ env: { pass: [], set: { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'user.name', GIT_CONFIG_VALUE_0: 'bot' } } }) });
    expect(c.managedSettings.env['GIT_CONFIG_COUNT']).toBe('1');
  });
});
