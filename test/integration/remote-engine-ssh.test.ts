/**
 * An ssh:// engine as docker-modem reaches it: an SSH connection (key from an ssh-agent) whose `docker system
 * dial-stdio` is the engine's API. The SSH server here is ssh2's own (the library docker-modem connects with),
 * on 127.0.0.1 with a host key made for the test, and its dial-stdio is a pipe to this machine's engine socket:
 * what runs is the real client path — the agent, the known_hosts check, the HTTP API over the SSH channel —
 * up to a hardened container created, attached, started and removed over it.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { engineDockerOptions } from '../../src/sandbox/engine-options.js';
import { createEngine } from '../../src/sandbox/engine.js';
import { BUSYBOX_IMAGE, dockerClient, dockerEndpoint, skipDocker, testLabels, testRunId, cleanupTestResources } from '../helpers/docker.js';

const haveOpenSsh = existsSync('/usr/bin/ssh-keygen') && existsSync('/usr/bin/ssh-agent') && existsSync('/usr/bin/ssh-add');

describe.skipIf(skipDocker)('an ssh:// engine (ssh2 server on loopback, dial-stdio piped to the engine)', () => {
  const local = dockerClient();
  const runId = testRunId();
  const dir = mkdtempSync('/tmp/ad-ssh-');
  const home = join(dir, 'home');
  const seen: { users: string[]; commands: string[] } = { users: [], commands: [] };
  let server: ssh2.Server;
  let port = 0;
  let agent: ChildProcess | undefined;
  let env: NodeJS.ProcessEnv;
  let hostKey: string;

  beforeAll(async () => {
    expect(haveOpenSsh, 'the OpenSSH client (ssh-keygen, ssh-agent, ssh-add) is needed').toBe(true);
    mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
    for (const name of ['host', 'client', 'stranger']) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(dir, name)]);
    hostKey = readFileSync(join(dir, 'host.pub'), 'utf8').trim();
    const allowed = ssh2.utils.parseKey(readFileSync(join(dir, 'client.pub')));
    if (allowed instanceof Error) throw allowed;
    const socketPath = (dockerEndpoint() as { socketPath?: string }).socketPath ?? '/var/run/docker.sock';
    server = new ssh2.Server({ hostKeys: [readFileSync(join(dir, 'host'))] }, (client) => {
      client
        .on('authentication', (ctx) => {
          const key = ctx.method === 'publickey' ? ctx.key : undefined;
          const publicSsh = allowed.getPublicSSH();
          if (!key || key.algo !== allowed.type || key.data.length !== publicSsh.length || !timingSafeEqual(key.data, publicSsh)) return ctx.reject();
          if (ctx.method === 'publickey' && ctx.signature && allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject();
          seen.users.push(ctx.username);
          ctx.accept();
        })
        .on('ready', () => {
          client.on('session', (accept) => {
            accept().on('exec', (acceptExec, reject, info) => {
              seen.commands.push(info.command);
              if (info.command !== 'docker system dial-stdio') return reject();
              const channel = acceptExec();
              const engine = connect(socketPath);
              channel.pipe(engine).pipe(channel);
              engine.on('error', () => channel.close());
              channel.on('close', () => engine.destroy());
            });
          });
        })
        .on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    writeFileSync(join(home, '.ssh', 'known_hosts'), `[127.0.0.1]:${port} ${hostKey}\n`);

    const agentSocket = join(dir, 'agent.sock');
    agent = spawn('ssh-agent', ['-D', '-a', agentSocket], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(agentSocket); i++) await new Promise((r) => setTimeout(r, 50));
    execFileSync('ssh-add', ['-q', join(dir, 'client')], { env: { ...process.env, SSH_AUTH_SOCK: agentSocket }, stdio: 'ignore' });
    env = { HOME: home, SSH_AUTH_SOCK: agentSocket };
  }, 60_000);

  afterAll(async () => {
    await cleanupTestResources(local, runId);
    if (agent?.pid) agent.kill();
    await new Promise((resolve) => server?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const spec = () => `ssh://tester@127.0.0.1:${port}`;

  it("reaches the engine through the agent's key and the recorded host key", async () => {
    const info = await createEngine(engineDockerOptions(spec(), env)).info();
    expect(info.version).toBe((await local.version()).Version);
    expect(seen.users).toContain('tester');
    expect(seen.commands).toContain('docker system dial-stdio');
  });

  it('runs a hardened container over it: create, attach, start, output, remove', async () => {
    const docker = new Docker(engineDockerOptions(spec(), env));
    const container = await docker.createContainer({
      Image: BUSYBOX_IMAGE,
      Cmd: ['sh', '-c', 'echo over-ssh $(id -u)'],
      User: '1000:1000',
      Labels: testLabels(runId),
      NetworkDisabled: true,
      HostConfig: { NetworkMode: 'none', ReadonlyRootfs: true, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] },
    });
    try {
      const stream = await container.attach({ stream: true, stdout: true, stderr: true });
      let output = '';
      const ended = new Promise<void>((resolve) => stream.on('end', resolve));
      const sink = new PassThrough().on('data', (c: Buffer) => (output += c.toString()));
      container.modem.demuxStream(stream, sink, process.stderr);
      await container.start();
      const { StatusCode } = (await container.wait()) as { StatusCode: number };
      await Promise.race([ended, new Promise((r) => setTimeout(r, 5000))]);
      expect(StatusCode).toBe(0);
      expect(output.trim()).toBe('over-ssh 1000');
    } finally {
      await container.remove({ force: true });
    }
    expect(await local.listContainers({ all: true, filters: JSON.stringify({ label: [`agent-dispatch.test=${runId}`] }) })).toEqual([]);
  }, 60_000);

  it('refuses a host whose key is not the recorded one (a man in the middle), before any login', async () => {
    const stranger = join(dir, 'stranger-home');
    mkdirSync(join(stranger, '.ssh'), { recursive: true });
    writeFileSync(join(stranger, '.ssh', 'known_hosts'), `[127.0.0.1]:${port} ${readFileSync(join(dir, 'stranger.pub'), 'utf8').trim()}\n`);
    const logins = seen.users.length;
    await expect(createEngine(engineDockerOptions(spec(), { ...env, HOME: stranger })).info()).rejects.toMatchObject({ code: 'DOCKER_UNAVAILABLE' });
    expect(seen.users.length).toBe(logins);
  });

  it('refuses a host known_hosts does not list, naming the fix', () => {
    const empty = join(dir, 'empty-home');
    mkdirSync(empty);
    expect(() => engineDockerOptions(spec(), { ...env, HOME: empty })).toThrow(/not in known_hosts/);
  });
});
