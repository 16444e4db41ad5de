import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bySeverity, lintCompiled, lintPolicy, worstSeverity, type Finding } from '../../src/policy/lint.js';
import { loadPolicy, presetNames } from '../../src/policy/load.js';
import { policySchema, type Policy, type PolicyInput } from '../../src/policy/schema.js';
import type { CompiledSandbox } from '../../src/policy/compile.js';

const HOME = '/home/tester';
const configDir = mkdtempSync(join(tmpdir(), 'ad-lint-'));
afterAll(() => rmSync(configDir, { recursive: true, force: true }));

function policy(overrides: Partial<PolicyInput> = {}): Policy {
  return policySchema.parse({ version: 1, ...overrides });
}

function lint(overrides: Partial<PolicyInput> = {}, repo?: string): Finding[] {
  return lintPolicy(policy(overrides), { home: HOME, ...(repo ? { repo } : {}) });
}

function codes(findings: Finding[], severity?: Finding['severity']): string[] {
  return findings.filter((f) => !severity || f.severity === severity).map((f) => f.code);
}

function mount(source: string, extra: { target?: string; mode?: 'ro' | 'rw' } = {}): Partial<PolicyInput> {
  return { mounts: [{ source, ...extra }] };
}

describe('shipped presets', () => {
  it.each(presetNames())('%s has no error findings', (name) => {
    const load = loadPolicy(name, configDir);
    if (load.kind !== 'ok') throw new Error(`${name} does not load`);
    expect(codes(lintPolicy(load.policy, { home: HOME, repo: `${HOME}/projects/app` }), 'error')).toEqual([]);
  });

  it('the default preset has no findings at all', () => {
    const load = loadPolicy('default', configDir);
    if (load.kind !== 'ok') throw new Error('default does not load');
    expect(lintPolicy(load.policy, { home: HOME })).toEqual([]);
  });
});

describe('mounts', () => {
  it.each([
    ['/var/run/docker.sock', 'mount-docker-socket'],
    ['/run/docker.sock', 'mount-docker-socket'],
    ['/run/containerd/containerd.sock', 'mount-docker-socket'],
    [`${HOME}/.local/share/podman.sock`, 'mount-docker-socket'],
    ['/var/run', 'mount-docker-socket'],
    ['/', 'mount-root'],
    ['~', 'mount-home'],
    ['~/', 'mount-home'],
    [HOME, 'mount-home'],
    [`${HOME}/`, 'mount-home'],
    ['/home', 'mount-home'],
    ['~/.ssh', 'mount-credentials'],
    [`${HOME}/.ssh/id_ed25519`, 'mount-credentials'],
    ['~/.aws', 'mount-credentials'],
    ['~/.config/gcloud', 'mount-credentials'],
    ['~/.claude', 'mount-credentials'],
    ['~/.config/agent-dispatch', 'mount-credentials'],
    ['/etc', 'mount-system'],
    ['/usr', 'mount-system'],
    ['/root', 'mount-system'],
    ['/proc/1/root', 'mount-system'],
    ['/sys', 'mount-system'],
    ['/dev', 'mount-system'],
    ['/var/lib/docker/volumes', 'mount-system'],
  ])('%s → %s (error)', (source, code) => {
    const findings = lint(mount(source));
    expect(findings).toContainEqual(expect.objectContaining({ severity: 'error', code }));
    expect(findings.find((f) => f.code === code)!.message).toContain(source);
    expect(findings.find((f) => f.code === code)!.fix).toBeTruthy();
  });

  it.each([`${HOME}/projects/data`, '/srv/datasets', '/opt/models/llama', '/etc/ssl/certs', '~/projects/shared-lib', `${HOME}/.sshx`])(
    '%s is fine read-only',
    (source) => {
      expect(lint(mount(source))).toEqual([]);
    },
  );

  it('flags a docker socket as a mount target too', () => {
    expect(codes(lint(mount('/srv/empty', { target: '/var/run/docker.sock' })), 'error')).toEqual(['mount-docker-socket']);
  });

  it('warns about a writable extra mount', () => {
    expect(lint(mount('/srv/cache', { mode: 'rw' }))).toEqual([expect.objectContaining({ severity: 'warning', code: 'mount-rw' })]);
  });

  it('expands ~ against the context home, not the real one', () => {
    const other = lintPolicy(policy(mount('~/.ssh')), { home: '/Users/someone' });
    expect(other).toContainEqual(expect.objectContaining({ code: 'mount-credentials', message: expect.stringContaining('~/.ssh') }));
  });
});

