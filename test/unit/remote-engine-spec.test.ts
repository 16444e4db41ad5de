import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { effectiveEngineSpec, engineKey, isLoopbackHost, parseEngineSpec, type ParsedEngine } from '../../src/config/engine-spec.js';
import { configSchema } from '../../src/config/schema.js';
import { renderConfig } from '../../src/config/save.js';
import { engineDockerOptions, parsedEngineOptions } from '../../src/sandbox/engine-options.js';

function ok(spec: Parameters<typeof parseEngineSpec>[0]): ParsedEngine {
  const parsed = parseEngineSpec(spec);
  if (!parsed.ok) throw new Error(`expected ${JSON.stringify(spec)} to parse: ${parsed.message}`);
  return parsed.engine;
}

function refused(spec: unknown): string {
  const parsed = parseEngineSpec(spec as string);
  if (parsed.ok) throw new Error(`expected ${JSON.stringify(spec)} to be refused, got ${JSON.stringify(parsed.engine)}`);
  return parsed.message;
}

describe('parseEngineSpec', () => {
  it('takes unix sockets by absolute path', () => {
    expect(ok('unix:///var/run/docker.sock')).toEqual({ kind: 'unix', socketPath: '/var/run/docker.sock' });
    expect(ok('  unix:///tmp/x/docker.sock ')).toEqual({ kind: 'unix', socketPath: '/tmp/x/docker.sock' });
    expect(refused('unix://docker.sock')).toMatch(/absolute socket path/);
    expect(refused('unix:///')).toMatch(/directory/);
    expect(refused('unix:///run/')).toMatch(/directory/);
  });

  it('takes ssh with a user, default port 22, and refuses a password, a missing user or a path', () => {
    expect(ok('ssh://deploy@build-1.example.com')).toEqual({ kind: 'ssh', host: 'build-1.example.com', port: 22, username: 'deploy' });
    expect(ok('ssh://deploy@10.0.0.5:2222')).toEqual({ kind: 'ssh', host: '10.0.0.5', port: 2222, username: 'deploy' });
    expect(refused('ssh://host.example.com')).toMatch(/names no user/);
    expect(refused('ssh://deploy:hunter2@host')).toMatch(/password.*ssh-agent/);
    expect(refused('ssh://deploy@host/var/run')).toMatch(/path or query/);
    expect(refused('ssh://deploy@host:99999')).toMatch(/port/);
  });

  it('takes plain tcp only on loopback', () => {
    expect(ok('tcp://127.0.0.1:2375')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 2375 });
    expect(ok('tcp://localhost')).toEqual({ kind: 'tcp', host: 'localhost', port: 2375 });
    expect(ok('tcp://[::1]:2400')).toEqual({ kind: 'tcp', host: '::1', port: 2400 });
    const message = refused('tcp://192.0.2.10:2375');
    expect(message).toMatch(/plain TCP without TLS/);
    expect(message).toMatch(/tls_cert_dir/);
    expect(refused('tcp://docker.example.com:2376')).toMatch(/plain TCP without TLS/);
    expect(refused('tcp://0.0.0.0:2375')).toMatch(/plain TCP without TLS/);
    expect(refused('tcp://user:pw@127.0.0.1:2375')).toMatch(/credentials/);
    expect(refused('tcp://127.0.0.1:0')).toMatch(/port/);
  });

  it('takes tcp with TLS to any host as { host, tls_cert_dir }, default port 2376, ~ expanded', () => {
    expect(ok({ host: 'tcp://192.0.2.10', tls_cert_dir: '/etc/ad/certs' })).toEqual({ kind: 'tcp', host: '192.0.2.10', port: 2376, tlsCertDir: '/etc/ad/certs' });
    const home = ok({ host: 'tcp://docker.example.com:3000', tls_cert_dir: '~/certs' });
    expect(home).toMatchObject({ kind: 'tcp', host: 'docker.example.com', port: 3000 });
    expect(home.kind === 'tcp' && home.tlsCertDir?.startsWith('/')).toBe(true);
    expect(refused({ host: 'ssh://a@b', tls_cert_dir: '/x' })).toMatch(/tcp:\/\/host:port engine only/);
    expect(refused({ host: 'tcp://h:1', tls_cert_dir: '' })).toMatch(/tls_cert_dir/);
    expect(refused({ host: '', tls_cert_dir: '/x' })).toMatch(/engine.host/);
  });

  it('refuses other schemes and non-addresses, naming the accepted forms', () => {
    for (const bad of ['http://127.0.0.1:2375', 'npipe:////./pipe/docker_engine', 'docker.example.com:2376', '']) {
      expect(refused(bad)).toMatch(/unix:\/\/\/path.*ssh:\/\/user@host.*tls_cert_dir/);
    }
    expect(refused(42)).toMatch(/string or \{ host, tls_cert_dir \}/);
  });

  it('keys the same engine alike however it is written, and different engines apart', () => {
    const key = (spec: Parameters<typeof parseEngineSpec>[0]) => engineKey(ok(spec));
    expect(key('ssh://u@h')).toBe(key('ssh://u@h:22'));
    expect(key('tcp://127.0.0.1')).toBe(key('tcp://127.0.0.1:2375'));
    expect(key({ host: 'tcp://h:2376', tls_cert_dir: '/a' })).not.toBe(key({ host: 'tcp://h:2376', tls_cert_dir: '/b' }));
    expect(key('tcp://127.0.0.1:2376')).not.toBe(key({ host: 'tcp://127.0.0.1:2376', tls_cert_dir: '/a' }));
  });

  it('knows loopback', () => {
    for (const h of ['127.0.0.1', '127.8.9.1', 'localhost', '::1', '[::1]']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['10.0.0.1', '0.0.0.0', 'example.com', '::', '128.0.0.1']) expect(isLoopbackHost(h)).toBe(false);
  });

  it("an agent's own engine wins over settings.engine; neither = the environment's", () => {
    expect(effectiveEngineSpec({ engine: 'unix:///a.sock' }, { engine: 'unix:///b.sock' })).toBe('unix:///a.sock');
    expect(effectiveEngineSpec({}, { engine: 'unix:///b.sock' })).toBe('unix:///b.sock');
    expect(effectiveEngineSpec(undefined, {})).toBeUndefined();
  });
});

