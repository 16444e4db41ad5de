/**
 * The egress gateway end to end: the real claude binary in the test agent image, behind the real gateway
 * container, driven by the scripted fake model. Network facts are probed from inside the agent container
 * (as Bash steps the model asks for), so they are what an agent could actually do.
 */
import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
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
});
