/**
 * Two users with real tokens against the BUILT `agent-dispatch serve --http`, over real HTTP, dispatching into the
 * test agent image (the real claude binary talks to the scripted fake model): each sees only their own agents and
 * jobs; alice cannot read, wait on, cancel or fetch bob's job (each answers exactly like an id that does not
 * exist, and bob's container keeps running on the engine); neither can change an agent; the audit record names
 * the user. The same rules with a fake sandbox and many cases: test/unit/access-mcp.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { CallToolResultSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { TokenStore, tokensPath } from '../../src/config/tokens.js';
import { CLAUDE_SESSIONS_DIR } from '../../src/policy/layout.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { CLI, createBuiltFixture, openTestPolicy, type Fixture } from '../helpers/dispatch-fixture.js';
import { cleanupTestResources, dockerClient, skipDocker, TEST_LABEL, testRunId } from '../helpers/docker.js';
import { waitFor } from '../helpers/process.js';

const TIMEOUT = 180_000;
const MISSING = 'e'.repeat(32);

interface Answer {
  isError: boolean;
  text: string;
  json: any;
}

describe.skipIf(skipDocker)('two users over HTTP: their own agents and jobs only, no config changes', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const aliceAgent = `alice-svc-${runId}`;
  const bobAgent = `bob-svc-${runId}`;
  const sharedAgent = `shared-svc-${runId}`;
  let fx: Fixture;
  let serve: ChildProcess;
  let log = '';
  let url: string;
  const clients: Client[] = [];
  let alice: (tool: string, args?: Record<string, unknown>) => Promise<Answer>;
  let bob: (tool: string, args?: Record<string, unknown>) => Promise<Answer>;

  beforeAll(async () => {
    fx = await createBuiltFixture(docker, runId);
    fx.policy('open-test', openTestPolicy());
    const repo = fx.repo('svc');
    fx.agents(
      {
        [aliceAgent]: { directory: repo, policy: 'open-test', users: ['alice'] },
        [bobAgent]: { directory: repo, policy: 'open-test', users: ['bob'] },
        [sharedAgent]: { directory: repo, policy: 'open-test', users: ['alice', 'bob'] },
      },
      { admins: ['carol'], cache: { enabled: false }, warm_pool: 0 },
    );
    serve = spawn(process.execPath, [CLI, 'serve', '--http', '--listen', '127.0.0.1:0'], { env: fx.env, cwd: fx.root, stdio: ['ignore', 'ignore', 'pipe'] });
    serve.stderr!.on('data', (chunk: Buffer) => (log += chunk.toString()));
    await waitFor('serve --http to listen', async () => /at (http:\/\/127\.0\.0\.1:\d+\/mcp)/.test(log), 60_000);
    url = /at (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(log)![1]!;
    const store = new TokenStore(tokensPath(fx.env));
    alice = await session((await store.create('alice')).token);
    bob = await session((await store.create('bob')).token);
  }, TIMEOUT);

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    if (serve && serve.exitCode === null) {
      const exited = new Promise((resolve) => serve.once('exit', resolve));
      serve.kill('SIGTERM');
      await exited;
    }
    await cleanupTestResources(docker, runId);
    await fx?.close();
  }, TIMEOUT);

  async function session(token: string) {
    const client = new Client({ name: 'http-users', version: '0.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } }));
    clients.push(client);
    return async (tool: string, args: Record<string, unknown> = {}): Promise<Answer> => {
      const result = (await client.callTool({ name: tool, arguments: args }, CallToolResultSchema, { timeout: TIMEOUT })) as CallToolResult;
      const first = result.content[0];
      if (first?.type !== 'text') throw new Error(`unexpected content: ${JSON.stringify(result)}`);
      return { isError: result.isError === true, text: first.text, json: JSON.parse(first.text) };
    };
  }

  /** Containers of this test run, as the engine sees them (`job`: only that job's). */
  async function containers(job?: string, status?: string): Promise<number> {
    const label = [`${TEST_LABEL}=${runId}`, ...(job ? [`${LABELS.job}=${job}`] : [])];
    return (await docker.listContainers({ all: true, filters: { label, ...(status ? { status: [status] } : {}) } })).length;
  }

  /** `answer` as it would read for `to` instead of `from`. */
  const renamed = (answer: Answer, from: string, to: string) => ({ isError: answer.isError, text: answer.text.split(from).join(to) });
  const asked = (answer: Answer) => ({ isError: answer.isError, text: answer.text });

  it("each user lists only their agent; the other's agent answers like a missing one, and nothing starts", async () => {
    expect((await alice('list_agents')).json.map((a: { name: string }) => a.name)).toEqual([aliceAgent, sharedAgent]);
    expect((await bob('list_agents')).json.map((a: { name: string }) => a.name)).toEqual([bobAgent, sharedAgent]);
    const hidden = await alice('dispatch', { agent: bobAgent, task: 'hello' });
    const missing = await alice('dispatch', { agent: `nobody-${runId}`, task: 'hello' });
    expect(hidden.json.error).toBe(`Unknown agent: '${bobAgent}'. Available: ${aliceAgent}, ${sharedAgent}`);
    expect(renamed(hidden, bobAgent, `nobody-${runId}`)).toEqual(asked(missing));
    expect(renamed(await alice('inspect_agent', { name: bobAgent }), bobAgent, 'x')).toEqual(asked(await alice('inspect_agent', { name: 'x' })));
    expect(await containers()).toBe(0);
  }, TIMEOUT);

  it("alice cannot read, wait on, cancel or fetch bob's running job; bob's container runs on, and his job finishes", async () => {
    const marker = `bob-marker-${runId}`;
    const started = await bob('dispatch_async', { agent: bobAgent, task: `${DIRECTIVE.sleep(8000)} ${DIRECTIVE.reply(marker)}` });
    expect(started.isError, started.text).toBe(false);
    const job = started.json.job_id as string;
    // Claude in bob's container has asked the model, which holds its answer for 8 s (helpers that prepare a
    // volume carry the job label too, and come and go before that).
    await waitFor("bob's job to run", async () => fx.model.requests.some((r) => r.hasTools) && (await containers(job, 'running')) === 1, 60_000);

    for (const [tool, args, missingArgs] of [
      ['dispatch_status', { job_id: job }, { job_id: MISSING }],
      ['dispatch_wait', { job_id: job, timeout_seconds: 1 }, { job_id: MISSING, timeout_seconds: 1 }],
      ['dispatch_cancel', { job_id: job }, { job_id: MISSING }],
      ['fetch_result', { ref: job }, { ref: MISSING }],
    ] as const) {
      const theirs = await alice(tool, args);
      expect(theirs.isError, tool).toBe(true);
      expect(renamed(theirs, job, MISSING), tool).toEqual(asked(await alice(tool, missingArgs)));
    }
    expect((await alice('dispatch_jobs')).json).toEqual([]);
    expect((await bob('dispatch_jobs')).json.map((j: { id: string }) => j.id)).toEqual([job]);
    // alice's cancel touched nothing: the job still runs, on the engine too.
    expect((await bob('dispatch_status', { job_id: job })).json).toMatchObject({ status: 'running', owner: 'bob' });
    expect(await containers(job, 'running')).toBe(1);

    const done = await bob('dispatch_wait', { job_id: job, timeout_seconds: 120 });
    expect(done.json, log).toMatchObject({ id: job, status: 'done', result: { success: true, result: expect.stringContaining(marker) } });
    expect((await bob('fetch_result', { ref: job })).json.result).toContain(marker);
    expect(renamed(await alice('fetch_result', { ref: job }), job, MISSING)).toEqual(asked(await alice('fetch_result', { ref: MISSING })));

    const audit = readFileSync(join(fx.configDir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(audit.find((r) => r.job === job)).toMatchObject({ user: 'bob', agent: bobAgent, success: true });
    await waitFor('bob\'s container to go', async () => (await containers(job)) === 0, 30_000);
  }, TIMEOUT);

  it("on an agent both may use, alice's container holds none of bob's transcripts, and resuming his session does not reach his conversation", async () => {
    const secret = `bob-secret-${runId}`;
    const his = await bob('dispatch', { agent: sharedAgent, task: DIRECTIVE.reply(secret) });
    expect(his.json, log).toMatchObject({ success: true, result: expect.stringContaining(secret) });
    const hisSession = his.json.session_id as string;
    expect(hisSession).toMatch(/^[0-9a-f-]{36}$/);

    const hers = await alice('dispatch', { agent: sharedAgent, task: DIRECTIVE.reply(`alice-${runId}`) });
    expect(hers.json, log).toMatchObject({ success: true });
    const listing = await alice('dispatch', { agent: sharedAgent, task: DIRECTIVE.bash(`find ${CLAUDE_SESSIONS_DIR} -name '*.jsonl'`) });
    expect(listing.json, log).toMatchObject({ success: true });
    // Her earlier transcript is there (the listing works); his is not.
    expect(listing.json.result, listing.text).toContain(`${hers.json.session_id}.jsonl`);
    expect(listing.json.result, listing.text).not.toContain(hisSession);

    const resumed = await alice('dispatch_session', { agent: sharedAgent, task: DIRECTIVE.recall(), session_id: hisSession });
    expect(resumed.text).not.toContain(secret);
    // His own session still resumes for him, with his first prompt in it.
    const again = await bob('dispatch_session', { agent: sharedAgent, task: DIRECTIVE.recall(), session_id: hisSession });
    expect(again.json, log).toMatchObject({ success: true, result: expect.stringContaining(secret) });
  }, TIMEOUT);

  it('neither user can add, update or remove an agent: FORBIDDEN, agents.yaml untouched', async () => {
    const before = readFileSync(fx.configPath, 'utf8');
    for (const [tool, args] of [
      ['update_agent', { name: aliceAgent, description: 'mine now' }],
      ['add_agent', { name: `new-${runId}`, directory: fx.repo('svc') }],
      ['remove_agent', { name: aliceAgent }],
    ] as const) {
      for (const [user, call] of [['alice', alice], ['bob', bob]] as const) {
        const answer = await call(tool, args);
        expect(answer.isError, `${user} ${tool}`).toBe(true);
        expect(answer.json.error).toBe(`${tool} is for admins of this dispatch service; user '${user}' is not one.`);
      }
    }
    expect(readFileSync(fx.configPath, 'utf8')).toBe(before);
  }, TIMEOUT);
});