describe('network', () => {
  it('open with inject: a warning and an inject-without-gateway error', () => {
    const findings = lint({ network: { mode: 'open', allow: [] } });
    expect(findings).toContainEqual(expect.objectContaining({ severity: 'warning', code: 'network-open' }));
    expect(findings).toContainEqual(expect.objectContaining({ severity: 'error', code: 'inject-without-gateway' }));
    expect(worstSeverity(findings)).toBe('error');
  });

  it('open with credentials env: warnings only', () => {
    const findings = lint({ network: { mode: 'open', allow: [] }, credentials: 'env' });
    expect(codes(findings).sort()).toEqual(['credentials-env', 'network-open']);
    expect(worstSeverity(findings)).toBe('warning');
  });

  it('open with a rw repo is flagged', () => {
    expect(codes(lint({ network: { mode: 'open', allow: [] }, credentials: 'env', repo: 'rw' }))).toContain('rw-with-open-network');
  });

  it.each(['*', '*:443', '*:*', '*.com', '*.io:8443'])('%s in network.allow is an error', (pattern) => {
    expect(lint({ network: { mode: 'gateway', allow: [pattern] } })).toEqual([expect.objectContaining({ severity: 'error', code: 'network-wildcard' })]);
  });

  it('a wildcard under a real domain is fine; any port is a warning', () => {
    expect(lint({ network: { mode: 'gateway', allow: ['*.example.com', 'api.example.com:8443'] } })).toEqual([]);
    expect(lint({ network: { mode: 'gateway', allow: ['example.com:*'] } })).toEqual([expect.objectContaining({ severity: 'warning', code: 'network-any-port' })]);
  });
});

describe('credentials, env and tools', () => {
  it('credentials env is a warning', () => {
    expect(lint({ credentials: 'env' })).toEqual([expect.objectContaining({ severity: 'warning', code: 'credentials-env' })]);
  });

  it.each(['GITHUB_TOKEN', 'NPM_TOKEN', 'AWS_ACCESS_KEY_ID', 'DB_PASSWORD', 'STRIPE_SECRET', 'OPENAI_API_KEY', 'GH_HOST'])(
    'a secret-looking env.pass name (%s) is a warning',
    (name) => {
      expect(lint({ env: { pass: [name], set: {} } })).toEqual([
        expect.objectContaining({ severity: 'warning', code: 'secret-env-pass', message: expect.stringContaining(name) }),
      ]);
    },
  );

  it.each(['LANG', 'TZ', 'NODE_ENV', 'CI'])('an ordinary env.pass name (%s) is fine', (name) => {
    expect(lint({ env: { pass: [name], set: {} } })).toEqual([]);
  });

  it('bypassPermissions without an allow list is a warning; with one it is not', () => {
    expect(lint({ tools: { permission_mode: 'bypassPermissions', allow: null, deny: [] } })).toEqual([
      expect.objectContaining({ severity: 'warning', code: 'bypass-without-allowlist' }),
    ]);
    expect(lint({ tools: { permission_mode: 'bypassPermissions', allow: ['Read'], deny: [] } })).toEqual([]);
  });

  it('repo rw is noted (info)', () => {
    expect(lint({ repo: 'rw' })).toEqual([expect.objectContaining({ severity: 'info', code: 'repo-rw' })]);
    expect(worstSeverity(lint({ repo: 'rw' }))).toBe('info');
  });
});

describe('agent repo', () => {
  it.each([
    [HOME, 'repo-mount-home'],
    [`${HOME}/`, 'repo-mount-home'],
    ['/home', 'repo-mount-home'],
    ['/', 'repo-mount-root'],
    ['/etc', 'repo-mount-system'],
    [`${HOME}/.ssh`, 'repo-mount-credentials'],
  ])('an agent directory of %s is an error (%s)', (repo, code) => {
    const findings = lint({}, repo);
    expect(findings).toEqual([expect.objectContaining({ severity: 'error', code })]);
    expect(findings[0]!.fix).toContain('project directory');
  });

  it('a project directory is fine', () => {
    expect(lint({}, `${HOME}/projects/app`)).toEqual([]);
    expect(lint({}, '/srv/repos/api')).toEqual([]);
  });
});

describe('lintCompiled and worstSeverity', () => {
  it('turns notes and missing env into info findings', () => {
    const compiled = { notes: ["permission_mode 'bypassPermissions' narrowed to 'default' by the policy"], missingEnv: ['LANG'] } as unknown as CompiledSandbox;
    expect(lintCompiled(compiled)).toEqual([
      expect.objectContaining({ severity: 'info', code: 'narrowed' }),
      expect.objectContaining({ severity: 'info', code: 'env-missing', message: expect.stringContaining('LANG') }),
    ]);
  });

  it('ranks error > warning > info > nothing', () => {
    const f = (severity: Finding['severity']): Finding => ({ severity, code: 'x', message: 'x' });
    expect(worstSeverity([])).toBeUndefined();
    expect(worstSeverity([f('info')])).toBe('info');
    expect(worstSeverity([f('info'), f('warning')])).toBe('warning');
    expect(worstSeverity([f('warning'), f('error'), f('info')])).toBe('error');
  });
});

describe('bySeverity', () => {
  it('orders errors, then warnings, then info, keeping the order within each', () => {
    const f = (severity: 'error' | 'warning' | 'info', code: string) => ({ severity, code, message: code });
    const sorted = bySeverity([f('info', 'i1'), f('warning', 'w1'), f('error', 'e1'), f('warning', 'w2'), f('error', 'e2')]);
    expect(sorted.map((x) => x.code)).toEqual(['e1', 'e2', 'w1', 'w2', 'i1']);
  });
});