describe('engine keys in agents.yaml', () => {
  const base = { agents: { a: { directory: '/tmp' } } };

  it('accepts the engine forms and writes them back only when set', () => {
    const config = configSchema.parse({
      agents: { a: { directory: '/tmp', engine: 'ssh://u@h' }, b: { directory: '/tmp', engine: { host: 'tcp://h:2376', tls_cert_dir: '/c' } }, c: { directory: '/tmp' } },
      settings: { engine: 'unix:///run/other.sock' },
    });
    const written = parseYaml(renderConfig(config)) as { agents: Record<string, Record<string, unknown>>; settings: Record<string, unknown> };
    expect(written.agents['a']!['engine']).toBe('ssh://u@h');
    expect(written.agents['b']!['engine']).toEqual({ host: 'tcp://h:2376', tls_cert_dir: '/c' });
    expect('engine' in written.agents['c']!).toBe(false);
    expect(written.settings['engine']).toBe('unix:///run/other.sock');
    const plain = parseYaml(renderConfig(configSchema.parse(base))) as { settings: Record<string, unknown> };
    expect('engine' in plain.settings).toBe(false);
  });

  it('refuses an invalid engine when the config loads, with the reason', () => {
    const bad = configSchema.safeParse({ agents: { a: { directory: '/tmp', engine: 'tcp://192.0.2.1:2375' } } });
    expect(bad.success).toBe(false);
    expect(JSON.stringify(bad.error?.issues)).toMatch(/plain TCP without TLS/);
    expect(configSchema.safeParse({ ...base, settings: { engine: { host: 'tcp://h', tls_cert_dir: '/c', extra: 1 } } }).success).toBe(false);
  });
});

