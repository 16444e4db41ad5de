/**
 * Container lifetime across the server's own lifetime: a SIGTERM'd server removes the containers it still
 * runs before it exits, and a server killed outright leaves an orphan that the next server reaps at start.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { CLI, createBuiltFixture, openTestPolicy, type Fixture } from '../helpers/dispatch-fixture.js';
import { cleanupTestResources, dockerClient, skipDocker, TEST_LABEL, testRunId } from '../helpers/docker.js';
import { isAlive, waitFor } from '../helpers/process.js';

const TIMEOUT = 90_000;

describe.skipIf(skipDocker)('dispatch containers follow the server’s lifetime', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const agent = `life-${runId}`;
  let fx: Fixture;

  beforeAll(async () => {
    fx = await createBuiltFixture(docker, runId);
    fx.policy('open-test', openTestPolicy());
    fx.agents({ [agent]: { directory: fx.repo('svc'), policy: 'open-test' } });
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

  async function dispatchContainers(): Promise<string[]> {
    const list = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`, `${LABELS.agent}=${agent}`] } });
    return list.map((c) => c.Id);
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

  it('SIGKILL: the orphan is reaped by the next server at start', async () => {
    const first = await startServer();
    startLongDispatch(first.client);
    await waitFor('the dispatch container', async () => (await dispatchContainers()).length === 1);
    const pid = first.transport.pid!;
    process.kill(pid, 'SIGKILL');
    await waitFor('the server to die', async () => !isAlive(pid));
    expect(await dispatchContainers()).toHaveLength(1);
    const second = await startServer();
    await waitFor('the orphan to be reaped', async () => (await dispatchContainers()).length === 0);
    await second.client.close();
    await first.client.close().catch(() => undefined);
  }, TIMEOUT);
});
