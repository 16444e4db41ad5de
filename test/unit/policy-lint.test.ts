import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { blockingFindings, bySeverity, EXFIL_HOSTS, exfilChannel, ipv4Literal, lintCompiled, lintPolicy, SOCKET_SCAN, worstSeverity, type Finding, type LintContext } from '../../src/policy/lint.js';
import { ICANN_SUFFIXES, PRIVATE_SUFFIXES } from '../../src/policy/public-suffixes.js';
import { loadPolicy, presetNames } from '../../src/policy/load.js';
import { policySchema, type Policy, type PolicyInput } from '../../src/policy/schema.js';
import type { CompiledSandbox } from '../../src/policy/compile.js';

const HOME = '/home/tester';
const configDir = mkdtempSync(join(tmpdir(), 'ad-lint-'));
afterAll(() => rmSync(configDir, { recursive: true, force: true }));

function policy(overrides: Partial<PolicyInput> = {}): Policy {
  return policySchema.parse({ version: 1, ...overrides });
}

/** A fake file system's symlinks: a path whose prefix is a link resolves through it; nothing else moves. */
function fakeRealpath(links: Record<string, string> = {}): (p: string) => string {
  return (p) => {
    for (const [link, target] of Object.entries(links)) {
      if (p === link) return target;
      if (p.startsWith(`${link}/`)) return target + p.slice(link.length);
    }
    return p;
  };
}

