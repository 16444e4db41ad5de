/**
 * Load on the multi-user service: 20 concurrent HTTP clients (each its own MCP session; two users, alternating)
 * dispatch to 3 agents through the BUILT `agent-dispatch serve --http`, into the test agent image where the real
 * claude binary talks to the scripted fake model. Every call must be answered with its own marker, the one shared
 * budget (settings.max_concurrency 3) must hold on the engine — sampled every 100 ms, not taken from our counters —
 * and no container may be left, neither after the calls nor after SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { TokenStore, tokensPath } from '../../src/config/tokens.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { CLI, createBuiltFixture, openTestPolicy, type Fixture } from '../helpers/dispatch-fixture.js';
import { cleanupTestResources, dockerClient, skipDocker, TEST_LABEL, testRunId } from '../helpers/docker.js';
import { waitFor } from '../helpers/process.js';

const TIMEOUT = 300_000;
const CLIENTS = 20;
const USERS = ['alice', 'bob'];

describe.skipIf(skipDocker)('20 concurrent HTTP clients, 2 users, 3 agents, max_concurrency 3, real containers', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const agents = ['a', 'b', 'c'].map((s) => `load-${s}-${runId}`);
  let fx: Fixture;
  let serve: ChildProcess;
  let log = '';
  let url: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    fx = await createBuiltFixture(docker, runId);
    fx.policy('open-test', openTestPolicy());
    const repo = fx.repo('svc');
    // No warm pool and no cache: every container on the engine is then a dispatch, and every call runs one.
    fx.agents(Object.fromEntries(agents.map((a) => [a, { directory: repo, policy: 'open-test', users: USERS }])), { max_concurrency: 3, cache: { enabled: false }, warm_pool: 0 });
    serve = spawn(process.execPath, [CLI, 'serve', '--http', '--listen', '127.0.0.1:0'], { env: fx.env, cwd: fx.root, stdio: ['ignore', 'ignore', 'pipe'] });
    serve.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    await waitFor('serve --http to listen', async () => /at (http:\/\/127\.0\.0\.1:\d+\/mcp)/.test(log), 60_000);
    url = /at (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(log)![1]!;
  }, TIMEOUT);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    if (serve && serve.exitCode === null) serve.kill('SIGKILL');
    await cleanupTestResources(docker, runId);
    await fx?.close();
  }, TIMEOUT);

  /** Dispatch containers of this test run running now, as the engine sees them. */
  async function running(): Promise<number> {
    return (await docker.listContainers({ filters: { label: [`${TEST_LABEL}=${runId}`, LABELS.job], status: ['running'] } })).length;
  }

  async function leftovers(): Promise<number> {
    return (await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`] } })).length;
  }

  it('every call is answered with its own result; never more than 3 dispatch containers; none left', async () => {
    const store = new TokenStore(tokensPath(fx.env));
    const tokens = await Promise.all(USERS.map(async (user) => (await store.create(user)).token));
    for (let i = 0; i < CLIENTS; i++) {
      const client = new Client({ name: `load-${i}`, version: '0.0.0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${tokens[i % USERS.length]}` } } }));
      clients.push(client);
    }
    let peak = 0;
    let samples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await running());
        samples++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const t0 = Date.now();
    const answers = await Promise.all(
      clients.map(async (client, i) => {
        const result = (await client.callTool(
          { name: 'dispatch', arguments: { agent: agents[i % 3], task: `${DIRECTIVE.sleep(1000)} ${DIRECTIVE.reply(`marker-${i}-${runId}`)}`, caller: `client-${i}` } },
          CallToolResultSchema,
          { timeout: TIMEOUT },
        )) as CallToolResult;
        const first = result.content[0];
        return { isError: result.isError === true, json: first?.type === 'text' ? JSON.parse(first.text) : undefined };
      }),
    );
    const wallMs = Date.now() - t0;
    sampling = false;
    await sampler;
    answers.forEach((answer, i) => {
      expect(answer.isError, `${JSON.stringify(answer.json)}\n${log}`).toBe(false);
      expect(answer.json).toMatchObject({ agent: agents[i % 3], success: true, result: expect.stringContaining(`marker-${i}-${runId}`) });
    });
    expect(peak).toBeLessThanOrEqual(3);
    expect(peak).toBeGreaterThanOrEqual(2);
    expect(await leftovers()).toBe(0);
    process.stderr.write(`[http-load] ${CLIENTS} clients (${USERS.length} users, 3 agents): all answered in ${wallMs} ms; peak ${peak} running dispatch containers over ${samples} samples\n`);
  }, TIMEOUT);

  it('SIGTERM: the service exits 143 and leaves no container', async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
    const exited = new Promise<number | null>((resolve) => serve.once('exit', (code) => resolve(code)));
    serve.kill('SIGTERM');
    expect(await exited).toBe(143);
    expect(await leftovers()).toBe(0);
  }, 60_000);
});
