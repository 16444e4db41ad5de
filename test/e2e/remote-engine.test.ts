/**
 * An agent on another Docker engine: a second dockerd on this machine (scripts/second-dockerd.sh: its own
 * data-root, exec-root, pidfile, bridge, and TCP with TLS on 127.0.0.1, certificates made by openssl for this
 * run) stands for a remote host. The agent names it as `engine: { host: tcp://127.0.0.1:PORT, tls_cert_dir }`.
 * The BUILT CLI copies the images there and the BUILT server (MCP over stdio) dispatches the real claude
 * binary, against the scripted fake model, with the selftest's probe: the dispatch runs on the second engine
 * (its events show the container), the first engine never sees a container of that agent, and the selftest's
 * in-container checks hold there. With the agent gone from the config, the BUILT `gc --volumes` removes its
 * volumes and its tool-rules volume there and keeps the local engine's. Both engines end with nothing of the run; the second dockerd, its
 * directories and bridge are removed even when the test fails, and the first engine's iptables rules stay as they were.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { engineDockerOptions } from '../../src/sandbox/engine-options.js';
import { claudeStateVolume, LABEL_PREFIX, MANAGED_SETTINGS_PATH, volumeScope } from '../../src/policy/layout.js';
import { CONFIG_DIR_LABEL } from '../../src/sandbox/volume-gc.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { networkProbeScript, parseProbe, probeScript } from '../../src/selftest/probe.js';
import { judge, judgeNetwork, serve } from '../../src/selftest/selftest.js';
import type { DispatchResult } from '../../src/dispatch/types.js';
import { CLI, createBuiltFixture, gatewayTestPolicy, TEST_AGENT_IMAGE, TEST_GATEWAY_IMAGE, type Fixture } from '../helpers/dispatch-fixture.js';
import { BUSYBOX_IMAGE, cleanupTestResources, dockerClient, isCI, skipDocker, TEST_LABEL, testLabels, testRunId } from '../helpers/docker.js';

const TIMEOUT = 240_000;
const SCRIPT = join(import.meta.dirname, '..', '..', 'scripts', 'second-dockerd.sh');
const isRoot = process.getuid?.() === 0;
/** A second daemon needs root and dockerd; CI (root, a fresh machine) must run this. */
const skip = skipDocker || (!isCI() && (!isRoot || !existsSync('/usr/sbin/dockerd')));

interface SecondEngine {
  dir: string;
  socket: string;
  host: string;
  certs: string;
  bridge: string;
  subnet: string;
  startMs: number;
}

function startSecondEngine(): SecondEngine {
  const dir = mkdtempSync('/tmp/ad2-');
  const started = Date.now();
  const run = spawnSync('bash', [SCRIPT, 'start', dir], { encoding: 'utf8', timeout: 60_000 });
  if (run.status !== 0) {
    spawnSync('bash', [SCRIPT, 'stop', dir]);
    throw new Error(`second dockerd did not start: ${run.stderr}${run.stdout}`);
  }
  const values = Object.fromEntries(run.stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
  return { dir, socket: values['SOCKET']!, host: values['HOST']!, certs: values['CERTS']!, bridge: values['BRIDGE']!, subnet: values['SUBNET']!, startMs: Date.now() - started };
}

/** Events of one label on an engine, collected until stopped. */
async function watchEvents(docker: Docker, label: string): Promise<{ seen: Array<{ Type: string; Action: string }>; stop: () => void }> {
  const seen: Array<{ Type: string; Action: string }> = [];
  const stream = (await docker.getEvents({ filters: JSON.stringify({ label: [label] }) })) as NodeJS.ReadableStream & { destroy(): void };
  let buffer = '';
  stream.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line) seen.push(JSON.parse(line) as { Type: string; Action: string });
    }
  });
  return { seen, stop: () => stream.destroy() };
}

