import { spawnSync } from 'node:child_process';
/**
 * The egress gateway container's own lifetime and hardening, with the real claude binary in the test agent
 * image and the real gateway image: how it runs (unprivileged, read-only, capped) and that the credential it
 * adds shows nowhere Docker can show; one gateway per agent, reused by sequential and concurrent dispatches;
 * its socket refuses a connection without a registered token; and a server killed outright leaves a gateway
 * that exits by itself (its stdin closed) and that the next server reaps.
 */
import { PassThrough } from 'node:stream';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, requireConfig } from '../../src/config/load.js';
import { DispatchService } from '../../src/dispatch/service.js';
import type { DispatchResult } from '../../src/dispatch/types.js';
import { BRIDGE_ENV, GATEWAY_SOCKET_DIR } from '../../src/gateway/protocol.js';
import { CREDENTIAL_PLACEHOLDER, LABEL_PREFIX } from '../../src/policy/layout.js';
import { GATEWAY_ROLE_LABEL } from '../../src/sandbox/gateway-container.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { CLI, createBuiltFixture, gatewayTestPolicy, tearDown, TEST_GATEWAY_IMAGE, type Fixture } from '../helpers/dispatch-fixture.js';
import { dockerClient, skipDocker, TEST_LABEL, testLabels, testRunId } from '../helpers/docker.js';
import { isAlive, waitFor } from '../helpers/process.js';

const TIMEOUT = 60_000;
const POLICY_LABEL = `${LABEL_PREFIX}.policy`;
/** The gateway's answer to a connection without a registered token (src/gateway/refusal.ts), not a destination refusal. */
const TOKEN_REFUSED = /^HTTP\/1\.[01] 403 [^\r]*\r\n[\s\S]*\r\n\r\n[\s\S]*did not present a valid dispatch token/;

