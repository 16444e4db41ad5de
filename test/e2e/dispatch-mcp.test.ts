/**
 * The dispatch tools as a real MCP client sees them: the SDK Client over stdio against the BUILT
 * `agent-dispatch serve`, which dispatches into the test agent image where the real claude binary talks to
 * the scripted fake model. `npm test` builds first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema, type CallToolResult, type Progress } from '@modelcontextprotocol/sdk/types.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { CLI, createBuiltFixture, gatewayTestPolicy, openTestPolicy, type Fixture } from '../helpers/dispatch-fixture.js';
import { cleanupTestResources, dockerClient, skipDocker, TEST_LABEL, testRunId } from '../helpers/docker.js';

const TIMEOUT = 120_000;

describe.skipIf(skipDocker)('dispatch tools over stdio with the real claude binary in the sandbox', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const agent = `mcp-${runId}`;
  let fx: Fixture;
  let client: Client;
  let stderr = '';

  beforeAll(async () => {
    fx = await createBuiltFixture(docker, runId);
    const repo = fx.repo('service');
    fx.policy('open-test', openTestPolicy());
    fx.policy('gateway-test', gatewayTestPolicy());
    fx.agents({ [agent]: { directory: repo, policy: 'open-test' }, [`${agent}-gw`]: { directory: repo, policy: 'gateway-test' } }, {}, {
      team: { description: 'the team', shared_context: 'The team ships on Fridays.', members: [{ agent }] },
    });
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve'], env: fx.env as Record<string, string>, cwd: fx.root, stderr: 'pipe' });
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    client = new Client({ name: 'e2e-dispatch', version: '0.0.0' });
    await client.connect(transport);
  }, TIMEOUT);

  afterAll(async () => {
    await client?.close();
    await cleanupTestResources(docker, runId);
    await fx?.close();
  }, TIMEOUT);

  async function call(name: string, args: Record<string, unknown>, onprogress?: (p: Progress) => void) {
    const result = (await client.callTool({ name, arguments: args }, CallToolResultSchema, { timeout: TIMEOUT, ...(onprogress ? { onprogress } : {}) })) as CallToolResult;
    const first = result.content[0];
    if (first?.type !== 'text') throw new Error(`unexpected content: ${JSON.stringify(result)}`);
    return { isError: result.isError === true, json: JSON.parse(first.text) as Record<string, any> };
  }

  it('dispatch completes, and the same request again is a cache hit', async () => {
    const task = DIRECTIVE.reply(`cached answer ${runId}`);
    const first = await call('dispatch', { agent, task });
    expect(first.isError, stderr).toBe(false);
    expect(first.json).toMatchObject({ agent, success: true, result: `cached answer ${runId}` });
    expect(first.json['cached']).toBeUndefined();
    const calls = fx.model.requests.length;
    const second = await call('dispatch', { agent, task });
    expect(second.json).toMatchObject({ success: true, result: `cached answer ${runId}`, cached: true });
    expect(fx.model.requests.length).toBe(calls);
  }, TIMEOUT);

  it('behind the egress gateway: the result carries the egress summary, and inspect_agent shows the decisions', async () => {
    const name = `${agent}-gw`;
    const probe = "node -e \"require('http').get({ host: '127.0.0.1', port: 3128, path: 'http://denied.example/' }, (r) => console.log('status=' + r.statusCode))\"";
    const result = await call('dispatch', { agent: name, task: DIRECTIVE.bash(probe) });
    expect(result.isError, stderr).toBe(false);
    expect(result.json).toMatchObject({ agent: name, success: true, egress: { denied: 1, denied_hosts: ['denied.example:80'] } });
    expect(result.json['result']).toContain('status=403');
    const view = await call('inspect_agent', { name });
    expect(view.json['last_dispatch']).toMatchObject({ success: true, network: 'gateway', egress: { denied: 1 } });
    const decisions = view.json['last_dispatch']['egress_decisions'] as { kind: string; host: string; allowed: boolean }[];
    expect(decisions).toContainEqual(expect.objectContaining({ kind: 'http', host: 'denied.example', allowed: false }));
    expect(decisions.some((d) => d.kind === 'api' && d.allowed)).toBe(true);
  }, TIMEOUT);

  it('return_ref stores the result; fetch_result reads it back, cut when asked', async () => {
    const long = `ref-${'x'.repeat(300)}`;
    const ref = await call('dispatch', { agent, task: DIRECTIVE.reply(long), return_ref: true, summary_chars: 10 });
    expect(ref.json).toMatchObject({ agent, success: true, size: long.length, summary_chars: 10, summary: long.slice(0, 10) });
    expect(ref.json['ref']).toMatch(/^[0-9a-f]{32}$/);
    const fetched = await call('fetch_result', { ref: ref.json['ref'], max_chars: 20 });
    expect(fetched.json).toMatchObject({ result: long.slice(0, 20), truncated: true, full_size: long.length });
    const traversal = await call('fetch_result', { ref: '../../etc/passwd' });
    expect(traversal.isError).toBe(true);
    expect(traversal.json.error).toContain('expected a 32-char hex id');
  }, TIMEOUT);

  it('group dispatch folds the shared context into the prompt', async () => {
    const result = await call('dispatch', { agent, task: DIRECTIVE.recall(), group: 'team' });
    expect(result.json['result']).toContain("Shared context (group 'team'):\nThe team ships on Fridays.");
    const notMember = await call('dispatch', { agent: agent, task: 'x', group: 'nope' });
    expect(notMember.isError).toBe(true);
    expect(notMember.json.error).toContain("Unknown group: 'nope'");
  }, TIMEOUT);

  it('dispatch_session: the second turn sees the first', async () => {
    const first = await call('dispatch_session', { agent, task: `the secret word is walrus-${runId}` });
    expect(first.json).toMatchObject({ success: true });
    const second = await call('dispatch_session', { agent, task: DIRECTIVE.recall(), session_id: first.json['session_id'] });
    expect(second.json).toMatchObject({ success: true, session_id: first.json['session_id'] });
    expect(second.json['result']).toContain(`the secret word is walrus-${runId}`);
  }, TIMEOUT);

  it('a timed-out dispatch resumes successfully with dispatch_session', async () => {
    const timedOut = await call('dispatch', { agent, task: `task about otters ${DIRECTIVE.bash('sleep 60')}`, timeout_seconds: 10 });
    expect(timedOut.json).toMatchObject({ success: false, error_type: 'timeout' });
    expect(timedOut.json['error']).toContain(timedOut.json['session_id']);
    const resumed = await call('dispatch_session', { agent, task: DIRECTIVE.recall(), session_id: timedOut.json['session_id'] });
    expect(resumed.json).toMatchObject({ success: true });
    expect(resumed.json['result']).toContain('task about otters');
  }, TIMEOUT);

  it('dispatch_stream sends progress notifications the client observes, then the result', async () => {
    const progress: Progress[] = [];
    const result = await call('dispatch_stream', { agent, task: `${DIRECTIVE.bash('echo streamed-output')} ${DIRECTIVE.reply('stream done')}` }, (p) => progress.push(p));
    expect(result.json).toMatchObject({ success: true });
    expect(result.json['result']).toContain('stream done');
    const messages = progress.map((p) => p.message ?? '');
    expect(messages).toContain(`[${agent}] Using tool: Bash`);
    expect(messages.some((m) => m.includes('stream done'))).toBe(true);
    expect(progress.map((p) => p.progress)).toEqual([...progress.keys()].map((i) => i + 1));
  }, TIMEOUT);

  it('an unknown agent is the error envelope, not a dispatch', async () => {
    const result = await call('dispatch', { agent: 'nobody', task: 'x' });
    expect(result.isError).toBe(true);
    expect(result.json.error).toContain("Unknown agent: 'nobody'");
  });

  it('remove_agent deletes the session volume its dispatches used', async () => {
    const volumes = async () => ((await docker.listVolumes({ filters: { label: [`agent-dispatch.agent=${agent}`] } })).Volumes ?? []).length;
    expect(await volumes()).toBeGreaterThan(0);
    const removed = await call('remove_agent', { name: agent });
    expect(removed.json).toEqual({ removed: agent });
    expect(await volumes()).toBe(0);
  }, TIMEOUT);

  it('leaves no dispatch container behind', async () => {
    const left = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`, LABELS.job] } });
    expect(left).toEqual([]);
  });
});
