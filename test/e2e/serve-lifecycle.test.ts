/**
 * Container lifetime across the server's own lifetime: a SIGTERM'd server removes the containers it still
 * runs (and its pre-started ones) before it exits, and a server killed outright leaves nothing: each agent
 * container's init sees the attach connection go and ends it, the gateway exits on its closed stdin, and the
 * engine removes them all (AutoRemove), without waiting for the next server start.
 */
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { GATEWAY_ROLE_LABEL } from '../../src/sandbox/gateway-container.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { CLI, createBuiltFixture, gatewayTestPolicy, openTestPolicy, type Fixture } from '../helpers/dispatch-fixture.js';
import { cleanupTestResources, dockerClient, skipDocker, TEST_LABEL, testRunId } from '../helpers/docker.js';
import { isAlive, waitFor } from '../helpers/process.js';

const TIMEOUT = 90_000;

describe.skipIf(skipDocker)('dispatch containers follow the server’s lifetime', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const agent = `life-${runId}`;
  const warm = `life-warm-${runId}`;
  let fx: Fixture;
  let agents: Record<string, Record<string, unknown>>;

  beforeAll(async () => {
    fx = await createBuiltFixture(docker, runId);
    fx.policy('open-test', openTestPolicy());
    fx.policy('gateway-test', gatewayTestPolicy());
    agents = { [agent]: { directory: fx.repo('svc'), policy: 'open-test' }, [warm]: { directory: fx.repo('warm'), policy: 'gateway-test' } };
    fx.agents(agents);
  }, TIMEOUT);

  afterAll(async () => {
    await cleanupTestResources(docker, runId);
    await fx?.close();
  }, TIMEOUT);

  async function startServer(): Promise<{ client: Client; transport: StdioClientTransport }> {
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve'], env: fx.env as Record<string, string>, cwd: fx.root, stderr: 'pipe' });
    const client = new Client({ name: 'lifecycle', version: '0.0.0' });
    await client.connect(transport);
    return { client, transport };
  }

  /** Containers running a dispatch the server started cold (a pre-started one carries no job label). */
  async function dispatchContainers(): Promise<string[]> {
    const list = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`, `${LABELS.agent}=${agent}`, LABELS.job] } });
    return list.map((c) => c.Id);
  }

  /** Everything of this file on the engine: dispatch, pre-started and gateway containers. */
  async function allContainers(): Promise<Docker.ContainerInfo[]> {
    return docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`] } });
  }


  function startLongDispatch(client: Client): void {
    client
      .callTool({ name: 'dispatch', arguments: { agent, task: DIRECTIVE.bash('sleep 120'), timeout_seconds: 300 } }, CallToolResultSchema, { timeout: TIMEOUT })
      .catch(() => undefined);
  }

  it('a call the client cancels kills its container; the server keeps serving', async () => {
    const { client } = await startServer();
    const controller = new AbortController();
    const call = client
      .callTool({ name: 'dispatch', arguments: { agent, task: DIRECTIVE.bash('sleep 120'), timeout_seconds: 300 } }, CallToolResultSchema, { timeout: TIMEOUT, signal: controller.signal })
      .catch((error: Error) => error);
    await waitFor('the dispatch container', async () => (await dispatchContainers()).length === 1);
    controller.abort();
    expect(await call).toBeInstanceOf(Error);
    await waitFor('the cancelled container to be removed', async () => (await dispatchContainers()).length === 0, 15_000);
    const after = await client.callTool({ name: 'dispatch', arguments: { agent, task: DIRECTIVE.reply('still serving') } }, CallToolResultSchema, { timeout: TIMEOUT });
    expect(JSON.stringify(after.content)).toContain('still serving');
    await client.close();
  }, TIMEOUT);

  it('SIGTERM: the server removes its running containers before it exits', async () => {
    const { client, transport } = await startServer();
    startLongDispatch(client);
    await waitFor('the dispatch container', async () => (await dispatchContainers()).length === 1);
    const pid = transport.pid!;
    process.kill(pid, 'SIGTERM');
    await waitFor('the server to exit', async () => !isAlive(pid));
    expect(await dispatchContainers()).toEqual([]);
    expect(await allContainers()).toEqual([]);
    await client.close().catch(() => undefined);
  }, TIMEOUT);

  it('SIGTERM while a container is still being created: the server exits and nothing is left', async () => {
    const { client, transport } = await startServer();
    startLongDispatch(client);
    await new Promise((r) => setTimeout(r, 150));
    const pid = transport.pid!;
    process.kill(pid, 'SIGTERM');
    await waitFor('the server to exit', async () => !isAlive(pid), 15_000);
    await waitFor('no dispatch container', async () => (await dispatchContainers()).length === 0, 10_000);
    await client.close().catch(() => undefined);
  }, TIMEOUT);

  it('SIGKILL with a full warm pool and a dispatch running: every container is gone within 10 s, with no server restart', async () => {
    fx.agents(agents, { warm_pool: 2 });
    const { client, transport } = await startServer();
    const filled = await client.callTool({ name: 'dispatch', arguments: { agent: warm, task: DIRECTIVE.reply('fill the pool') } }, CallToolResultSchema, { timeout: TIMEOUT });
    expect(JSON.stringify(filled.content)).toContain('fill the pool');
    const prestarted = async () => (await allContainers()).filter((c) => c.Labels[LABELS.warm] !== undefined && c.Labels[LABELS.agent] === warm);
    // Full: two pre-started sandboxes running, and no third one being started after a short while.
    await waitFor('two pre-started sandboxes', async () => (await prestarted()).filter((c) => c.State === 'running').length === 2, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await prestarted()).toHaveLength(2);
    const requests = fx.model.requests.length;
    client
      .callTool({ name: 'dispatch', arguments: { agent: warm, task: DIRECTIVE.bash('sleep 120'), timeout_seconds: 300 } }, CallToolResultSchema, { timeout: TIMEOUT })
      .catch(() => undefined);
    await waitFor('the dispatch to reach the model', async () => fx.model.requests.length > requests);
    // One pre-started sandbox runs the dispatch, one waits idle (a refill may be starting), one gateway serves them.
    const before = await allContainers();
    expect(before.filter((c) => c.Labels[LABELS.warm] !== undefined && c.Labels[LABELS.agent] === warm).length).toBeGreaterThanOrEqual(2);
    expect(before.filter((c) => c.Labels[LABELS.job] !== undefined)).toEqual([]);
    expect(before.filter((c) => c.Labels[GATEWAY_ROLE_LABEL] === 'gateway')).toHaveLength(1);
    const pid = transport.pid!;
    process.kill(pid, 'SIGKILL');
    await waitFor('the server to die', async () => !isAlive(pid));
    const killedAt = Date.now();
    await waitFor('no container of the killed server', async () => (await allContainers()).length === 0, 10_000);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    await client.close().catch(() => undefined);
    fx.agents(agents);
  }, TIMEOUT);
});