function lint(overrides: Partial<PolicyInput> = {}, repo?: string, links: Record<string, string> = {}): Finding[] {
  return lintPolicy(policy(overrides), { home: HOME, realpath: fakeRealpath(links), ...(repo ? { repo } : {}) });
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

  it.each(presetNames())('%s gets no network-allow finding (registries are not exfiltration channels)', (name) => {
    const load = loadPolicy(name, configDir);
    if (load.kind !== 'ok') throw new Error(`${name} does not load`);
    expect(codes(lintPolicy(load.policy, { home: HOME })).filter((c) => c.startsWith('network-'))).toEqual([]);
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
    ['/root', 'mount-home'],
    ['/home/bob', 'mount-home'],
    ['/home/bob/', 'mount-home'],
    ['/Users/carol', 'mount-home'],
    ['/root/.ssh', 'mount-credentials'],
    ['/home/bob/.aws/credentials', 'mount-credentials'],
    ['/etc/..', 'mount-root'],
    ['/usr/../root', 'mount-home'],
    ['~/..', 'mount-home'],
    [`${HOME}/projects/../..`, 'mount-home'],
    ['~/projects/../.ssh', 'mount-credentials'],
    ['~/.config', 'mount-credentials'],
    ['~/.config/', 'mount-credentials'],
    ['/home/bob/.config', 'mount-credentials'],
    ['/var/lib', 'mount-system'],
    ['/var/run/../run/docker.sock', 'mount-docker-socket'],
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

  it.each([
    [`${HOME}/projects/data`, undefined],
    ['/srv/datasets', undefined],
    ['/opt/models/llama', '/models/llama'],
    ['/etc/ssl/certs', '/data/certs'],
    ['~/projects/shared-lib', undefined],
    [`${HOME}/.sshx`, undefined],
    [`${HOME}/.config-backup`, undefined],
    ['/home/bob/projects/x', undefined],
  ])('%s (target %s) is fine read-only', (source, target) => {
    expect(lint(mount(source, target ? { target } : {}))).toEqual([]);
  });

  it('names the credential store a mounted directory contains', () => {
    const [finding] = lint(mount('~/.config'));
    expect(finding).toMatchObject({ severity: 'error', code: 'mount-credentials', message: expect.stringMatching(/~\/\.config contains ~\/\.config\/(gcloud|gh)/) });
  });

  it('flags a docker socket as a mount target too', () => {
    expect(codes(lint(mount('/srv/empty', { target: '/var/run/docker.sock' })), 'error')).toEqual(['mount-docker-socket']);
  });

  it('warns about a writable extra mount', () => {
    expect(lint(mount('/srv/cache', { mode: 'rw' }))).toEqual([expect.objectContaining({ severity: 'warning', code: 'mount-rw' })]);
  });

  it('mount-home names the user home for /home/<name>, and your home for ~/..', () => {
    expect(lint(mount('/home/bob'))[0]!.message).toContain("a user's home directory (/home/bob)");
    expect(lint(mount('~/..'))[0]!.message).toContain(`your home directory (${HOME})`);
  });

  it('an unknown ~user is an error, not a path relative to the working directory', () => {
    expect(codes(lint(mount('~no-such-user-x9/data')), 'error')).toEqual(['mount-unresolvable']);
  });

  it('expands ~ against the context home, not the real one', () => {
    const other = lintPolicy(policy(mount('~/.ssh')), { home: '/Users/someone' });
    expect(other).toContainEqual(expect.objectContaining({ code: 'mount-credentials', message: expect.stringContaining('~/.ssh') }));
  });
});

describe('mount sources are canonicalised (symlinks resolved)', () => {
  it.each([
    ['/tmp/x', { '/tmp/x': '/run/docker.sock' }, 'mount-docker-socket', '/run/docker.sock'],
    ['/srv/link', { '/srv/link': HOME }, 'mount-home', HOME],
    ['/srv/link', { '/srv/link': '/' }, 'mount-root', '/'],
    ['/srv/link/sub', { '/srv/link': '/proc' }, 'mount-system', '/proc/sub'],
    ['/srv/keys', { '/srv/keys': `${HOME}/.ssh` }, 'mount-credentials', `${HOME}/.ssh`],
    ['/srv/etc', { '/srv/etc': '/etc' }, 'mount-system', '/etc'],
  ])('%s resolving via %j → %s', (source, links, code, canonical) => {
    const findings = lint(mount(source, { target: '/data' }), undefined, links);
    expect(findings).toEqual([expect.objectContaining({ severity: 'error', code })]);
    expect(findings[0]!.message).toContain(source);
    expect(findings[0]!.message).toContain(`resolves to ${canonical}`);
  });

  it('a credential store that is itself a symlink is found at its real location', () => {
    // ~/.ssh -> /srv/dotfiles/ssh: mounting /srv/dotfiles (or the store itself) exposes the keys
    const links = { [`${HOME}/.ssh`]: '/srv/dotfiles/ssh' };
    expect(codes(lint(mount('/srv/dotfiles', { target: '/data' }), undefined, links), 'error')).toEqual(['mount-credentials']);
    expect(codes(lint(mount('/srv/dotfiles/ssh', { target: '/data' }), undefined, links), 'error')).toEqual(['mount-credentials']);
    expect(lint(mount('/srv/dotfiles/vimrc', { target: '/data' }), undefined, links)).toEqual([]);
  });

  it('a home that is a symlink is protected at both paths', () => {
    const links = { [HOME]: '/data/users/tester' };
    expect(codes(lint(mount('/data/users/tester', { target: '/data' }), undefined, links), 'error')).toEqual(['mount-home']);
    expect(codes(lint(mount('/data/users', { target: '/data' }), undefined, links), 'error')).toEqual(['mount-home']);
    expect(codes(lint(mount('/data/users/tester/.aws', { target: '/data' }), undefined, links), 'error')).toEqual(['mount-credentials']);
  });

  it('uses the real file system by default (a symlink in a temp dir to /dev)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ad-lint-link-'));
    try {
      symlinkSync('/dev', join(dir, 'devices'));
      symlinkSync('/nonexistent-agent-dispatch/docker.sock', join(dir, 'dangling'));
      const findings = lintPolicy(policy(mount(join(dir, 'devices'), { target: '/data' })), { home: HOME });
      expect(findings).toEqual([expect.objectContaining({ severity: 'error', code: 'mount-system', message: expect.stringContaining('resolves to /dev') })]);
      // a dangling link is judged by where it points: Docker would bind whatever appears there
      const dangling = lintPolicy(policy(mount(join(dir, 'dangling'), { target: '/data' })), { home: HOME });
      expect(codes(dangling, 'error')).toEqual(['mount-docker-socket']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('mount targets', () => {
  it.each([
    '/',
    '/home/agent',
    '/home/agent/.claude',
    '/home/agent/work',
    '/home',
    '/etc/claude-code',
    '/etc/claude-code/managed-settings.json',
    '/etc',
    '/etc/ssl/certs',
    '/run/agent-dispatch',
    '/run',
    '/var/run/agent-dispatch',
    '/opt/tools',
    '/usr/local/bin',
    '/usr/local/bin/claude',
    '/usr/local',
    '/usr',
    '/bin',
    '/sbin',
    '/lib',
    '/lib64',
    '/proc',
    '/sys/fs',
    '/dev/shm',
    '/tmp',
    '/tmp/cache',
    '/data/../etc',
    '/home/agent/',
  ])('target %s is reserved by the sandbox', (target) => {
    const findings = lint(mount('/srv/data', { target }));
    expect(findings).toEqual([expect.objectContaining({ severity: 'error', code: 'mount-target-reserved', message: expect.stringContaining(target) })]);
    expect(findings[0]!.fix).toBeTruthy();
  });

  it.each(['/data', '/mnt/cache', '/srv/x', '/home/other', '/workspace/lib', '/var/cache/x'])('target %s is fine', (target) => {
    expect(lint(mount('/srv/data', { target }))).toEqual([]);
  });

  it('a mount with no target lands at its source path, which is checked as a target too', () => {
    expect(codes(lint(mount('/opt/models')), 'error')).toEqual(['mount-target-reserved']);
    expect(codes(lint(mount('/etc/ssl/certs')), 'error')).toEqual(['mount-target-reserved']);
    expect(codes(lint(mount('/home/agent/data'), undefined), 'error')).toEqual(['mount-target-reserved']);
    expect(lint(mount('/srv/datasets'))).toEqual([]);
  });

  it('with an agent, a target on, in or above the repo is refused (it would shadow or re-mount it)', () => {
    const repo = `${HOME}/projects/app`;
    for (const target of [repo, `${repo}/`, `${repo}/src`, `${HOME}/projects`]) {
      const findings = lint(mount('/srv/data', { target, mode: 'rw' }), repo);
      expect(codes(findings, 'error')).toEqual(['mount-target-repo']);
      expect(findings.find((f) => f.code === 'mount-target-repo')!.message).toContain(repo);
    }
    // the repo itself, writable over a read-only repo mount, with no target
    expect(codes(lint(mount(repo, { mode: 'rw' }), repo), 'error')).toEqual(['mount-target-repo']);
    // without an agent there is no repo to collide with
    expect(lint(mount('/srv/data', { target: `${repo}/src` }))).toEqual([]);
    expect(lint(mount('/srv/data', { target: `${HOME}/projects/other` }), repo)).toEqual([]);
  });

  it('the repo is compared in its canonical form too', () => {
    const findings = lint(mount('/srv/data', { target: '/real/app' }), '/srv/app-link', { '/srv/app-link': '/real/app' });
    expect(codes(findings, 'error')).toEqual(['mount-target-repo']);
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

  it.each<[string, Partial<PolicyInput>, string]>([
    ['network-open', { network: { mode: 'open', allow: [] } }, 'network.mode is open'],
    ['inject-without-gateway', { network: { mode: 'open', allow: [] } }, 'credentials: inject'],
    ['rw-with-open-network', { network: { mode: 'open', allow: [] }, repo: 'rw' }, 'repo: rw'],
    ['credentials-env', { credentials: 'env' }, 'credentials: env'],
    ['network-wildcard', { network: { mode: 'gateway', allow: ['*:8080'] } }, "'*:8080'"],
    ['network-wildcard', { network: { mode: 'gateway', allow: ['*.dev'] } }, "'*.dev'"],
    ['network-any-port', { network: { mode: 'gateway', allow: ['example.com:*'] } }, "'example.com:*'"],
    ['network-exfil-host', { network: { mode: 'gateway', allow: ['github.com'] } }, "'github.com'"],
    ['network-private-address', { network: { mode: 'gateway', allow: ['172.17.0.1:8080'] } }, "'172.17.0.1:8080'"],
    ['network-metadata', { network: { mode: 'gateway', allow: ['169.254.169.254'] } }, "'169.254.169.254'"],
    ['network-allow-unused', { network: { mode: 'open', allow: ['example.com'] }, credentials: 'env' }, 'network.allow is ignored'],
  ])('%s says what is wrong and what to do', (code, overrides, named) => {
    const finding = lint(overrides).find((f) => f.code === code);
    expect(finding?.message).toContain(named);
    expect(finding?.fix).toMatch(/\w{3,}/);
  });
});

describe('network-exfil-host', () => {
  const allow = (...patterns: string[]): Finding[] => lint({ network: { mode: 'gateway', allow: patterns } });

  it.each([
    'github.com',
    '*.github.com',
    'api.github.com',
    'gist.github.com',
    'uploads.github.com',
    'raw.githubusercontent.com',
    'gitlab.com',
    '*.gitlab.com',
    'bitbucket.org',
    'api.bitbucket.org',
    'huggingface.co',
    's3.amazonaws.com',
    'my-bucket.s3.amazonaws.com',
    'my-bucket.s3.eu-west-1.amazonaws.com',
    's3.us-east-1.amazonaws.com',
    's3-us-west-2.amazonaws.com',
    's3-accelerate.amazonaws.com',
    's3.dualstack.eu-west-1.amazonaws.com',
    '*.amazonaws.com',
    '*.us-east-1.amazonaws.com',
    'storage.googleapis.com',
    '*.googleapis.com',
    'www.googleapis.com',
    '*.blob.core.windows.net',
    'acct.blob.core.windows.net',
    '*.core.windows.net',
    '*.windows.net',
    '*.r2.cloudflarestorage.com',
    '*.digitaloceanspaces.com',
    'nyc3.digitaloceanspaces.com',
    'pastebin.com',
    'transfer.sh',
    '0x0.st',
    'abc123.ngrok-free.app',
    'webhook.site',
    'eo1234.m.pipedream.net',
    'requestbin.com',
    'discord.com',
    'discordapp.com',
    'hooks.slack.com',
    'api.telegram.org',
    'GitHub.com',
    'github.com:22',
  ])('%s is a warning that names the pattern and says why', (pattern) => {
    const findings = allow(pattern);
    expect(findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'network-exfil-host' })]);
    expect(findings[0]!.message).toContain(`'${pattern}'`);
    expect(findings[0]!.message).toContain('upload');
    expect(findings[0]!.fix).toContain('narrowest host');
  });

  it.each([
    'registry.npmjs.org',
    'registry.yarnpkg.com',
    'pypi.org',
    'files.pythonhosted.org',
    'crates.io',
    'static.crates.io',
    'proxy.golang.org',
    'repo.maven.apache.org',
    'deb.debian.org',
    'api.example.com',
    '*.example.com',
    'api.anthropic.com',
    'ec2.us-east-1.amazonaws.com',
    'sts.amazonaws.com',
    '*.ec2.us-east-1.amazonaws.com',
    '*.compute.eu-west-1.amazonaws.com',
    'oauth2.googleapis.com',
    'queue.core.windows.net',
    'notgithub.com',
    'github.com.example.org',
    '*.github.com.example.org',
    'mygitlab.com',
    'slack-edge.com',
    'telegram.org',
  ])('%s is not an exfiltration channel', (pattern) => {
    expect(allow(pattern)).toEqual([]);
  });

  it('a whole-TLD wildcard is only network-wildcard, though it covers github.com too', () => {
    expect(codes(allow('*.com', '*'))).toEqual(['network-wildcard', 'network-wildcard']);
  });

  it('an exfiltration host with any port gets both warnings', () => {
    expect(codes(allow('*.github.com:*'))).toEqual(['network-exfil-host', 'network-any-port']);
  });

  it('one finding per pattern', () => {
    expect(codes(allow('github.com', 'api.example.com', 'pastebin.com'))).toEqual(['network-exfil-host', 'network-exfil-host']);
  });

  it('every EXFIL_HOSTS entry fires as a host, as a host under it, and as a wildcard over it', () => {
    for (const { hosts } of EXFIL_HOSTS) {
      for (const entry of hosts) {
        const host = entry.replaceAll('*', 'x');
        expect(exfilChannel(host)?.host, host).toBeDefined();
        expect(exfilChannel(`a.b.${host}`)?.host, `a.b.${host}`).toBeDefined();
        expect(exfilChannel(`*.${host.split('.').slice(1).join('.')}`), `*.${host}`).toBeDefined();
        expect(entry, 'entries are lower-case labels and * only').toMatch(/^[a-z0-9*-]+(\.[a-z0-9*-]+)+$/);
      }
    }
  });

  it('exfilChannel is pure and names the entry and its kind', () => {
    expect(exfilChannel('bucket.s3.amazonaws.com')).toEqual({ host: 's3*.amazonaws.com', kind: 'object storage' });
    expect(exfilChannel('*.amazonaws.com')).toEqual({ host: 's3*.amazonaws.com', kind: 'object storage' });
    expect(exfilChannel('gist.github.com')).toEqual({ host: 'github.com', kind: 'code hosting' });
    expect(exfilChannel('*')).toBeDefined();
    expect(exfilChannel('example.org')).toBeUndefined();
    // `*` in an entry stays inside one label: s3*.amazonaws.com does not take s3.<region>.amazonaws.com
    expect(exfilChannel('s3.eu-west-1.amazonaws.com')?.host).toBe('s3*.*.amazonaws.com');
    expect(exfilChannel('*.eu-west-1.amazonaws.com')?.host).toBe('s3*.*.amazonaws.com');
    expect(exfilChannel('ec2.s3x.example.com')).toBeUndefined();
  });
});

describe('network-private-address and network-metadata', () => {
  const allow = (...patterns: string[]): Finding[] => lint({ network: { mode: 'gateway', allow: patterns } });

  it.each([
    ['172.17.0.1:8080', '172.16.0.0/12'],
    ['172.31.255.255', '172.16.0.0/12'],
    ['127.0.0.1', '127.0.0.0/8'],
    ['127.1.2.3:5432', '127.0.0.0/8'],
    ['10.0.0.5:5432', '10.0.0.0/8'],
    ['192.168.1.10', '192.168.0.0/16'],
    ['100.64.0.1', '100.64.0.0/10'],
    ['100.127.255.254', '100.64.0.0/10'],
    ['169.254.1.1', '169.254.0.0/16'],
    ['0.0.0.0:3000', '0.0.0.0/8'],
  ])('%s is a warning (%s)', (pattern, cidr) => {
    const findings = allow(pattern);
    expect(findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'network-private-address' })]);
    expect(findings[0]!.message).toContain(`'${pattern}'`);
    expect(findings[0]!.message).toContain(cidr);
    expect(findings[0]!.message).toContain('only way the gateway reaches');
    expect(findings[0]!.fix).toBeTruthy();
  });

  it.each([
    ['2130706433', '127.0.0.1'],
    ['0x7f.0.0.1', '127.0.0.1'],
    ['0177.0.0.1', '127.0.0.1'],
    ['127.1', '127.0.0.1'],
    ['10.1', '10.0.0.1'],
  ])('the resolver form %s is read as %s', (pattern, dotted) => {
    const findings = allow(pattern);
    expect(codes(findings)).toEqual(['network-private-address']);
    expect(findings[0]!.message).toContain(`'${pattern}' (${dotted})`);
  });

  it.each(['8.8.8.8', '1.1.1.1:53', '172.15.255.255', '172.32.0.1', '100.63.255.255', '100.128.0.1', '192.169.0.1', '11.0.0.1', '169.253.0.1', '1.2.3.4.5', '256.0.0.1', '08.0.0.1', 'api.example.com', '10.example.com'])(
    '%s is not a private address',
    (pattern) => {
      expect(allow(pattern)).toEqual([]);
    },
  );

  it.each(['169.254.169.254', '169.254.169.254:80', '2852039166', '0xa9fea9fe', '0xa9.0xfe.0xa9.0xfe', '169.254.43518', '169.254.170.2', '100.100.100.200'])(
    '%s is the metadata service: an error, and only that',
    (pattern) => {
      const findings = allow(pattern);
      expect(findings).toEqual([expect.objectContaining({ severity: 'error', code: 'network-metadata' })]);
      expect(findings[0]!.message).toContain(`'${pattern}'`);
      expect(findings[0]!.message).toContain('credentials');
      expect(findings[0]!.fix).toContain('Remove');
    },
  );

  it('a private address with any port gets both warnings', () => {
    expect(codes(allow('192.168.0.2:*'))).toEqual(['network-private-address', 'network-any-port']);
  });

  it('ipv4Literal reads inet_aton forms and nothing else', () => {
    expect(ipv4Literal('1.2.3.4')).toBe(0x01020304);
    expect(ipv4Literal('1.2.772')).toBe(0x01020304);
    expect(ipv4Literal('1.131844')).toBe(0x01020304);
    expect(ipv4Literal('16909060')).toBe(0x01020304);
    expect(ipv4Literal('0x01020304')).toBe(0x01020304);
    expect(ipv4Literal('255.255.255.255')).toBe(0xffffffff);
    expect(ipv4Literal('0')).toBe(0);
    for (const name of ['4294967296', '1.2.3.4.5', '1.256.3.4', '1.2.65536', '09', '0x', 'a.b.c.d', 'example.com', '1.2.3.com', '']) {
      expect(ipv4Literal(name), name).toBeUndefined();
    }
  });
});

