/**
 * Parallel fan-out, async jobs, cancel and crash recovery as a real MCP client sees them: the SDK Client over
 * stdio against the BUILT `agent-dispatch serve`, dispatching into the test agent image where the real claude
 * binary talks to the scripted fake model. Concurrency is observed on the engine, not taken from our counters.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { CLI, createBuiltFixture, openTestPolicy, type Fixture } from '../helpers/dispatch-fixture.js';
import { cleanupTestResources, dockerClient, skipDocker, TEST_LABEL, testRunId } from '../helpers/docker.js';
import { isAlive, waitFor } from '../helpers/process.js';

const TIMEOUT = 180_000;

describe.skipIf(skipDocker)('parallel, async jobs and cancel over stdio with the real claude binary', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const agents = ['a', 'b', 'c'].map((s) => `jobs-${s}-${runId}`);
  let fx: Fixture;
  let server: { client: Client; transport: StdioClientTransport; stderr: () => string };

  beforeAll(async () => {
    fx = await createBuiltFixture(docker, runId);
    fx.policy('open-test', openTestPolicy());
    const repo = fx.repo('svc');
    // No warm pool: every container on the engine is then a dispatch, found by its job label.
    fx.agents(Object.fromEntries(agents.map((a) => [a, { directory: repo, policy: 'open-test' }])), { max_concurrency: 3, cache: { enabled: false }, warm_pool: 0 });
    server = await startServer();
  }, TIMEOUT);

  afterAll(async () => {
    await server?.client.close().catch(() => undefined);
    await cleanupTestResources(docker, runId);
    await fx?.close();
  }, TIMEOUT);

  async function startServer() {
    let stderr = '';
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve'], env: fx.env as Record<string, string>, cwd: fx.root, stderr: 'pipe' });
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const client = new Client({ name: 'e2e-jobs', version: '0.0.0' });
    await client.connect(transport);
    return { client, transport, stderr: () => stderr };
  }

  async function call(name: string, args: Record<string, unknown>, client: Client = server.client) {
    const result = (await client.callTool({ name, arguments: args }, CallToolResultSchema, { timeout: TIMEOUT })) as CallToolResult;
    const first = result.content[0];
    if (first?.type !== 'text') throw new Error(`unexpected content: ${JSON.stringify(result)}`);
    return { isError: result.isError === true, json: JSON.parse(first.text) as any };
  }

  /** Dispatch containers of this test run that are running now, as the engine sees them. */
  async function running(job?: string): Promise<number> {
    const label = [`${TEST_LABEL}=${runId}`, job ? `${LABELS.job}=${job}` : LABELS.job];
    return (await docker.listContainers({ filters: { label, status: ['running'] } })).length;
  }

  async function existing(job: string): Promise<number> {
    return (await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`, `${LABELS.job}=${job}`] } })).length;
  }

  it('10 parallel dispatches across 3 agents never exceed max_concurrency 3 on the engine; the aggregate agent receives every result', async () => {
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await running());
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const dispatches = Array.from({ length: 10 }, (_, i) => ({
      agent: agents[i % 3],
      task: `${DIRECTIVE.sleep(1500)} ${DIRECTIVE.reply(`marker-${i}-${runId} [[recall]]`)}`,
    }));
    const answer = await call('dispatch_parallel', { dispatches: JSON.stringify(dispatches), aggregate: agents[0] });
    sampling = false;
    await sampler;
    expect(answer.isError, server.stderr()).toBe(false);
    const items = answer.json.individual_results as { success: boolean; result: string }[];
    expect(items).toHaveLength(10);
    items.forEach((item, i) => expect(item).toMatchObject({ success: true, result: expect.stringContaining(`marker-${i}-${runId}`) }));
    expect(peak).toBeLessThanOrEqual(3);
    expect(peak).toBeGreaterThanOrEqual(2);
    expect(answer.json.aggregated).toMatchObject({ agent: agents[0], success: true });
    for (let i = 0; i < 10; i++) expect(answer.json.aggregated.result).toContain(`marker-${i}-${runId}`);
    expect(await running()).toBe(0);
  }, TIMEOUT);

  it('dispatch_async → dispatch_status shows progress → dispatch_wait returns the result', async () => {
    const task = `${DIRECTIVE.bash('echo step-one')} ${DIRECTIVE.sleep(2500)} ${DIRECTIVE.reply(`async done ${runId}`)}`;
    const started = await call('dispatch_async', { agent: agents[1], task });
    expect(started.json).toMatchObject({ status: 'pending', agent: agents[1] });
    const id = started.json.job_id as string;
    await waitFor('progress in dispatch_status', async () => {
      const status = (await call('dispatch_status', { job_id: id })).json;
      return status.status === 'running' && (status.progress ?? []).some((l: string) => l.includes('Bash'));
    });
    const done = (await call('dispatch_wait', { job_id: id, timeout_seconds: 120 })).json;
    expect(done).toMatchObject({ id, status: 'done', result: { success: true, result: expect.stringContaining(`async done ${runId}`) } });
    expect(await existing(id)).toBe(0);
  }, TIMEOUT);

  it('dispatch_cancel of a running job removes its container within 2 s and the job reads cancelled', async () => {
    const { job_id: id } = (await call('dispatch_async', { agent: agents[2], task: DIRECTIVE.bash('sleep 120') })).json;
    await waitFor('the job container to run', async () => (await running(id)) === 1, 60_000);
    const t0 = Date.now();
    const cancelled = (await call('dispatch_cancel', { job_id: id })).json;
    expect(cancelled).toMatchObject({ job_id: id, outcome: 'cancelled_running', status: 'cancelled' });
    await waitFor('the container to be gone', async () => (await existing(id)) === 0, 2000);
    expect(Date.now() - t0).toBeLessThan(2000);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await call('dispatch_status', { job_id: id })).json).toMatchObject({ status: 'cancelled' });
  }, TIMEOUT);

  it('`agent-dispatch cancel ID` from the CLI kills a job the server started', async () => {
    const { job_id: id } = (await call('dispatch_async', { agent: agents[0], task: DIRECTIVE.bash('sleep 120') })).json;
    await waitFor('the job container to run', async () => (await running(id)) === 1, 60_000);
    const t0 = Date.now();
    const cli = spawnSync(process.execPath, [CLI, 'cancel', id], { env: fx.env, encoding: 'utf8', timeout: 30_000 });
    expect(cli.status, cli.stderr).toBe(0);
    await waitFor('the container to be gone', async () => (await existing(id)) === 0, 2000);
    expect(Date.now() - t0).toBeLessThan(4000);
    await new Promise((r) => setTimeout(r, 1500));
    expect((await call('dispatch_status', { job_id: id })).json).toMatchObject({ status: 'cancelled' });
  }, TIMEOUT);

  it('SIGKILL of the server during an async job: after a restart the job reads failed with a reason and none of its containers remain', async () => {
    const { job_id: id } = (await call('dispatch_async', { agent: agents[1], task: DIRECTIVE.bash('sleep 120') })).json;
    await waitFor('the job container to run', async () => (await running(id)) === 1, 60_000);
    const pid = server.transport.pid!;
    process.kill(pid, 'SIGKILL');
    await waitFor('the server to die', async () => !isAlive(pid));
    await server.client.close().catch(() => undefined);
    server = await startServer();
    await waitFor('the restarted server to fail the job', async () => (await call('dispatch_status', { job_id: id })).json.status === 'failed', 30_000);
    const job = (await call('dispatch_status', { job_id: id })).json;
    expect(job.error).toMatch(/stopped while it was running \(crashed or killed\)/);
    await waitFor('its containers to be removed', async () => (await existing(id)) === 0, 30_000);
  }, TIMEOUT);
});
