/**
 * The dispatch tools over a real in-memory MCP client, with a FAKE sandbox behind the server: caching,
 * return_ref + fetch_result, dispatch_session, dispatch_stream progress, cancellation and the error envelope.
 *
 * createServer(env, fakeSandbox): the real server and tools, with a fake sandbox in place of Docker.
 * As in mcp-harness.ts, process.env's AGENT_DISPATCH_CONFIG points at a broken decoy: anything that reads
 * process.env instead of the injected env fails loudly.
 */
import { AppError } from '../../src/errors.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { LoggingMessageNotificationSchema, type CallToolResult, type Progress } from '@modelcontextprotocol/sdk/types.js';
import type { ServerContext } from '../../src/mcp/context.js';
import { createServer } from '../../src/mcp/server.js';
import { ASSISTANT_LINE, FakeSandbox, outcome, overlayEdits, resultLine, succeeds } from '../helpers/fake-sandbox.js';

const DECOY = 'agents: [this decoy must never be read\n';
const IMAGE = 'agent-dispatch/agent:unit';

// ---------------------------------------------------------------------------------------------------------------
// What the fake sandbox answers unless a test scripts another run

const ANSWER = {
  result: 'The answer is 42. It always was.',
  session_id: '367475b8-0000-4000-8000-000000000002',
  num_turns: 2,
  duration_ms: 1200,
  total_cost_usd: 0.0123,
};

/** The DispatchResult of ANSWER. */
const ANSWERED = {
  agent: 'api',
  success: true,
  result: 'The answer is 42. It always was.',
  session_id: '367475b8-0000-4000-8000-000000000002',
  cost_usd: 0.0123,
  duration_ms: 1200,
  num_turns: 2,
};

// ---------------------------------------------------------------------------------------------------------------
// Harness

interface Answer {
  result: CallToolResult;
  json: any;
  isError: boolean;
}

let root: string;
let configDir: string;
let configPath: string;
let project: string;
let sandbox: FakeSandbox;
let context: ServerContext;
let server: McpServer;
let client: Client;
let logs: string[];

function writeConfig(agents: Record<string, Record<string, unknown>> = {}, extra: Record<string, unknown> = {}): void {
  writeFileSync(
    configPath,
    stringify({ agents: { api: { directory: project, policy: 'open', description: 'the API' }, ...agents }, groups: {}, settings: {}, ...extra }),
    { mode: 0o600 },
  );
}

function writePolicy(overrides: Record<string, unknown> = {}): void {
  writeFileSync(
    join(configDir, 'policies', 'open.yaml'),
    stringify({
      version: 1,
      description: 'unit: open network',
      repo: 'ro',
      credentials: 'env',
      network: { mode: 'open' },
      env: { pass: [], set: {} },
      tools: { permission_mode: 'default', allow: null, deny: ['WebFetch'] },
      resources: { memory: '1g', cpus: 1, pids: 256, nofile: 1024, tmp_size: '64m', timeout: 600 },
      image: IMAGE,
      ...overrides,
    }),
  );
}

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'ad-mcp-dispatch-'));
  configDir = join(root, 'config');
  mkdirSync(join(configDir, 'policies'), { recursive: true });
  configPath = join(configDir, 'agents.yaml');
  project = join(root, 'projects', 'api');
  mkdirSync(project, { recursive: true });
  writePolicy();
  writeConfig();
  mkdirSync(join(root, 'decoy'));
  writeFileSync(join(root, 'decoy', 'agents.yaml'), DECOY);
  vi.stubEnv('AGENT_DISPATCH_CONFIG', join(root, 'decoy', 'agents.yaml'));

  sandbox = new FakeSandbox(succeeds([resultLine(ANSWER)]));
  ({ server, context } = createServer({ AGENT_DISPATCH_CONFIG: configPath, ANTHROPIC_API_KEY: 'sk-unit' }, sandbox));

  client = new Client({ name: 'mcp-dispatch-test', version: '0.0.0' });
  logs = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    logs.push(String(n.params.data));
  });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await Promise.all([server.connect(serverTransport), client.connect(clientTransport)]);
});

afterEach(async () => {
  await client.close();
  await server.close();
  expect(readFileSync(join(root, 'decoy', 'agents.yaml'), 'utf8')).toBe(DECOY);
  rmSync(root, { recursive: true, force: true });
});

async function call(name: string, args: Record<string, unknown> = {}, options: Parameters<Client['callTool']>[2] = undefined): Promise<Answer> {
  const result = (await client.callTool({ name, arguments: args }, undefined, options)) as CallToolResult;
  const first = result.content[0];
  if (!first || first.type !== 'text') throw new Error(`${name}: expected one text item, got ${JSON.stringify(result)}`);
  return { result, json: JSON.parse(first.text), isError: result.isError === true };
}