describe('engine dockerode options', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ad-engine-certs-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('unix: the socket, with every environment field blanked', () => {
    const options = parsedEngineOptions({ kind: 'unix', socketPath: '/s.sock' }, {});
    expect(options).toMatchObject({ socketPath: '/s.sock', host: undefined, protocol: undefined, ca: undefined });
  });

  it('ssh: docker-modem ssh protocol with the user, the ssh-agent, and only the host keys known_hosts records', () => {
    const home = join(dir, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    const keygen = (name: string) => {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(dir, name)]);
      return readFileSync(join(dir, `${name}.pub`), 'utf8').trim().split(' ');
    };
    const [type, known] = keygen('known');
    const [, other] = keygen('other');
    const [, onPort] = keygen('port');
    writeFileSync(join(home, '.ssh', 'known_hosts'), `build-host ${type} ${known}\n[build-host]:2222 ${type} ${onPort}\n`);
    const verifierOf = (options: Docker.DockerOptions) => (options as { sshOptions: { hostVerifier: (key: Buffer) => boolean } }).sshOptions.hostVerifier;

    const options = parsedEngineOptions({ kind: 'ssh', host: 'build-host', port: 22, username: 'u' }, { HOME: home, SSH_AUTH_SOCK: '/run/agent.sock' });
    expect(options).toMatchObject({ protocol: 'ssh', host: 'build-host', port: 22, username: 'u', sshOptions: { agent: '/run/agent.sock' }, socketPath: undefined });
    expect(verifierOf(options)(Buffer.from(known!, 'base64'))).toBe(true);
    expect(verifierOf(options)(Buffer.from(other!, 'base64'))).toBe(false);
    expect(verifierOf(options)(Buffer.from(onPort!, 'base64'))).toBe(false);
    const port = parsedEngineOptions({ kind: 'ssh', host: 'build-host', port: 2222, username: 'u' }, { HOME: home });
    expect(verifierOf(port)(Buffer.from(onPort!, 'base64'))).toBe(true);
    expect(verifierOf(port)(Buffer.from(known!, 'base64'))).toBe(false);

    // Hashed known_hosts entries are found too.
    execFileSync('ssh-keygen', ['-q', '-H', '-f', join(home, '.ssh', 'known_hosts')]);
    expect(readFileSync(join(home, '.ssh', 'known_hosts'), 'utf8')).not.toContain('build-host');
    expect(verifierOf(parsedEngineOptions({ kind: 'ssh', host: 'build-host', port: 22, username: 'u' }, { HOME: home }))(Buffer.from(known!, 'base64'))).toBe(true);

    let unknown: unknown;
    try {
      parsedEngineOptions({ kind: 'ssh', host: 'new-host', port: 22, username: 'u' }, { HOME: home });
    } catch (error) {
      unknown = error;
    }
    expect(unknown).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(/host key of ssh engine new-host is not in known_hosts/), hint: expect.stringContaining('ssh new-host') });
  });

  it('tcp with TLS reads ca.pem, cert.pem and key.pem; a missing one is named', () => {
    writeFileSync(join(dir, 'ca.pem'), 'CA');
    writeFileSync(join(dir, 'cert.pem'), 'CERT');
    expect(() => parsedEngineOptions({ kind: 'tcp', host: 'h', port: 2376, tlsCertDir: dir }, {})).toThrow(/key\.pem.*could not be read/);
    writeFileSync(join(dir, 'key.pem'), 'KEY');
    const options = parsedEngineOptions({ kind: 'tcp', host: 'h', port: 2376, tlsCertDir: dir }, {});
    expect(options).toMatchObject({ protocol: 'https', host: 'h', port: 2376 });
    expect([options.ca, options.cert, options.key].map(String)).toEqual(['CA', 'CERT', 'KEY']);
    expect(parsedEngineOptions({ kind: 'tcp', host: '127.0.0.1', port: 2375 }, {})).toMatchObject({ protocol: 'http', host: '127.0.0.1', port: 2375, ca: undefined });
  });

  it("no engine = the environment's (DOCKER_HOST), an invalid one is a config error", () => {
    expect(engineDockerOptions(undefined, { DOCKER_HOST: 'unix:///env.sock' })).toEqual({ socketPath: '/env.sock' });
    expect(() => engineDockerOptions('tcp://192.0.2.1:2375', {})).toThrow(/plain TCP without TLS/);
  });

  it("a configured engine is not overridden by the environment's DOCKER_HOST inside docker-modem", () => {
    const saved = process.env['DOCKER_HOST'];
    process.env['DOCKER_HOST'] = 'tcp://192.0.2.99:2376';
    try {
      const modem = new Docker(engineDockerOptions('unix:///configured.sock', {})).modem as unknown as { socketPath?: string; host?: string };
      expect(modem.host).toBeUndefined();
      expect(modem.socketPath).toBe('/configured.sock');
    } finally {
      if (saved === undefined) delete process.env['DOCKER_HOST'];
      else process.env['DOCKER_HOST'] = saved;
    }
  });
});
