/**
 * The built server over real stdio: `node dist/cli.js serve`, driven by the SDK's StdioClientTransport.
 * `npm test` builds first; run `npm run build` before running this file on its own.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const STARTUP_BUDGET_MS = 3000;

const EXPECTED_PARAMS: Record<string, string[]> = {
  list_agents: [],
  inspect_agent: ['name', 'preview_lines'],
  list_groups: [],
  inspect_group: ['name'],
  add_agent: [
    'name',
    'directory',
    'description',
    'timeout',
    'max_budget_usd',
    'model',
    'permission_mode',
    'allowed_tools',
    'disallowed_tools',
    'capabilities',
    'risky_capabilities',
    'policy',
  ],
  update_agent: [
    'name',
    'description',
    'timeout',
    'max_budget_usd',
    'model',
    'permission_mode',
    'allowed_tools',
    'disallowed_tools',
    'capabilities',
    'risky_capabilities',
    'policy',
  ],
  remove_agent: ['name'],
  cache_stats: [],
  cache_clear: [],
  dispatch: ['agent', 'task', 'context', 'caller', 'goal', 'response_format', 'return_ref', 'summary_chars', 'timeout_seconds', 'group'],
  dispatch_session: ['agent', 'task', 'session_id', 'context', 'caller', 'goal', 'response_format', 'timeout_seconds'],
  dispatch_stream: ['agent', 'task', 'context', 'caller', 'goal', 'response_format', 'timeout_seconds'],
  dispatch_parallel: ['dispatches', 'aggregate'],
  dispatch_dialogue: ['requester', 'responder', 'topic', 'max_rounds'],
  dispatch_async: ['agent', 'task', 'context', 'caller', 'goal', 'response_format', 'timeout_seconds'],
  dispatch_status: ['job_id'],
  dispatch_wait: ['job_id', 'timeout_seconds'],
  dispatch_cancel: ['job_id'],
  dispatch_jobs: ['status', 'limit'],
  dispatch_gc: ['max_age_days'],
  fetch_result: ['ref', 'max_chars'],
};

let root: string;
let configPath: string;
let client: Client;
let transport: StdioClientTransport;
let stderr = '';
let tools: Tool[];
let startupMs: number;
const transportErrors: Error[] = [];

beforeAll(async () => {
  if (!existsSync(CLI)) {
    throw new Error(`${CLI} is missing: the e2e suite runs the BUILT server. Run 'npm run build' first ('npm test' does it for you).`);
  }
  root = mkdtempSync(join(tmpdir(), 'ad-e2e-'));
  configPath = join(root, 'config', 'agents.yaml');
  transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, 'serve'],
    env: { AGENT_DISPATCH_CONFIG: configPath, HOME: root },
    cwd: root,
    stderr: 'pipe',
  });
  transport.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  client = new Client({ name: 'e2e', version: '0.0.0' });
  // A stray non-protocol line on stdout surfaces here as a parse error.
  client.onerror = (error) => transportErrors.push(error);
  const started = performance.now();
  await client.connect(transport);
  ({ tools } = await client.listTools());
  startupMs = performance.now() - started;
  console.log(`agent-dispatch serve: spawn → first tools/list answer in ${startupMs.toFixed(0)} ms`);
});

afterAll(async () => {
  await client?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function call(name: string, args: Record<string, unknown> = {}) {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const first = result.content[0];
  if (first?.type !== 'text') throw new Error(`unexpected content: ${JSON.stringify(result)}`);
  return { isError: result.isError === true, json: JSON.parse(first.text), text: first.text };
}

describe('agent-dispatch serve over stdio', () => {
  it(`answers the first tools/list within ${STARTUP_BUDGET_MS} ms of spawning`, () => {
    expect(startupMs, `stderr:\n${stderr}`).toBeLessThan(STARTUP_BUDGET_MS);
  });

  it('lists exactly the 21 tools with their parameter names', () => {
    const byName = Object.fromEntries(tools.map((t) => [t.name, t]));
    expect(Object.keys(byName).sort()).toEqual(Object.keys(EXPECTED_PARAMS).sort());
    for (const [name, params] of Object.entries(EXPECTED_PARAMS)) {
      const schema = byName[name]!.inputSchema;
      expect(schema.type, name).toBe('object');
      expect(Object.keys(schema.properties ?? {}).sort(), name).toEqual([...params].sort());
    }
    expect(byName['add_agent']!.inputSchema.required?.sort()).toEqual(['directory', 'name']);
    expect(byName['update_agent']!.inputSchema.required).toEqual(['name']);
  });

  it('identifies itself as agent-dispatch', () => {
    expect(client.getServerVersion()?.name).toBe('agent-dispatch');
    expect(client.getInstructions()).toContain('list_agents');
  });

  it('add_agent → list_agents round trip, persisted to the configured file', async () => {
    const project = join(root, 'projects', 'api');
    mkdirSync(project, { recursive: true });
    const empty = await call('list_agents');
    expect(empty.isError).toBe(true);
    expect(empty.json.error).toContain('No agents configured');

    const added = await call('add_agent', { name: 'api', directory: project, description: 'Платёжный API', policy: 'readonly-inspector' });
    expect(added.isError).toBe(false);
    expect(added.json).toMatchObject({ added: 'api', directory: project, description: 'Платёжный API', policy: 'readonly-inspector' });
    expect(readFileSync(configPath, 'utf8')).toContain('api:');

    const listed = await call('list_agents');
    expect(listed.isError).toBe(false);
    expect(listed.json).toHaveLength(1);
    expect(listed.json[0]).toMatchObject({ name: 'api', directory: project, description: 'Платёжный API', healthy: true, policy: 'readonly-inspector' });
    expect(listed.json[0].policy_summary).toEqual(expect.any(String));
    expect(listed.text).toContain('Платёжный API');
  });

  it('a bad argument is an envelope over the wire too', async () => {
    const { isError, json } = await call('inspect_agent', { name: 42 });
    expect(isError).toBe(true);
    expect(Object.keys(json).sort()).toEqual(['error', 'hint']);
  });

  it('stdout carries nothing but protocol messages', () => {
    expect(transportErrors.map((e) => e.message)).toEqual([]);
  });
});
