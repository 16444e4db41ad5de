/**
 * The egress gateway end to end: the real claude binary in the test agent image, behind the real gateway
 * container, driven by the scripted fake model. Network facts are probed from inside the agent container
 * (as Bash steps the model asks for), so they are what an agent could actually do.
 */
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { PassThrough } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, requireConfig } from '../../src/config/load.js';
import { inspectAgentView } from '../../src/core/views.js';
import { AUDIT_FILE, type AuditRecord } from '../../src/dispatch/audit.js';
import { DispatchService } from '../../src/dispatch/service.js';
import type { DispatchResult } from '../../src/dispatch/types.js';
import { GATEWAY_ROLE_LABEL } from '../../src/sandbox/gateway-container.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { networkProbeScript, parseProbe } from '../../src/selftest/probe.js';
import { createBuiltFixture, gatewayTestPolicy, type Fixture } from '../helpers/dispatch-fixture.js';
import { cleanupTestResources, dockerClient, skipDocker, TEST_LABEL, testRunId } from '../helpers/docker.js';

const TIMEOUT = 120_000;

describe.skipIf(skipDocker)('egress gateway with the real claude binary', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const agent = `gw-${runId}`;
  const other = `gw2-${runId}`;
  let fx: Fixture;
  let service: DispatchService;
  let host: string;
  const services: Server[] = [];
  let first: { host: string; port: number; body: string };
  let second: { host: string; port: number; body: string };
  let hostService: { host: string; port: number };

  beforeAll(async () => {
    fx = await createBuiltFixture(docker, runId);
    host = new URL(fx.model.url).hostname;
    first = { host, port: await serve(host, `first-${runId}`), body: `first-${runId}` };
    second = { host, port: await serve(host, `second-${runId}`), body: `second-${runId}` };
    hostService = { host, port: await serve('0.0.0.0', 'host-service') };
    const repo = fx.repo('project');
    fx.policy('gw-first', gatewayTestPolicy([`${host}:${first.port}`]));
    fx.policy('gw-second', gatewayTestPolicy([`${host}:${second.port}`]));
    fx.agents({ [agent]: { directory: repo, policy: 'gw-first' }, [other]: { directory: repo, policy: 'gw-second' } });
    service = new DispatchService(fx.env);
  }, TIMEOUT);

  afterAll(async () => {
    await service?.shutdown();
    await Promise.all(services.map((s) => new Promise((resolve) => s.close(resolve))));
    await cleanupTestResources(docker, runId);
    await fx?.close();
  }, TIMEOUT);

  function serve(address: string, body: string): Promise<number> {
    const server = createServer((_req, res) => res.end(body));
    services.push(server);
    return new Promise((resolve) => server.listen(0, address, () => resolve((server.address() as AddressInfo).port)));
  }

  const config = () => requireConfig(loadConfig(fx.configPath));
  const dispatch = (name: string, task: string): Promise<DispatchResult> => service.dispatch(config(), { agent: name, task, caller: 'egress-test', goal: 'probe the network' });
  const probe = (allowed: typeof first, refused: { host: string; port: number } = hostService) =>
    DIRECTIVE.bash(networkProbeScript({ allowed, hostService: refused, secret: fx.apiKey }));

  async function containers(filters: string[]): Promise<number> {
    return (await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`, ...filters] } })).length;
  }
  const gatewayOf = async (name: string) =>
    (await docker.listContainers({ all: true, filters: { label: [`${LABELS.agent}=${name}`, `${GATEWAY_ROLE_LABEL}=gateway`] } }))[0];
  const audit = (): AuditRecord[] =>
    readFileSync(join(fx.configDir, AUDIT_FILE), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditRecord);

  it('the key reaches the API from the gateway and is nowhere in the container; only the allowlist is reachable', async () => {
    const before = fx.model.requests.length;
    const result = await dispatch(agent, probe(first));
    expect(result, JSON.stringify(result)).toMatchObject({ success: true });
    const facts = parseProbe(result.result);
    const fromGateway = fx.model.requests.slice(before);
    expect(fromGateway.length).toBeGreaterThan(0);
    expect(fromGateway.every((r) => r.apiKey === fx.apiKey)).toBe(true);
    expect(facts).toMatchObject({ secret_in_env: '0', secret_in_proc: '0', secret_in_home: '0', interfaces: 'lo' });
    expect(facts['dns']).toMatch(/^failed/);
    expect(['none', 'lo']).toContain(facts['ipv6']);
    expect(facts['allowed_via_proxy']).toBe('reached');
    expect(facts['denied_via_proxy']).toBe('403:policy');
    expect(facts['direct_allowed']).toMatch(/^failed/);
    expect(facts['host_service']).toMatch(/^failed/);
    expect(result.egress).toMatchObject({ denied: 1, denied_hosts: [`${hostService.host}:${hostService.port}`] });
    expect(result.egress!.allowed).toBeGreaterThanOrEqual(2);
    expect(await containers([LABELS.job])).toBe(0);
  }, TIMEOUT);

  it('writes one audit record per dispatch (0600) with the decisions, and no secret value; inspect_agent shows them', async () => {
    const records = audit().filter((r) => r.agent === agent);
    expect(records).toHaveLength(1);
    const record = records[0]!;
    expect(statSync(join(fx.configDir, AUDIT_FILE)).mode & 0o777).toBe(0o600);
    expect(record).toMatchObject({ caller: 'egress-test', goal: 'probe the network', network: 'gateway', success: true, exit_code: 0, policy: { name: 'gw-first' } });
    expect(record.policy!.hash).toMatch(/^[0-9a-f]{8,}$/);
    expect(record.image!.id).toMatch(/^sha256:/);
    expect(record.env_names).toContain('ANTHROPIC_API_KEY');
    expect(record.mounts!.some((m) => m.mode === 'ro')).toBe(true);
    expect(record.cost_usd).toBeGreaterThan(0);
    const decisions = record.egress!;
    expect(decisions.some((d) => d.kind === 'api' && d.allowed && d.path?.startsWith('/v1/messages'))).toBe(true);
    expect(decisions.some((d) => d.host === first.host && d.port === first.port && d.allowed && d.bytesIn > 0)).toBe(true);
    expect(decisions.some((d) => d.port === hostService.port && !d.allowed && /network.allow/.test(d.reason ?? ''))).toBe(true);
    const text = readFileSync(join(fx.configDir, AUDIT_FILE), 'utf8');
    expect(text).not.toContain(fx.apiKey);
    expect(text).not.toContain(fx.secret);
    const view = inspectAgentView(agent, config().agents[agent]!, 0, fx.configDir) as { last_dispatch?: { egress_decisions?: { port: number; allowed: boolean }[] } };
    expect(view.last_dispatch?.egress_decisions?.some((d) => d.port === hostService.port && !d.allowed)).toBe(true);
  }, TIMEOUT);

  it('two agents with different allowlists, in parallel, each reach only their own', async () => {
    const [a, b] = await Promise.all([dispatch(agent, probe(first, second)), dispatch(other, probe(second, first))]);
    for (const result of [a, b]) {
      expect(result, JSON.stringify(result)).toMatchObject({ success: true });
      const facts = parseProbe(result.result);
      expect(facts['allowed_via_proxy']).toBe('reached');
      expect(facts['denied_via_proxy']).toBe('403:policy');
    }
    expect(a.egress!.denied_hosts).toEqual([`${host}:${second.port}`]);
    expect(b.egress!.denied_hosts).toEqual([`${host}:${first.port}`]);
  }, TIMEOUT);

  it('a stopped gateway fails the next dispatch closed (sandbox error, no agent container); the one after starts a new gateway', async () => {
    const gateway = await gatewayOf(agent);
    expect(gateway).toBeDefined();
    await docker.getContainer(gateway!.Id).kill();
    const requests = fx.model.requests.length;
    const result = await dispatch(agent, DIRECTIVE.reply('must not run'));
    expect(result).toMatchObject({ success: false, error_type: 'sandbox' });
    expect(result.error).toMatch(/egress gateway/);
    expect(result.hint).toBeTruthy();
    expect(fx.model.requests.length).toBe(requests);
    expect(await containers([LABELS.job])).toBe(0);
    const again = await dispatch(agent, DIRECTIVE.reply('back'));
    expect(again).toMatchObject({ success: true, result: 'back' });
    expect((await gatewayOf(agent))!.Id).not.toBe(gateway!.Id);
  }, TIMEOUT);

  it('a broken canary (the socket removed from under the gateway) fails the next dispatch closed', async () => {
    const gateway = (await gatewayOf(agent))!;
    const exec = await docker.getContainer(gateway.Id).exec({ Cmd: ['node', '-e', "for (const f of require('fs').readdirSync('/run/agent-dispatch')) require('fs').unlinkSync('/run/agent-dispatch/' + f)"], User: '10001:10001' });
    await exec.start({ Detach: true });
    for (let i = 0; i < 50 && (await exec.inspect()).Running; i++) await new Promise((r) => setTimeout(r, 100));
    const requests = fx.model.requests.length;
    const result = await dispatch(agent, DIRECTIVE.reply('must not run'));
    expect(result).toMatchObject({ success: false, error_type: 'sandbox' });
    expect(result.error).toMatch(/canary/);
    expect(fx.model.requests.length).toBe(requests);
    expect(await containers([LABELS.job])).toBe(0);
  }, TIMEOUT);

  it('an audit record for every dispatch, failures included', () => {
    const records = audit();
    // first probe, the parallel pair, the stopped gateway, the recovery, the broken canary
    expect(records).toHaveLength(6);
    expect(records.filter((r) => r.error_type === 'sandbox')).toHaveLength(2);
  });

  it('removes its gateways at shutdown', async () => {
    await service.shutdown();
    expect(await containers([GATEWAY_ROLE_LABEL])).toBe(0);
    service = new DispatchService(fx.env);
  }, TIMEOUT);

  it('a flood of 5 000 refused 8 KB requests from one dispatch: the gateway stays under its memory limit and alive, a concurrent dispatch keeps its decisions', async () => {
    const started = await dispatch(agent, DIRECTIVE.reply('gateway up'));
    expect(started).toMatchObject({ success: true });
    const gateway = (await gatewayOf(agent))!;
    const floodTask = DIRECTIVE.bash(`node -e '${FLOOD_SCRIPT}'`);
    const seen = fx.model.requests.length;
    let floodEnded = 0;
    const flooding = dispatch(agent, floodTask).finally(() => (floodEnded = Date.now()));
    // the second dispatch opens its lease (ping, canary, register) once the flood is under way, and runs beside it
    const signalled = (): boolean => fx.model.requests.slice(seen).some((r) => r.path === '/v1/flood-started');
    for (let i = 0; i < 600 && !signalled() && floodEnded === 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(signalled()).toBe(true);
    const quietStarted = Date.now();
    const [flooded, quiet] = await Promise.all([flooding, dispatch(agent, probe(first))]);
    expect(quietStarted).toBeLessThan(floodEnded);
    expect(flooded, JSON.stringify(flooded)).toMatchObject({ success: true });
    expect(flooded.result).toMatch(/FLOOD \{"414":5000\}/);
    expect(quiet, JSON.stringify(quiet)).toMatchObject({ success: true });
    expect(parseProbe(quiet.result)['allowed_via_proxy']).toBe('reached');
    expect(quiet.egress).toMatchObject({ denied: 1, denied_hosts: [`${hostService.host}:${hostService.port}`] });
    expect(flooded.egress).toMatchObject({ denied: 5_000 });

    const lines = readFileSync(join(fx.configDir, AUDIT_FILE), 'utf8').trim().split('\n');
    const [floodLine, quietLine] = [flooded, quiet].map((r) => lines.find((l) => l.includes(`"session_id":${JSON.stringify(r.session_id)}`))!);
    const floodRecord = JSON.parse(floodLine!) as AuditRecord;
    expect(floodRecord.egress_lost).toBeUndefined();
    expect(floodRecord.egress!.filter((d) => d.status === 414).reduce((n, d) => n + (d.count ?? 1), 0)).toBe(5_000);
    expect(floodLine!.length).toBeLessThan(64 * 1024);
    const quietRecord = JSON.parse(quietLine!) as AuditRecord;
    expect(quietRecord.egress_lost).toBeUndefined();
    expect(quietRecord.egress!.some((d) => d.kind === 'api' && d.allowed)).toBe(true);

    // the same gateway, never declared dead, serves the next dispatch
    expect((await gatewayOf(agent))!.Id).toBe(gateway.Id);
    expect(await dispatch(agent, DIRECTIVE.reply('after the flood'))).toMatchObject({ success: true, result: 'after the flood' });
    expect((await gatewayOf(agent))!.Id).toBe(gateway.Id);
    const peak = await memoryPeak(gateway.Id);
    const limit = (await docker.getContainer(gateway.Id).inspect()).HostConfig.Memory!;
    const took = /FLOOD \S+ in (\d+) ms/.exec(flooded.result)?.[1];
    process.stderr.write(`[egress-gateway] flood of 5000 in ${took} ms: gateway memory peak ${(peak / 2 ** 20).toFixed(1)} MiB of ${limit / 2 ** 20} MiB; flood audit record ${floodLine!.length} bytes\n`);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThan(limit / 2);
  }, 240_000);

  it('a smuggled request (GET /v1 with a chunked body holding a second request) from inside the container is refused; the API never sees it', async () => {
    const before = fx.model.requests.length;
    const result = await dispatch(agent, DIRECTIVE.bash(`node -e '${SMUGGLE_SCRIPT}'`));
    expect(result, JSON.stringify(result)).toMatchObject({ success: true });
    expect(result.result).toMatch(/SMUGGLE 400 request closed/);
    expect(fx.model.requests.slice(before).some((r) => /smuggled|\/v1\/models/.test(r.path))).toBe(false);
    const record = audit().find((r) => r.session_id === result.session_id)!;
    expect(record.egress).toContainEqual(expect.objectContaining({ kind: 'api', method: 'GET', path: '/v1/models', allowed: false, status: 400 }));
    expect(record.egress!.some((d) => d.path?.includes('smuggled'))).toBe(false);
  }, TIMEOUT);

  /** The most memory the container's cgroup has used (cgroup v1 max_usage, or v2 memory.peak), read inside it. */
  async function memoryPeak(id: string): Promise<number> {
    const exec = await docker.getContainer(id).exec({
      Cmd: ['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.peak'],
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({ hijack: true, stdin: false });
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    docker.modem.demuxStream(stream, out, new PassThrough());
    await new Promise((resolve) => stream.on('end', resolve));
    return Number(text.trim());
  }
});

/**
 * Run inside the agent container (as `node -e '...'`, so no single quote): 5 000 requests with 8 KB targets through
 * the bridge, 50 at a time, half to the API, half absolute-form to an unlisted host; prints the status counts.
 */
const FLOOD_SCRIPT = String.raw`
const net = require("net");
const t = "a".repeat(8192);
const codes = {};
const started = Date.now();
const one = (i) => new Promise((done) => {
  const s = net.connect(3128, "127.0.0.1", () => s.write(i % 2 ? "GET /v1/" + t + " HTTP/1.1\r\nHost: x\r\n\r\n" : "GET http://denied.example/" + t + " HTTP/1.1\r\nHost: denied.example\r\n\r\n"));
  let got = "";
  s.on("data", (d) => (got += d));
  s.on("close", () => { const c = got.slice(9, 12) || "none"; codes[c] = (codes[c] || 0) + 1; done(); });
  s.on("error", () => undefined);
});
(async () => {
  await new Promise((r) => require("http").get("http://127.0.0.1:3128/v1/flood-started", (res) => { res.resume(); res.on("end", r); }).on("error", r));
  for (let i = 0; i < 5000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => one(i + j)));
  console.log("FLOOD " + JSON.stringify(codes) + " in " + (Date.now() - started) + " ms");
})();
`.trim().replace(/\n/g, ' ');

/** Inside the agent container: the smuggling payload on a raw socket through the bridge; prints the status, the refusal kind and whether the gateway closed. */
const SMUGGLE_SCRIPT = String.raw`
const inner = "GET /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
const s = require("net").connect(3128, "127.0.0.1", () => s.write("GET /v1/models HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + inner.length.toString(16) + "\r\n" + inner + "\r\n0\r\n\r\n"));
let got = "";
const timer = setTimeout(() => { console.log("SMUGGLE " + got.slice(9, 12) + " open"); process.exit(0); }, 5000);
s.on("data", (d) => (got += d));
s.on("close", () => { clearTimeout(timer); const kind = /x-agent-dispatch-refusal: (\w+)/i.exec(got); console.log("SMUGGLE " + got.slice(9, 12) + " " + (kind ? kind[1] : "none") + " closed"); });
s.on("error", () => undefined);
`.trim().replace(/\n/g, ' ');