describe('network-allow-unused', () => {
  it('open mode with an allow list is info: the list is ignored', () => {
    const findings = lint({ network: { mode: 'open', allow: ['api.example.com'] }, credentials: 'env' });
    expect(findings).toContainEqual(expect.objectContaining({ severity: 'info', code: 'network-allow-unused' }));
    expect(findings.find((f) => f.code === 'network-allow-unused')!.fix).toContain('network.mode: gateway');
  });

  it('not with an empty list, nor in gateway mode', () => {
    expect(codes(lint({ network: { mode: 'open', allow: [] }, credentials: 'env' }))).not.toContain('network-allow-unused');
    expect(lint({ network: { mode: 'gateway', allow: ['api.example.com'] } })).toEqual([]);
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
    [`${HOME}/.config`, 'repo-mount-credentials'],
    [`${HOME}/..`, 'repo-mount-home'],
    ['/usr/../root', 'repo-mount-home'],
    ['/home/bob', 'repo-mount-home'],
    ['/etc/..', 'repo-mount-root'],
  ])('an agent directory of %s is an error (%s)', (repo, code) => {
    const findings = lint({}, repo);
    expect(findings).toEqual([expect.objectContaining({ severity: 'error', code })]);
    expect(findings[0]!.fix).toContain('project directory');
  });

  it('a repo that is a symlink is judged where it points', () => {
    const findings = lint({}, '/srv/app', { '/srv/app': '/etc' });
    expect(findings).toEqual([expect.objectContaining({ severity: 'error', code: 'repo-mount-system', message: expect.stringContaining('resolves to /etc') })]);
  });

  it('a project directory is fine', () => {
    expect(lint({}, `${HOME}/projects/app`)).toEqual([]);
    expect(lint({}, '/srv/repos/api')).toEqual([]);
  });
});