describe.skipIf(skipDocker)('the egress gateway container: hardening, reuse, token gate, lifetime', () => {
  const docker = dockerClient();
  const runId = testRunId();
  /** Sequential dispatches. */
  const agent = `gwl-${runId}`;
  /** Concurrent dispatches that race to start its gateway. */
  const pair = `gwp-${runId}`;
  /** Dispatched through a `serve` child that is then killed. */
  const served = `gws-${runId}`;
  let fx: Fixture;
  let service: DispatchService;
  let gatewayId: string;
  /** The concurrent pair's gateway, and the tokens its two (finished, so released) dispatches had. */
  let pairGatewayId: string;
  const releasedTokens: string[] = [];

  beforeAll(async () => {
    fx = await createBuiltFixture(docker, runId);
    const repo = fx.repo('project');
    fx.policy('gw-life', gatewayTestPolicy([]));
    fx.agents(
      {
        [agent]: { directory: repo, policy: 'gw-life' },
        [pair]: { directory: repo, policy: 'gw-life' },
        [served]: { directory: repo, policy: 'gw-life' },
      },
      { max_concurrency: 4 },
    );
    service = new DispatchService(fx.env);
  }, TIMEOUT);

  afterAll(() => tearDown({ service, docker, runId, fx }), TIMEOUT);

  const config = () => requireConfig(loadConfig(fx.configPath));
  const dispatch = (name: string, task: string): Promise<DispatchResult> => service.dispatch(config(), { agent: name, task });

  async function gatewaysOf(name: string): Promise<Docker.ContainerInfo[]> {
    return docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`, `${LABELS.agent}=${name}`, `${GATEWAY_ROLE_LABEL}=gateway`] } });
  }

  async function only(name: string): Promise<Docker.ContainerInfo> {
    const list = await gatewaysOf(name);
    expect(list, `gateways of ${name}`).toHaveLength(1);
    return list[0]!;
  }

  /** The exit code Docker reports when the container dies (its `die` event), within `ms`. */
  async function dieEvent(id: string, ms: number): Promise<string> {
    const stream = (await docker.getEvents({ filters: { container: [id], event: ['die'] } })) as NodeJS.ReadableStream & { destroy(): void };
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => finish(() => reject(new Error(`the gateway did not exit within ${ms} ms`))), ms);
      const finish = (then: () => void): void => {
        clearTimeout(timer);
        stream.destroy();
        then();
      };
      let pending = '';
      stream.on('data', (chunk: Buffer) => {
        pending += chunk.toString('utf8');
        for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          const event = JSON.parse(line) as { Action?: string; Actor?: { Attributes?: Record<string, string> } };
          if (event.Action === 'die') return finish(() => resolve(event.Actor?.Attributes?.['exitCode'] ?? '?'));
        }
      });
      stream.on('error', (error: Error) => finish(() => reject(error)));
    });
  }

  /** Run a command in a container as `user`; its stdout and stderr. */
  async function execIn(id: string, cmd: string[], user = '10001:10001'): Promise<{ stdout: string; stderr: string }> {
    const exec = await docker.getContainer(id).exec({ Cmd: cmd, User: user, AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    const out = new PassThrough();
    const err = new PassThrough();
    const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
    out.on('data', (d: Buffer) => chunks.out.push(d));
    err.on('data', (d: Buffer) => chunks.err.push(d));
    docker.modem.demuxStream(stream, out, err);
    await new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    return { stdout: Buffer.concat(chunks.out).toString('utf8'), stderr: Buffer.concat(chunks.err).toString('utf8') };
  }

  it('runs hardened (uid 10001, read-only root, no capabilities, no-new-privileges, 256 MiB, 128 pids); the credential is nowhere docker inspect shows', async () => {
    const result = await dispatch(agent, DIRECTIVE.reply('first'));
    expect(result, JSON.stringify(result)).toMatchObject({ success: true, result: 'first' });
    const gateway = await only(agent);
    gatewayId = gateway.Id;
    expect(gateway.State).toBe('running');
    const info = await docker.getContainer(gatewayId).inspect();
    expect(info.Config.User).toBe('10001:10001');
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.CapAdd ?? []).toEqual([]);
    expect(info.HostConfig.SecurityOpt).toContain('no-new-privileges');
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.HostConfig.Memory).toBe(256 * 1024 * 1024);
    expect(info.HostConfig.PidsLimit).toBe(128);
    // the credential went in on stdin: not in the environment, the command, the labels, nor anywhere else
    expect(JSON.stringify(info.Config.Env ?? [])).not.toContain(fx.apiKey);
    expect(JSON.stringify(info.Config.Cmd ?? [])).not.toContain(fx.apiKey);
    expect(JSON.stringify(info.Config.Labels ?? {})).not.toContain(fx.apiKey);
    expect(JSON.stringify(info)).not.toContain(fx.apiKey);
    // nor in what it wrote (docker logs keeps stdout and stderr, never stdin)
    const logs = (await docker.getContainer(gatewayId).logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    expect(logs.toString('utf8')).not.toContain(fx.apiKey);
    // and yet it is the key that reached the API
    expect(fx.model.requests.some((r) => r.apiKey === fx.apiKey)).toBe(true);
  }, TIMEOUT);

  it('a second dispatch of the same agent reuses its gateway', async () => {
    const result = await dispatch(agent, DIRECTIVE.reply('second'));
    expect(result, JSON.stringify(result)).toMatchObject({ success: true, result: 'second' });
    expect((await only(agent)).Id).toBe(gatewayId);
  }, TIMEOUT);

  it('two concurrent dispatches of a new agent start one gateway, both succeed; the agent containers hold only the placeholder', async () => {
    const task = (text: string) => `${DIRECTIVE.sleep(2500)} ${DIRECTIVE.reply(text)}`;
    const both = Promise.all([dispatch(pair, task('left')), dispatch(pair, task('right'))]);
    // while both run: every agent container of theirs (the compiled spec's policy label; not the volume helper), inspected
    const seen = new Map<string, Docker.ContainerInspectInfo>();
    const gateways = new Set<string>();
    const deadline = Date.now() + 30_000;
    let settled = false;
    void both.finally(() => (settled = true));
    while (seen.size < 2 && !settled && Date.now() < deadline) {
      const running = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`, `${LABELS.agent}=${pair}`, LABELS.job, POLICY_LABEL] } });
      for (const g of await gatewaysOf(pair)) gateways.add(g.Id);
      for (const c of running) {
        if (seen.has(c.Id)) continue;
        const info = await docker.getContainer(c.Id).inspect().catch(() => undefined);
        if (info) seen.set(c.Id, info);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const [left, right] = await both;
    expect(left, JSON.stringify(left)).toMatchObject({ success: true, result: 'left' });
    expect(right, JSON.stringify(right)).toMatchObject({ success: true, result: 'right' });
    expect(seen.size).toBe(2);
    for (const info of seen.values()) {
      const token = info.Config.Env.find((e) => e.startsWith(`${BRIDGE_ENV.token}=`))?.slice(BRIDGE_ENV.token.length + 1);
      expect(token).toMatch(/^[0-9a-f]{48}$/);
      releasedTokens.push(token!);
      expect(JSON.stringify(info)).not.toContain(fx.apiKey);
      expect(info.Config.Env).toContain(`ANTHROPIC_API_KEY=${CREDENTIAL_PLACEHOLDER}`);
      expect(info.HostConfig.NetworkMode).toBe('none');
      expect(info.HostConfig.Mounts?.find((m) => m.Target === GATEWAY_SOCKET_DIR)).toMatchObject({ Type: 'volume', ReadOnly: true });
    }
    expect(new Set(releasedTokens).size).toBe(2);
    const gateway = await only(pair);
    pairGatewayId = gateway.Id;
    // never a second one, not even briefly
    expect([...gateways]).toEqual([gateway.Id]);
    expect(gateway.Id).not.toBe(gatewayId);
    expect(gateway.State).toBe('running');
    // the first agent's gateway is untouched
    expect((await only(agent)).Id).toBe(gatewayId);
  }, TIMEOUT);

  /** Inside the gateway container: connect to its one socket, present `token`, ask for a tunnel; the raw answer. */
  async function tryToken(gateway: string, token: string): Promise<string> {
    const listing = await execIn(gateway, ['ls', GATEWAY_SOCKET_DIR]);
    const sockets = listing.stdout.split(/\s+/).filter((n) => n.endsWith('.sock'));
    expect(sockets, `${listing.stdout}${listing.stderr}`).toHaveLength(1);
    const path = `${GATEWAY_SOCKET_DIR}/${sockets[0]}`;
    const script = `
      const s = require('node:net').connect(${JSON.stringify(path)});
      let got = '';
      const done = () => { process.stdout.write(got || 'NO ANSWER', () => process.exit(0)); };
      s.on('connect', () => s.write(${JSON.stringify(`AGENT-DISPATCH-TOKEN ${token}\nCONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n`)}));
      s.on('data', (d) => { got += d; });
      s.on('close', done);
      s.on('error', (e) => { console.log('ERROR ' + e.message); process.exit(0); });
      setTimeout(done, 8000);
    `;
    const { stdout, stderr } = await execIn(gateway, ['node', '-e', script]);
    return `${stdout}${stderr ? ` (stderr: ${stderr.trim()})` : ''}`;
  }

  it('the socket refuses a connection that presents no registered token (403)', async () => {
    expect(await tryToken(gatewayId, 'bogus')).toMatch(TOKEN_REFUSED);
    // the refused connection did not hurt the gateway: the next dispatch still goes through it
    const after = await dispatch(agent, DIRECTIVE.reply('still fine'));
    expect(after).toMatchObject({ success: true, result: 'still fine' });
    expect((await only(agent)).Id).toBe(gatewayId);
  }, TIMEOUT);

  it('the token of a finished dispatch is refused too (released with its dispatch)', async () => {
    expect(releasedTokens).toHaveLength(2);
    for (const token of releasedTokens) expect(await tryToken(pairGatewayId, token)).toMatch(TOKEN_REFUSED);
  }, TIMEOUT);

  it('a rebuilt gateway image takes effect at the next dispatch; the old gateway goes once its dispatches end', async () => {
    const tag = `agent-dispatch/gateway:rebuilt-${runId}`;
    const testImage = await docker.getImage(TEST_GATEWAY_IMAGE).inspect();
    await docker.getImage(testImage.Id).tag({ repo: 'agent-dispatch/gateway', tag: `rebuilt-${runId}` });
    const rebuilt = new DispatchService({ ...fx.env, AGENT_DISPATCH_GATEWAY_IMAGE: tag });
    try {
      const name = agent;
      const first = await rebuilt.dispatch(config(), { agent: name, task: DIRECTIVE.reply('before the rebuild') });
      expect(first.success, JSON.stringify(first)).toBe(true);
      const before = (await gatewaysOf(name)).filter((g) => g.Image === tag);
      expect(before).toHaveLength(1);
      // "Rebuild" the image: the same program, one more label, so a new image id under the same tag.
      const labels = Object.entries(testLabels(runId)).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
      const build = spawnSync('docker', ['build', '-q', ...labels, '-t', tag, '-'], {
        input: `FROM ${testImage.Id}\nLABEL agent-dispatch.rebuilt=${runId}\n`,
        encoding: 'utf8',
      });
      expect(build.status, build.stderr).toBe(0);
      const second = await rebuilt.dispatch(config(), { agent: name, task: DIRECTIVE.reply('after the rebuild') });
      expect(second.success, JSON.stringify(second)).toBe(true);
      const newId = (await docker.getImage(tag).inspect()).Id;
      await waitFor('the old gateway to go', async () => !(await gatewaysOf(name)).some((g) => g.Id === before[0]!.Id), 15_000);
      const after = (await gatewaysOf(name)).filter((g) => g.ImageID === newId);
      expect(after).toHaveLength(1);
    } finally {
      await rebuilt.shutdown();
      await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
    }
  }, TIMEOUT);

  it('a server killed outright leaves its gateway to exit (stdin closed); the next server reaps it', async () => {
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve'], env: fx.env as Record<string, string>, cwd: fx.root, stderr: 'pipe' });
    const client = new Client({ name: 'gateway-lifecycle', version: '0.0.0' });
    await client.connect(transport);
    const pid = transport.pid!;
    try {
      const answer = await client.callTool({ name: 'dispatch', arguments: { agent: served, task: DIRECTIVE.reply('via serve') } }, CallToolResultSchema, { timeout: TIMEOUT });
      expect(JSON.stringify(answer.content)).toContain('via serve');
      const gateway = await only(served);
      expect(gateway.State).toBe('running');
      expect(gateway.Labels[LABELS.serverPid]).toBe(String(pid));

      // Docker's own record of the exit: another suite's server reaping orphans on this engine cannot hide it
      const died = dieEvent(gateway.Id, 10_000);
      process.kill(pid, 'SIGKILL');
      await waitFor('the server to be gone', async () => !isAlive(pid), 10_000);
      // exit code 0: it ended itself when its stdin closed (a kill would be 137)
      expect(await died).toBe('0');
      const state = await docker.getContainer(gateway.Id).inspect().then((i) => i.State, () => undefined);
      // gone or being removed: a reaper (another suite's server on this engine) got to it first
      if (state && state.Status !== 'removing') expect(state).toMatchObject({ Status: 'exited', ExitCode: 0 });

      const next = new DispatchService(fx.env);
      await next.startup();
      await next.shutdown();
      // The engine may still be finishing an AutoRemove that started when the gateway exited.
      await waitFor('the dead server\'s gateway to be removed', async () => (await gatewaysOf(served)).length === 0, 10_000);
      // a live server's gateways are never reaped
      expect((await only(agent)).Id).toBe(gatewayId);
    } finally {
      if (isAlive(pid)) process.kill(pid, 'SIGKILL');
      await client.close().catch(() => undefined);
    }
  }, TIMEOUT);
});