/** The first engine's rules for its default bridge (a second dockerd managing iptables would flush some). */
function docker0Rules(): string[] {
  return execFileSync('iptables-save', { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith('-A') && /docker0|172\.17\./.test(l))
    .sort();
}

describe.skipIf(skip)('an agent on a remote Docker engine (a second dockerd with TLS)', () => {
  const local = dockerClient();
  const runId = testRunId();
  const agent = `far-${runId}`;
  const agentLabel = `${LABELS.agent}=${agent}`;
  const canary = `remote-canary-${randomBytes(8).toString('hex')}`;
  const services: Server[] = [];
  let second: SecondEngine | undefined;
  let remote: Docker;
  let fx: Fixture;
  let repo: string;
  let engineSpec: { host: string; tls_cert_dir: string };
  let allowed: { host: string; port: number; body: string };
  let hostService: { host: string; port: number };
  let docker0Before: string[];
  let docker0During: string[];

  beforeAll(async () => {
    docker0Before = docker0Rules();
    second = startSecondEngine();
    docker0During = docker0Rules();
    engineSpec = { host: second.host, tls_cert_dir: second.certs };
    remote = new Docker(engineDockerOptions(engineSpec, {}));
    fx = await createBuiltFixture(local, runId);
    fx.env['AGENT_DISPATCH_SELFTEST_CANARY'] = canary;
    // The fake model listens on the first engine's bridge address: a host address, which the gateway on the
    // second engine's bridge reaches as well (traffic to the host itself is not forwarded between bridges).
    const host = new URL(fx.model.url).hostname;
    const body = `remote-allowed-${randomBytes(4).toString('hex')}`;
    allowed = { host, port: await serve(services, host, body), body };
    hostService = { host, port: await serve(services, '0.0.0.0', 'host-service') };
    repo = fx.repo('far', { 'selftest.txt': 'readable\n' });
    writeFileSync(join(fx.root, 'repos', 'outside.txt'), 'outside\n');
    fx.policy(
      'remote',
      gatewayTestPolicy([`${allowed.host}:${allowed.port}`], {
        tools: { permission_mode: 'default', allow: ['Bash'], deny: ['WebFetch', 'WebSearch'] },
        resources: { memory: '1g', cpus: 1, pids: 256, nofile: 1024, tmp_size: '64m', timeout: 120 },
      }),
    );
    fx.agents({ [agent]: { directory: repo, policy: 'remote', engine: engineSpec } }, { cache: { enabled: false }, warm_pool: 0 });
  }, TIMEOUT);

  afterAll(async () => {
    await Promise.all(services.map((s) => new Promise((resolve) => s.close(resolve))));
    await cleanupTestResources(local, runId).catch(() => undefined);
    if (remote) await cleanupTestResources(remote, runId).catch(() => undefined);
    await fx?.close();
    if (second) spawnSync('bash', [SCRIPT, 'stop', second.dir], { timeout: 60_000 });
  }, TIMEOUT);

  function cli(...args: string[]) {
    return spawnSync(process.execPath, [CLI, ...args], { env: fx.env, encoding: 'utf8', timeout: TIMEOUT });
  }

  it('starts fast enough for every test run', () => {
    expect(second!.startMs).toBeLessThan(15_000);
    console.log(`[remote-engine] second dockerd (certificates included) answered after ${second!.startMs} ms`);
  });

  it('without its images there, a dispatch is refused with the copy command; doctor says the same', async () => {
    const doctor = cli('doctor');
    const label = second!.host;
    expect(doctor.stdout).toContain(`[OK] ${label} reachable: server`);
    expect(doctor.stdout).toContain(`[FAIL] ${label}: ${TEST_AGENT_IMAGE} is not there`);
    expect(doctor.stdout).toContain(`agent-dispatch image copy --agent ${agent}`);
    const test = cli('test', agent, 'hello');
    expect(test.status).not.toBe(0);
    expect(`${test.stdout}${test.stderr}`).toContain(`is not on engine ${label} of agent '${agent}'`);
    expect(`${test.stdout}${test.stderr}`).toContain(`agent-dispatch image copy --agent ${agent}`);
    expect((await remote.listImages()).length).toBe(0);
  }, TIMEOUT);

  it('image copy --agent copies the agent and gateway images there (a copy: the same ids, no pull)', async () => {
    const started = Date.now();
    const copy = cli('image', 'copy', '--agent', agent);
    expect(copy.status, copy.stderr).toBe(0);
    expect(copy.stderr).toBe('');
    console.log(`[remote-engine] image copy: ${Date.now() - started} ms\n${copy.stdout}`);
    for (const image of [TEST_AGENT_IMAGE, TEST_GATEWAY_IMAGE]) {
      expect((await remote.getImage(image).inspect()).Id).toBe((await local.getImage(image).inspect()).Id);
      expect(copy.stdout).toContain(`Copied ${image}`);
    }
    const again = cli('image', 'copy', '--agent', agent);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stdout).toContain(`${TEST_AGENT_IMAGE} (`);
    expect(again.stdout).toContain('already on engine');
    expect(cli('doctor').stdout).toContain(`[OK] ${second!.host}: ${TEST_AGENT_IMAGE} present`);
  }, TIMEOUT);

  it('a dispatch runs on the remote engine only and holds the selftest in-container checks there', async () => {
    const localEvents = await watchEvents(local, agentLabel);
    const remoteEvents = await watchEvents(remote, agentLabel);
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve'], env: fx.env as Record<string, string>, cwd: fx.root, stderr: 'pipe' });
    let stderr = '';
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const client = new Client({ name: 'e2e-remote-engine', version: '0.0.0' });
    await client.connect(transport);
    let result: DispatchResult;
    let runningRemote = 0;
    let runningLocal = 0;
    try {
      const probe = [
        probeScript({ repo, canary, hostPaths: [fx.configPath, join(fx.root, 'repos', 'outside.txt'), join(fx.root, '.config')] }),
        // The tool rules reach a tcp:// engine as a volume (it does not see this machine's files): there, read-only.
        `echo "managed_rules=$(grep -c allowManagedPermissionRulesOnly ${MANAGED_SETTINGS_PATH} 2>/dev/null)"`,
        `if touch ${MANAGED_SETTINGS_PATH} 2>/dev/null; then echo managed_write=allowed; else echo managed_write=refused; fi`,
        networkProbeScript({ allowed, hostService, secret: fx.apiKey }),
      ].join('\n');
      const call = client.callTool({ name: 'dispatch', arguments: { agent, task: DIRECTIVE.bash(probe) } }, CallToolResultSchema, { timeout: TIMEOUT });
      // While it runs: its containers are on the second engine (docker ps there), none on the first.
      for (let i = 0; i < 100 && runningRemote === 0; i++) {
        runningRemote = (await remote.listContainers({ filters: JSON.stringify({ label: [agentLabel] }) })).length;
        runningLocal = Math.max(runningLocal, (await local.listContainers({ all: true, filters: JSON.stringify({ label: [agentLabel] }) })).length);
        if (runningRemote === 0) await new Promise((r) => setTimeout(r, 100));
      }
      const answer = (await call) as CallToolResult;
      const first = answer.content[0];
      if (first?.type !== 'text') throw new Error(`unexpected content: ${JSON.stringify(answer)}`);
      result = JSON.parse(first.text) as DispatchResult;
    } finally {
      await client.close().catch(() => undefined);
    }
    // The server's shutdown removed its gateway there.
    for (let i = 0; i < 50 && (await remote.listContainers({ all: true, filters: JSON.stringify({ label: [agentLabel] }) })).length > 0; i++) await new Promise((r) => setTimeout(r, 200));
    const gatewaysLeft = (await remote.listContainers({ all: true, filters: JSON.stringify({ label: [agentLabel] }) })).length;
    localEvents.stop();
    remoteEvents.stop();

    expect(result.success, `${result.error ?? ''} ${result.hint ?? ''}\n${stderr.slice(-2000)}`).toBe(true);
    expect(runningRemote).toBeGreaterThan(0);
    expect(runningLocal).toBe(0);
    const created = remoteEvents.seen.filter((e) => e.Type === 'container' && e.Action === 'create').length;
    expect(created).toBeGreaterThanOrEqual(2); // the gateway and the dispatch container
    expect(localEvents.seen).toEqual([]);

    const facts = parseProbe(result.result ?? '');
    const keyArrived = fx.model.requests.some((r) => r.apiKey === fx.apiKey);
    const otherCredentials = fx.model.requests.filter((r) => (r.apiKey !== undefined && r.apiKey !== fx.apiKey) || r.authorization !== undefined).length;
    const checks = [...judge(result, facts, { keyArrived, otherCredentials, leftover: 0 }), ...judgeNetwork(result, facts, { allowed, hostService, gatewaysLeft })];
    const failed = checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
    expect(failed).toEqual([]);
    expect(checks.length).toBeGreaterThanOrEqual(20);
    expect({ rules: facts['managed_rules'], write: facts['managed_write'] }).toEqual({ rules: '1', write: 'refused' });
    const settingsVolumes = (await remote.listVolumes({ filters: JSON.stringify({ label: [`${TEST_LABEL}=${runId}`, `${LABEL_PREFIX}.role=settings`] }) })).Volumes ?? [];
    expect(settingsVolumes).toHaveLength(1);
  }, TIMEOUT);

  it('a gc that removes the tool-rules volume between two dispatches of one server: the next dispatch fills it again and holds its rules', async () => {
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve'], env: fx.env as Record<string, string>, cwd: fx.root, stderr: 'pipe' });
    const client = new Client({ name: 'e2e-remote-engine-gc', version: '0.0.0' });
    await client.connect(transport);
    const settingsFilter = (extra: Record<string, string[]> = {}) => JSON.stringify({ label: [`${TEST_LABEL}=${runId}`, `${LABEL_PREFIX}.role=settings`], ...extra });
    const rules = `echo "managed_rules=$(grep -c allowManagedPermissionRulesOnly ${MANAGED_SETTINGS_PATH} 2>/dev/null)"`;
    const dispatch = async (): Promise<DispatchResult> => {
      const answer = (await client.callTool({ name: 'dispatch', arguments: { agent, task: DIRECTIVE.bash(rules) } }, CallToolResultSchema, { timeout: TIMEOUT })) as CallToolResult;
      const first = answer.content[0];
      if (first?.type !== 'text') throw new Error(`unexpected content: ${JSON.stringify(answer)}`);
      return JSON.parse(first.text) as DispatchResult;
    };
    try {
      const first = await dispatch();
      expect(first.success, first.error).toBe(true);
      expect(parseProbe(first.result ?? '')['managed_rules']).toBe('1');
      // Once the dispatch container is gone, no container uses the volume: gc removes it, the server still thinks it filled.
      for (let i = 0; i < 50 && ((await remote.listVolumes({ filters: settingsFilter({ dangling: ['true'] }) })).Volumes ?? []).length === 0; i++) await new Promise((r) => setTimeout(r, 200));
      const gc = cli('gc', '--volumes');
      expect(gc.status, `${gc.stdout}${gc.stderr}`).toBe(0);
      expect(gc.stdout).toMatch(/1 managed-settings volume\(s\) no container uses/);
      expect((await remote.listVolumes({ filters: settingsFilter() })).Volumes ?? []).toEqual([]);
      const second = await dispatch();
      expect(second.success, second.error).toBe(true);
      expect(parseProbe(second.result ?? '')['managed_rules']).toBe('1');
      const again = (await remote.listVolumes({ filters: settingsFilter() })).Volumes ?? [];
      expect(again.map((v) => v.Labels?.[`${LABEL_PREFIX}.role`])).toEqual(['settings']);
    } finally {
      await client.close().catch(() => undefined);
    }
  }, TIMEOUT);

  it('removing an agent removes its session and gateway volumes on its engine', async () => {
    // A second agent on the same engine, its session volume made there as a dispatch would (labels and all).
    const twin = `twin-${runId}`;
    fx.agents({ [agent]: { directory: repo, policy: 'remote', engine: engineSpec }, [twin]: { directory: repo, policy: 'remote', engine: engineSpec } }, { cache: { enabled: false }, warm_pool: 0 });
    const twinLabels = { [LABELS.agent]: twin, [`${LABEL_PREFIX}.scope`]: volumeScope(fx.configDir, repo), [CONFIG_DIR_LABEL]: fx.configDir };
    await remote.createVolume({ Name: claudeStateVolume(twin, volumeScope(fx.configDir, repo)), Labels: { ...testLabels(runId), ...twinLabels } });
    const twinVolumes = async () => ((await remote.listVolumes({ filters: JSON.stringify({ label: [`${LABELS.agent}=${twin}`] }) })).Volumes ?? []).length;
    expect(await twinVolumes()).toBe(1);
    const removed = cli('remove', twin);
    expect(removed.status, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/Removed its 1 volume/);
    expect(await twinVolumes()).toBe(0);
  }, TIMEOUT);

  it('with the agent gone from the config, gc --volumes removes its volumes and its unused tool-rules volume on its engine; the local engine keeps its own', async () => {
    const runLabel = `${TEST_LABEL}=${runId}`;
    const remoteVolumes = async () => ((await remote.listVolumes({ filters: JSON.stringify({ label: [runLabel] }) })).Volumes ?? []).map((v) => ({ name: v.Name, labels: v.Labels ?? {} }));
    const before = await remoteVolumes();
    const settings = before.filter((v) => v.labels[`${LABEL_PREFIX}.role`] === 'settings');
    expect(settings).toHaveLength(1);
    expect(settings[0]!.labels).toMatchObject({ [CONFIG_DIR_LABEL]: fx.configDir, [TEST_LABEL]: runId, [`${LABEL_PREFIX}.settings-hash`]: expect.stringMatching(/^[0-9a-f]{32}$/) });
    const agentVolumes = before.filter((v) => v.labels[LABELS.agent] === agent).map((v) => v.name);
    expect(agentVolumes.length).toBeGreaterThanOrEqual(2); // its session volume and its gateway's socket volume
    // On the local engine: a settings volume a container still mounts (a dispatch in flight) must stay.
    await local.createVolume({ Name: `${LABEL_PREFIX}-settings-${runId}`, Labels: { ...testLabels(runId), [`${LABEL_PREFIX}.role`]: 'settings' } });
    await local.createContainer({ Image: BUSYBOX_IMAGE, Cmd: ['true'], Labels: testLabels(runId), HostConfig: { Mounts: [{ Type: 'volume', Source: `${LABEL_PREFIX}-settings-${runId}`, Target: '/s' }] } });
    const localVolumes = async () => ((await local.listVolumes({ filters: JSON.stringify({ label: [runLabel] }) })).Volumes ?? []).map((v) => v.Name).sort();
    const localBefore = await localVolumes();
    expect(localBefore).toContain(`${LABEL_PREFIX}-settings-${runId}`);

    // The agent leaves the config; settings.engine still names its engine.
    fx.agents({}, { engine: engineSpec, cache: { enabled: false }, warm_pool: 0 });
    const started = Date.now();
    const gc = cli('gc', '--volumes');
    const gcMs = Date.now() - started;
    expect(gc.status, `${gc.stdout}${gc.stderr}`).toBe(0);
    console.log(`[remote-engine] gc --volumes over both engines: ${gcMs} ms\n${gc.stdout}`);
    expect(gc.stdout).toContain(`Volumes on ${second!.host}:`);
    expect(gc.stdout).toContain("(the environment's engine):\nNo orphaned session or gateway volumes.");
    for (const name of [...agentVolumes, settings[0]!.name]) expect(gc.stdout).toContain(`  ${name}  `);
    expect(gc.stdout).toContain(`${second!.host}: Removed ${agentVolumes.length + 1} volume(s).`);
    // The second engine's API: nothing of the agent, no settings volume; the local engine as it was.
    expect(await remoteVolumes()).toEqual([]);
    expect(await localVolumes()).toEqual(localBefore);
  }, TIMEOUT);

  it('leaves nothing of the run on either engine', async () => {
    await cleanupTestResources(local, runId);
    await cleanupTestResources(remote, runId);
    const filters = JSON.stringify({ label: [`${TEST_LABEL}=${runId}`] });
    for (const docker of [local, remote]) {
      expect(await docker.listContainers({ all: true, filters })).toEqual([]);
      expect((await docker.listVolumes({ filters })).Volumes ?? []).toEqual([]);
      expect(await docker.listNetworks({ filters })).toEqual([]);
    }
    // The second engine held nothing else: no container, no volume, only its built-in networks.
    expect(await remote.listContainers({ all: true })).toEqual([]);
    expect((await remote.listVolumes()).Volumes ?? []).toEqual([]);
    expect((await remote.listNetworks()).map((n) => n.Name).sort()).toEqual(['bridge', 'host', 'none']);
  }, TIMEOUT);

  it("the second engine leaves the first engine's iptables rules alone; stopping it removes its directory and bridge", () => {
    const { dir, bridge, subnet } = second!;
    const stop = spawnSync('bash', [SCRIPT, 'stop', dir], { encoding: 'utf8', timeout: 60_000 });
    expect(stop.status, stop.stderr).toBe(0);
    second = undefined;
    expect(existsSync(dir)).toBe(false);
    expect(spawnSync('ip', ['link', 'show', bridge]).status).not.toBe(0);
    const rules = execFileSync('iptables-save', { encoding: 'utf8' });
    expect(rules).not.toContain(bridge);
    expect(rules).not.toContain(subnet);
    expect(docker0Before.length).toBeGreaterThan(0);
    expect(docker0During).toEqual(docker0Before);
    expect(docker0Rules()).toEqual(docker0Before);
  }, TIMEOUT);
});