describe('lintCompiled and worstSeverity', () => {
  it('turns notes and missing env into info findings', () => {
    const compiled = { notes: ["permission_mode 'bypassPermissions' narrowed to 'default' by the policy"], missingEnv: ['LANG'], withheldEnv: [] } as unknown as CompiledSandbox;
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

describe('agent repo inside the container', () => {
  it.each(['/home/agent/project', '/usr/local/bin', '/etc/claude-code'])(
    'a repo at %s is refused (it would be mounted over what the sandbox uses)',
    (repo) => {
      const findings = lintPolicy(policySchema.parse({ version: 1 }), { home: '/home/tester', repo, realpath: (p: string) => p });
      expect(findings).toContainEqual(expect.objectContaining({ severity: 'error', code: 'repo-target-reserved' }));
    },
  );

  it('a repo that is already an error (a system path) gets one finding, not two', () => {
    const findings = lintPolicy(policySchema.parse({ version: 1 }), { home: '/home/tester', repo: '/run/agent-dispatch', realpath: (p: string) => p });
    expect(findings.filter((f) => f.severity === 'error').map((f) => f.code)).toEqual(['repo-mount-system']);
  });

  it.each(['/tmp/work/api', '/srv/code/api', '/opt/projects/api'])('a repo at %s is fine', (repo) => {
    const findings = lintPolicy(policySchema.parse({ version: 1 }), { home: '/home/tester', repo, realpath: (p: string) => p });
    expect(findings.filter((f) => f.severity === 'error')).toEqual([]);
  });
});

describe('lint gaps: each is an error naming what it found', () => {
  const ctx = (extra: LintContext = {}): LintContext => ({ home: HOME, realpath: fakeRealpath(), stateDirs: ['/srv/ad-state'], ...extra });
  const lintWith = (overrides: Partial<PolicyInput>, extra: LintContext = {}) => lintPolicy(policy(overrides), ctx(extra));

  it.each([
    ['~/.colima', '~/.colima'],
    ['~/.colima/default', '~/.colima'],
    [`${HOME}/.rd`, '~/.rd'],
    ['~/.rd/bin', '~/.rd'],
    ['~/.orbstack', '~/.orbstack'],
    ['~/.orbstack/run', '~/.orbstack'],
    ['~/.lima/default', '~/.lima'],
    ['~/.local/share/containers', '~/.local/share/containers'],
    ['~/.local/share/containers/storage', '~/.local/share/containers'],
    ['~/.local/share', '~/.local/share/containers'],
    ['~/.local', '~/.local/share/containers'],
    ['/home/bob/.colima', '/home/bob/.colima'],
    ['/run/user/1000/docker.sock', '/run/user/1000/docker.sock'],
    ['/run/user/1000', '/run/user/*/docker.sock'],
    ['/run/user', '/run/user/*/docker.sock'],
    ['/run/user/1000/podman/podman.sock', '/run/user/*/podman'],
    ['/run/user/1000/podman', '/run/user/*/podman'],
    ['/run/podman/podman.sock', '/run/podman'],
    ['/run/podman', '/run/podman'],
    ['/var/run/podman', '/var/run/podman'],
  ])('container engine: %s → mount-docker-socket', (source, named) => {
    const findings = lintWith({ mounts: [{ source, target: '/data' }] });
    expect(findings).toEqual([expect.objectContaining({ severity: 'error', code: 'mount-docker-socket' })]);
    expect(findings[0]!.message).toContain(source);
    if (!/\.sock$/.test(source)) expect(findings[0]!.message).toContain(named);
  });

  it('a symlink into an engine directory is judged where it points', () => {
    const findings = lintPolicy(policy({ mounts: [{ source: '/srv/vm', target: '/data' }] }), ctx({ realpath: fakeRealpath({ '/srv/vm': `${HOME}/.orbstack` }) }));
    expect(findings).toEqual([expect.objectContaining({ code: 'mount-docker-socket', message: expect.stringContaining(`resolves to ${HOME}/.orbstack`) })]);
  });

  describe('a mounted directory holding a socket (the host path is searched)', () => {
    let dir: string;
    let server: Server;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'ad-lint-sock-'));
      mkdirSync(join(dir, 'app', 'run'), { recursive: true });
      mkdirSync(join(dir, 'plain', 'sub'), { recursive: true });
      writeFileSync(join(dir, 'plain', 'sub', 'file.txt'), 'x');
      server = createServer();
      await new Promise<void>((done) => server.listen(join(dir, 'app', 'run', 'service.sock'), done));
    });
    afterAll(async () => {
      await new Promise<void>((done) => server.close(() => done()));
      rmSync(dir, { recursive: true, force: true });
    });
    const real = (extra: Partial<PolicyInput>, more: LintContext = {}) => lintPolicy(policy(extra), { home: HOME, stateDirs: [], ...more });

    it.each([
      ['app', 'holds'],
      ['app/run', 'holds'],
      ['app/run/service.sock', 'is'],
    ])('%s → mount-socket (%s a Unix socket)', (sub, verb) => {
      const findings = real({ mounts: [{ source: join(dir, sub), target: '/data' }] });
      expect(findings).toEqual([expect.objectContaining({ severity: 'error', code: 'mount-socket' })]);
      expect(findings[0]!.message).toContain(`${verb} a Unix socket (${join(dir, 'app', 'run', 'service.sock')})`);
    });

    it('a directory without one is fine; so is one whose socket lies deeper than the search goes', () => {
      expect(real({ mounts: [{ source: join(dir, 'plain'), target: '/data' }] })).toEqual([]);
      const deep = join(dir, 'deep', 'a', 'b', 'c', 'd');
      mkdirSync(deep, { recursive: true });
      symlinkSync(join(dir, 'app', 'run'), join(dir, 'deep', 'link')); // links are not followed
      expect(real({ mounts: [{ source: join(dir, 'deep'), target: '/data' }] })).toEqual([]);
    });

    it('the search is bounded and says so when it stops early', () => {
      const wide = join(dir, 'wide');
      mkdirSync(wide);
      for (let i = 0; i <= SOCKET_SCAN.entries; i++) writeFileSync(join(wide, `f${i}`), '');
      expect(real({ mounts: [{ source: wide, target: '/data' }] })).toEqual([expect.objectContaining({ severity: 'info', code: 'mount-scan-incomplete' })]);
    });

    it("the agent's repo is searched too (repo-mount-socket); an unfinished search of a wide repo says nothing", () => {
      expect(codes(real({}, { repo: join(dir, 'app') }), 'error')).toEqual(['repo-mount-socket']);
      expect(real({}, { repo: join(dir, 'plain') })).toEqual([]);
      expect(real({}, { repo: join(dir, 'wide') })).toEqual([]);
    });

    it('scanSockets: false skips the search', () => {
      expect(real({ mounts: [{ source: join(dir, 'app'), target: '/data' }] }, { scanSockets: false })).toEqual([]);
    });
  });

  it.each([
    ['/srv/ad-state', 'exposes'],
    ['/srv/ad-state/policies', 'exposes'],
    ['/srv/ad-state/jobs/x', 'exposes'],
    ['/srv', 'contains'],
  ])('the state directory (moved by AGENT_DISPATCH_CONFIG): %s → mount-state-dir', (source, verb) => {
    const findings = lintWith({ mounts: [{ source, target: '/data' }] });
    expect(findings).toEqual([expect.objectContaining({ severity: 'error', code: 'mount-state-dir' })]);
    expect(findings[0]!.message).toContain(`${verb} agent-dispatch's own directory /srv/ad-state`);
  });

  it('the agent repo holding the state directory is repo-mount-state-dir', () => {
    expect(codes(lintWith({}, { repo: '/srv/ad-state' }), 'error')).toEqual(['repo-mount-state-dir']);
    expect(codes(lintWith({}, { repo: '/srv' }), 'error')).toEqual(['repo-mount-state-dir']);
    expect(lintWith({}, { repo: '/srv/projects/app' })).toEqual([]);
  });

  describe('by default the state directories come from the environment', () => {
    afterEach(() => vi.unstubAllEnvs());
    it('AGENT_DISPATCH_CONFIG and AGENT_DISPATCH_JOBS_DIR', () => {
      vi.stubEnv('AGENT_DISPATCH_CONFIG', '/srv/moved-config/agents.yaml');
      vi.stubEnv('AGENT_DISPATCH_JOBS_DIR', '/data/ad-jobs');
      const at = (source: string) => codes(lintPolicy(policy({ mounts: [{ source, target: '/data' }] }), { home: HOME, realpath: fakeRealpath() }), 'error');
      expect(at('/srv/moved-config')).toEqual(['mount-state-dir']);
      expect(at('/data/ad-jobs/job-1')).toEqual(['mount-state-dir']);
      expect(at('/srv/other')).toEqual([]);
    });
  });

  it.each<[string, Partial<PolicyInput>, LintContext]>([
    ['an rw extra mount', { mounts: [{ source: '/srv/shared', target: '/shared', mode: 'rw' }] }, { policyPath: '/srv/shared/policies/agent.yaml' }],
    ['the rw repo', { repo: 'rw' }, { repo: '/srv/app', policyPath: '/srv/app/.agent/policy.yaml' }],
    ['an rw mount it is the root of', { mounts: [{ source: '/srv/p.yaml', target: '/p.yaml', mode: 'rw' }] }, { policyPath: '/srv/p.yaml' }],
  ])('a policy file inside %s → policy-in-writable-mount', (_what, overrides, extra) => {
    const findings = lintWith(overrides, extra).filter((f) => f.severity === 'error');
    expect(findings).toEqual([expect.objectContaining({ code: 'policy-in-writable-mount', message: expect.stringContaining(extra.policyPath!) })]);
  });

  it('a policy file in a read-only mount, an overlay or ro repo, or elsewhere is fine', () => {
    const errors = (overrides: Partial<PolicyInput>, extra: LintContext) => codes(lintWith(overrides, extra), 'error');
    expect(errors({ mounts: [{ source: '/srv/shared', target: '/shared' }] }, { policyPath: '/srv/shared/p.yaml' })).toEqual([]);
    expect(errors({ repo: 'overlay' }, { repo: '/srv/app', policyPath: '/srv/app/p.yaml' })).toEqual([]);
    expect(errors({ repo: 'ro' }, { repo: '/srv/app', policyPath: '/srv/app/p.yaml' })).toEqual([]);
    expect(errors({ repo: 'rw' }, { repo: '/srv/app', policyPath: '/srv/app-policies/p.yaml' })).toEqual([]);
  });

  it('a policy file reached through a symlink into a writable mount is found at its real place', () => {
    const findings = lintWith({ repo: 'rw' }, { repo: '/srv/app', policyPath: '/etc/ad/p.yaml', realpath: fakeRealpath({ '/etc/ad': '/srv/app/conf' }) });
    expect(codes(findings, 'error')).toEqual(['policy-in-writable-mount']);
  });

  it.each([
    ['*.co.uk', 'co.uk'],
    ['*.com.au', 'com.au'],
    ['*.co.jp:443', 'co.jp'],
    ['*.CO.UK', 'co.uk'],
    ['*.github.io', 'github.io'],
    ['*.githubusercontent.com', 'githubusercontent.com'],
    ['*.s3.amazonaws.com', 's3.amazonaws.com'],
    ['*.ngrok.io', 'ngrok.io'],
    ['*.trycloudflare.com', 'trycloudflare.com'],
    ['*.herokuapp.com', 'herokuapp.com'],
    ['*.pages.dev', 'pages.dev'],
  ])('public-suffix wildcard %s → network-wildcard naming %s', (pattern, suffix) => {
    const findings = lintWith({ network: { mode: 'gateway', allow: [pattern] } });
    expect(findings).toEqual([expect.objectContaining({ severity: 'error', code: 'network-wildcard' })]);
    expect(findings[0]!.message).toContain(`'${pattern}'`);
    expect(findings[0]!.message).toContain(`under ${suffix}, a public suffix`);
  });

  it('a wildcard under one registered name below a public suffix is not refused', () => {
    for (const pattern of ['*.bbc.co.uk', '*.myorg.github.io', 'example.co.uk', 'co.uk.example.com']) {
      expect(codes(lintWith({ network: { mode: 'gateway', allow: [pattern] } }), 'error'), pattern).toEqual([]);
    }
  });

  const SYSTEM_PSL = '/usr/share/publicsuffix/public_suffix_list.dat';
  it.skipIf(!existsSync(SYSTEM_PSL))('every embedded suffix is in the Public Suffix List (the system copy)', () => {
    const listed = new Set(readFileSync(SYSTEM_PSL, 'utf8').split('\n').map((l) => l.trim()));
    const missing = [...ICANN_SUFFIXES, ...PRIVATE_SUFFIXES].filter((s) => !listed.has(s));
    expect(missing).toEqual([]);
    expect([...ICANN_SUFFIXES, ...PRIVATE_SUFFIXES].every((s) => s.includes('.'))).toBe(true);
  });

  it("repo_git: writable under repo: rw is an error that explains the risk; an explicit opt-in, so it does not block", () => {
    const findings = lintWith({ repo: 'rw', repo_git: 'writable' });
    const finding = findings.find((f) => f.code === 'repo-git-writable');
    expect(finding).toMatchObject({ severity: 'error', optIn: true });
    expect(finding!.message).toMatch(/core\.fsmonitor.*hooks.*runs on the host/);
    expect(blockingFindings(findings)).toEqual([]);
    expect(blockingFindings(lintWith({ network: { mode: 'gateway', allow: ['*'] } }))).toHaveLength(1);
    expect(codes(lintWith({ repo: 'rw' }), 'error')).toEqual([]);
    expect(codes(lintWith({ repo: 'ro', repo_git: 'writable' }))).toEqual(['repo-git-unused']);
  });

  it("tools.mcp_servers: repo is a warning (repo code at start); none and a list are not", () => {
    const servers = (mcp_servers: Policy['tools']['mcp_servers']) => codes(lintWith({ tools: { mcp_servers } as PolicyInput['tools'] }));
    expect(servers('repo')).toEqual(['mcp-servers-repo']);
    expect(servers('none')).toEqual([]);
    expect(servers(['docs'])).toEqual([]);
  });
});