const dispatch = (args: Record<string, unknown> = {}) => call('dispatch', { agent: 'api', task: 'What is the answer?', ...args });

// ---------------------------------------------------------------------------------------------------------------
describe('dispatch: the result and the cache', () => {
  it('returns the DispatchResult; the sandbox ran the compiled command with the prompt on stdin', async () => {
    const { json, isError } = await dispatch({ context: 'Be brief', caller: 'me', goal: 'Know' });
    expect(isError).toBe(false);
    expect(json).toEqual(ANSWERED);
    expect(sandbox.runs).toHaveLength(1);
    expect(sandbox.last.cmd.slice(0, 6)).toEqual(['claude', '-p', '--output-format', 'stream-json', '--verbose', '--session-id']);
    expect(sandbox.last.stdin).toBe('## Goal\nKnow\n\n## Dispatched by\nme\n\n## Context\nBe brief\n\n## Task\nWhat is the answer?');
    expect(sandbox.last.job).toMatch(/^[0-9a-f]{32}$/);
    expect(logs).toContain('Dispatching to api: What is the answer?...');
  });

  it('a second identical call is served from the cache: cached:true, the sandbox ran once', async () => {
    const first = await dispatch();
    const second = await dispatch();
    expect(first.json).not.toHaveProperty('cached');
    expect(second.json).toEqual({ ...first.json, cached: true });
    expect(sandbox.runs).toHaveLength(1);
    expect(logs).toContain('Cache hit for api — returning cached result');
    expect((await call('cache_stats')).json).toMatchObject({ size: 1, hits: 1 });
  });

  it('the timeout override is not part of the key', async () => {
    await dispatch({ timeout_seconds: 30 });
    expect((await dispatch({ timeout_seconds: 60 })).json.cached).toBe(true);
    expect(sandbox.runs).toHaveLength(1);
  });

  it('any other field of the request is part of the key', async () => {
    await dispatch();
    for (const change of [{ task: 'Another task' }, { context: 'c' }, { caller: 'x' }, { goal: 'g' }, { response_format: 'json' }]) {
      expect((await dispatch(change)).json).not.toHaveProperty('cached');
    }
    expect(sandbox.runs).toHaveLength(6);
  });

  it('a failed result is not cached', async () => {
    sandbox.scripts = [succeeds([resultLine({ is_error: true, result: 'API Error: Connection refused' })], { exitCode: 1 })];
    const first = await dispatch();
    expect(first.json.success).toBe(false);
    expect(first.isError).toBe(false);
    const second = await dispatch();
    expect(second.json).not.toHaveProperty('cached');
    expect(sandbox.runs).toHaveLength(2);
  });

  it('a result with denied tools is not cached', async () => {
    sandbox.scripts = [succeeds([resultLine({ permission_denials: [{ tool_name: 'Bash', tool_use_id: 't', tool_input: {} }] })])];
    expect((await dispatch()).json.denied_tools).toEqual(['Bash']);
    expect((await dispatch()).json).not.toHaveProperty('cached');
    expect(sandbox.runs).toHaveLength(2);
  });

  it('an overlay result (with a patch) is not cached: after applying the patch the same dispatch runs again', async () => {
    writePolicy({ repo: 'overlay' });
    sandbox.scripts = [overlayEdits({ 'x.txt': 'x\n' }, [resultLine({ result: 'edited' })])];
    const first = await dispatch();
    expect(first.json).toMatchObject({ success: true, patch: expect.stringContaining('\n+x\n') });
    expect(first.json.patch_file).toMatch(/\.patch$/);
    expect((await dispatch()).json).not.toHaveProperty('cached');
    expect(sandbox.runs).toHaveLength(2);
    expect((await call('cache_stats')).json).toMatchObject({ size: 0 });
  });

  it("update_agent invalidates the agent's cached results, and the next run uses the new config", async () => {
    await dispatch();
    expect((await dispatch()).json.cached).toBe(true);
    const update = await call('update_agent', { name: 'api', model: 'sonnet' });
    expect(update.isError).toBe(false);
    const after = await dispatch();
    expect(after.json).not.toHaveProperty('cached');
    expect(sandbox.runs).toHaveLength(2);
    const cmd = sandbox.last.cmd;
    expect(cmd[cmd.indexOf('--model') + 1]).toBe('sonnet');
  });

  it('update_agent of another agent keeps this one cached', async () => {
    writeConfig({ web: { directory: project, policy: 'open' } });
    await dispatch();
    await call('update_agent', { name: 'web', description: 'changed' });
    expect((await dispatch()).json.cached).toBe(true);
  });

  it('an edit behind the server (agents.yaml or the policy file) misses the cache by itself', async () => {
    await dispatch();
    writeConfig({}, {});
    writeFileSync(configPath, readFileSync(configPath, 'utf8').replace('the API', 'the API, edited'));
    expect((await dispatch()).json).not.toHaveProperty('cached');
    expect((await dispatch()).json.cached).toBe(true);
    writePolicy({ description: 'edited policy' });
    expect((await dispatch()).json).not.toHaveProperty('cached');
    expect(sandbox.runs).toHaveLength(3);
  });

  it('an edit of the inherited settings behind the server misses the cache (they shape the claude flags)', async () => {
    await dispatch();
    writeConfig({}, { settings: { default_allowed_tools: ['Read'] } });
    const after = await dispatch();
    expect(after.json).not.toHaveProperty('cached');
    expect(sandbox.last.cmd).toContain('--allowedTools');
    expect(sandbox.runs).toHaveLength(2);
    writeConfig({}, { settings: { default_allowed_tools: ['Read'], max_concurrency: 9 } });
    expect((await dispatch()).json.cached).toBe(true);
  });

  it('group folds the shared context into the prompt and the key', async () => {
    writeFileSync(
      configPath,
      stringify({
        agents: { api: { directory: project, policy: 'open' } },
        groups: { team: { shared_context: 'We use EU servers.', members: [{ agent: 'api' }] } },
      }),
    );
    await dispatch({ group: 'team', context: 'Mine' });
    expect(sandbox.last.stdin).toBe("Context:\nShared context (group 'team'):\nWe use EU servers.\n\nMine\n\nTask:\nWhat is the answer?");
    // The same effective context without the group hits the same entry.
    expect((await dispatch({ context: "Shared context (group 'team'):\nWe use EU servers.\n\nMine" })).json.cached).toBe(true);
    expect(sandbox.runs).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('return_ref and fetch_result', () => {
  it('return_ref stores the whole result and returns a ref with a summary; fetch_result reads it', async () => {
    const { json, isError } = await dispatch({ return_ref: true, summary_chars: 13 });
    expect(isError).toBe(false);
    expect(json).toEqual({
      ref: expect.stringMatching(/^[0-9a-f]{32}$/),
      agent: 'api',
      success: true,
      size: 32,
      summary_chars: 13,
      summary: 'The answer is',
      session_id: '367475b8-0000-4000-8000-000000000002',
      cost_usd: 0.0123,
      duration_ms: 1200,
      num_turns: 2,
    });
    const fetched = await call('fetch_result', { ref: json.ref });
    expect(fetched.isError).toBe(false);
    expect(fetched.json).toEqual(ANSWERED);
    const cut = await call('fetch_result', { ref: json.ref, max_chars: 16 });
    expect(cut.json).toMatchObject({ result: 'The answer is 42', truncated: true, full_size: 32 });
  });

  it('return_ref on an overlay dispatch shows that a patch exists; fetch_result has the patch', async () => {
    writePolicy({ repo: 'overlay' });
    sandbox.scripts = [overlayEdits({ 'x.txt': 'x\n' }, [resultLine({ result: 'edited' })])];
    const { json } = await dispatch({ return_ref: true });
    expect(json).toMatchObject({ success: true, summary: 'edited', patch_file: expect.stringMatching(/\.patch$/) });
    expect(json).not.toHaveProperty('patch');
    const patch = readFileSync(json.patch_file, 'utf8');
    expect(patch).toContain('diff --git a/x.txt b/x.txt\nnew file mode 100644');
    expect((await call('fetch_result', { ref: json.ref })).json).toMatchObject({ patch, patch_file: json.patch_file });
  });

  it('a cache hit with return_ref stores a new ref each time and says cached', async () => {
    const first = await dispatch({ return_ref: true });
    const second = await dispatch({ return_ref: true });
    expect(second.json.cached).toBe(true);
    expect(second.json.ref).not.toBe(first.json.ref);
    expect((await call('fetch_result', { ref: second.json.ref })).json.result).toBe('The answer is 42. It always was.');
    expect(sandbox.runs).toHaveLength(1);
  });

  it('a failed dispatch is stored too', async () => {
    sandbox.scripts = [() => outcome({ exitCode: 1, stderr: 'boom' })];
    const { json } = await dispatch({ return_ref: true });
    expect(json).toMatchObject({ success: false, error: 'boom', error_type: 'cli_error', summary: '', size: 0 });
    expect((await call('fetch_result', { ref: json.ref })).json).toMatchObject({ success: false, error: 'boom' });
  });

  it.each(['../x', 'ABCDEF0123456789ABCDEF0123456789', 'a'.repeat(31), 'a'.repeat(33)])('fetch_result refuses the ref %j', async (ref) => {
    const { json, isError } = await call('fetch_result', { ref });
    expect(isError).toBe(true);
    expect(json).toEqual({ error: `Invalid ref format: '${ref}' (expected a 32-char hex id)`, hint: expect.stringContaining('32 lowercase hex') });
  });

  it('fetch_result of an unknown ref says so', async () => {
    const ref = '0'.repeat(32);
    const answer = await call('fetch_result', { ref });
    expect(answer.json.error).toBe(`Ref not found: ${ref}`);
    expect(answer.isError).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('dispatch_session and dispatch_stream', () => {
  it('dispatch_session resumes with --resume and is never cached', async () => {
    const a = await call('dispatch_session', { agent: 'api', task: 'Continue', session_id: 'sess-123' });
    const b = await call('dispatch_session', { agent: 'api', task: 'Continue', session_id: 'sess-123' });
    expect(a.json.success).toBe(true);
    expect(b.json).not.toHaveProperty('cached');
    expect(sandbox.runs).toHaveLength(2);
    expect(sandbox.last.cmd.slice(5, 7)).toEqual(['--resume', 'sess-123']);
    expect(sandbox.last.cmd).not.toContain('--session-id');
    expect(logs).toContain('Dispatching to api (resuming sess-123...): Continue...');
  });

  it('dispatch_session with an empty session id starts a new one', async () => {
    await call('dispatch_session', { agent: 'api', task: 'Start' });
    expect(sandbox.last.cmd).toContain('--session-id');
    expect(logs).toContain('Dispatching to api (new session): Start...');
  });

  it('dispatch_session with a flag-like session id → cli_error, nothing started', async () => {
    const { json } = await call('dispatch_session', { agent: 'api', task: 'x', session_id: '--permission-mode' });
    expect(json).toMatchObject({ success: false, error_type: 'cli_error' });
    expect(sandbox.runs).toHaveLength(0);
  });

  it('dispatch_stream sends progress notifications to a client that asked for them, in order, before the result', async () => {
    sandbox.scripts = [succeeds([ASSISTANT_LINE, resultLine()])];
    const progress: Progress[] = [];
    const { json } = await call('dispatch_stream', { agent: 'api', task: 'Look around' }, { onprogress: (p) => progress.push(p) });
    expect(json.success).toBe(true);
    expect(progress).toEqual([
      { progress: 1, message: 'Streaming dispatch to api: Look around...' },
      { progress: 2, message: '[api] Let me look.' },
      { progress: 3, message: '[api] Using tool: Bash' },
    ]);
    expect(logs).toEqual(expect.arrayContaining(['[api] Let me look.', '[api] Using tool: Bash']));
  });

  it('dispatch_stream without a progress token still logs the progress', async () => {
    sandbox.scripts = [succeeds([ASSISTANT_LINE, resultLine()])];
    const { json } = await call('dispatch_stream', { agent: 'api', task: 'Look around' });
    expect(json.success).toBe(true);
    expect(logs).toEqual(expect.arrayContaining(['[api] Using tool: Bash']));
  });

  it('dispatch_stream is never cached', async () => {
    await call('dispatch_stream', { agent: 'api', task: 'Same' });
    await call('dispatch_stream', { agent: 'api', task: 'Same' });
    expect(sandbox.runs).toHaveLength(2);
  });

  it('a client that cancels the call aborts the sandbox run; the slot is held until the run returns', async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let sawAbort = false;
    sandbox.scripts = [
      async (run) => {
        await new Promise<void>((resolve) => run.signal?.addEventListener('abort', () => resolve(), { once: true }));
        sawAbort = true;
        await released;
        return outcome({ exitCode: 137, cancelled: true });
      },
    ];
    const controller = new AbortController();
    const pending = call('dispatch', { agent: 'api', task: 'Long job' }, { signal: controller.signal });
    await vi.waitFor(() => expect(sandbox.runs).toHaveLength(1));
    expect(sandbox.last.signal).toBeDefined();
    controller.abort('user cancelled');
    await expect(pending).rejects.toBeDefined();
    await vi.waitFor(() => expect(sawAbort).toBe(true));
    expect(context.dispatcher.service.inFlight).toBe(1);
    release();
    await vi.waitFor(() => expect(context.dispatcher.service.inFlight).toBe(0));
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('the error envelope', () => {
  it.each(['dispatch', 'dispatch_session', 'dispatch_stream'])('%s to an unknown agent → {error, hint?} with isError', async (tool) => {
    const { json, isError } = await call(tool, { agent: 'ghost', task: 't' });
    expect(isError).toBe(true);
    expect(json.error).toBe("Unknown agent: 'ghost'. Available: api");
    expect(Object.keys(json).every((k) => k === 'error' || k === 'hint')).toBe(true);
    expect(sandbox.runs).toHaveLength(0);
  });

  it('dispatch with a group the agent is not in → envelope, nothing started', async () => {
    writeFileSync(
      configPath,
      stringify({ agents: { api: { directory: project, policy: 'open' }, web: { directory: project, policy: 'open' } }, groups: { team: { members: [{ agent: 'web' }] } } }),
    );
    const { json, isError } = await dispatch({ group: 'team' });
    expect(isError).toBe(true);
    expect(json).toEqual({ error: "Agent 'api' is not a member of group 'team'. Members: web", hint: expect.stringContaining("inspect_group('team')") });
    expect(sandbox.runs).toHaveLength(0);
  });

  it('a sandbox refusal (a gateway that fails its canary) is a failed DispatchResult, not an envelope', async () => {
    writeConfig({ gated: { directory: project } });
    sandbox.scripts = [
      () => {
        throw new AppError('SANDBOX_FAILED', "The egress gateway for agent 'gated' is not usable: its canary failed.", { hint: 'Run agent-dispatch doctor.' });
      },
    ];
    const { json, isError } = await dispatch({ agent: 'gated' });
    expect(isError).toBe(false);
    expect(json).toMatchObject({ agent: 'gated', success: false, error_type: 'sandbox', hint: 'Run agent-dispatch doctor.' });
    expect(json.error).toContain('canary');
  });

  it('the explicit repo_git: writable opt-in is an error finding for policy check, but does not block the dispatch', async () => {
    mkdirSync(join(project, '.git', 'hooks'), { recursive: true });
    writeFileSync(join(project, '.git', 'config'), '[core]\n');
    writePolicy({ repo: 'rw', repo_git: 'writable' });
    const { json, isError } = await dispatch();
    expect(isError).toBe(false);
    expect(json.success).toBe(true);
    expect(sandbox.runs).toHaveLength(1);
  });

  it('a broken agents.yaml → envelope with a hint', async () => {
    writeFileSync(configPath, 'agents: [broken\n');
    const { json, isError } = await dispatch();
    expect(isError).toBe(true);
    expect(json.error).toContain(configPath);
    expect(json.hint).toBeTypeOf('string');
    expect(sandbox.runs).toHaveLength(0);
  });

  it.each([
    ['dispatch', { agent: 'api', task: 't', timeout_seconds: -5 }],
    ['dispatch_session', { agent: 'api', task: 't', timeout_seconds: -1 }],
    ['dispatch_stream', { agent: 'api', task: 't', timeout_seconds: -1 }],
  ])('%s with a negative timeout %j runs with the agent default (the original clamped, never refused)', async (tool, args) => {
    await call(tool, { ...args, task: 'first', timeout_seconds: 0 });
    const { json, isError } = await call(tool, args);
    expect(isError).toBe(false);
    expect(json.success).toBe(true);
    expect(sandbox.runs).toHaveLength(2);
    expect(sandbox.runs[1]!.timeoutMs).toBe(sandbox.runs[0]!.timeoutMs);
  });

  it('a negative summary_chars is clamped to 0: a ref with an empty summary', async () => {
    const { json, isError } = await dispatch({ return_ref: true, summary_chars: -1 });
    expect(isError).toBe(false);
    expect(json).toMatchObject({ summary_chars: 0, summary: '', size: ANSWER.result.length });
  });

  it('a negative max_chars is clamped to 0: the whole result', async () => {
    const { ref } = (await dispatch({ return_ref: true })).json;
    const { json, isError } = await call('fetch_result', { ref, max_chars: -1 });
    expect(isError).toBe(false);
    expect(json.result).toBe(ANSWER.result);
    expect(json).not.toHaveProperty('truncated');
  });

  it('arguments of the wrong type → envelope from createToolError', async () => {
    const { json, isError } = await call('dispatch', { agent: 'api', task: 42 });
    expect(isError).toBe(true);
    expect(json.hint).toContain('tools/list');
    expect(sandbox.runs).toHaveLength(0);
  });
});
