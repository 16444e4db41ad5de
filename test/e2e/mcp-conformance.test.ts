/**
 * Every tool, called by a real SDK client over stdio against the BUILT server, with valid and hostile inputs
 * derived from its own input schema: wrong types for each field, missing required fields, 1 MB strings, unknown
 * tool names and bad ids. Each answer must be a tool result (the `{error, hint}` envelope with isError for a
 * refusal), the server must stay up, and stdout must carry nothing but protocol messages (no stack traces).
 * The one agent points at an image that does not exist, so a valid dispatch fails fast with a sandbox error
 * instead of starting a container.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema, type CallToolResult, type Tool } from '@modelcontextprotocol/sdk/types.js';
import { CLI } from '../helpers/dispatch-fixture.js';

const MB = 'x'.repeat(1024 * 1024);
const BAD_IDS = ['../../etc/passwd', 'ABCDEF0123456789ABCDEF0123456789', 'a'.repeat(31), '0'.repeat(32), `${'a'.repeat(32)}/`];
const STACK = /\n\s+at .+\(.+:\d+:\d+\)/;

/** A valid call for each tool (the hostile ones are generated from the schema). */
function validArgs(project: string): Record<string, Record<string, unknown>> {
  return {
    list_agents: {},
    inspect_agent: { name: 'api' },
    list_groups: {},
    inspect_group: { name: 'team' },
    add_agent: { name: 'web', directory: project, policy: 'readonly-inspector' },
    update_agent: { name: 'web', description: 'updated' },
    remove_agent: { name: 'web' },
    cache_stats: {},
    cache_clear: {},
    dispatch: { agent: 'api', task: 'hello', return_ref: true },
    dispatch_session: { agent: 'api', task: 'hello' },
    dispatch_stream: { agent: 'api', task: 'hello' },
    dispatch_parallel: { dispatches: JSON.stringify([{ agent: 'api', task: 'one' }, { agent: 'api', task: 'two' }]) },
    dispatch_dialogue: { requester: 'api', responder: 'api', topic: 'x', max_rounds: 1 },
    dispatch_async: { agent: 'api', task: 'hello' },
    dispatch_status: { job_id: '0'.repeat(32) },
    dispatch_wait: { job_id: '0'.repeat(32), timeout_seconds: 1 },
    dispatch_cancel: { job_id: '0'.repeat(32) },
    dispatch_jobs: { limit: 5 },
    dispatch_gc: { max_age_days: 30 },
    fetch_result: { ref: '0'.repeat(32) },
  };
}

function wrongValue(type: unknown): unknown {
  switch (type) {
    case 'string':
      return 42;
    case 'number':
    case 'integer':
      return 'not a number';
    case 'boolean':
      return 'yes';
    default:
      return { nested: [] };
  }
}

let root: string;
let client: Client;
let transport: StdioClientTransport;
let stderr = '';
let tools: Tool[];
const transportErrors: string[] = [];

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first ('npm test' does it).`);
  root = mkdtempSync(join(tmpdir(), 'ad-conformance-'));
  const configDir = join(root, 'config');
  mkdirSync(join(configDir, 'policies'), { recursive: true });
  const project = join(root, 'projects', 'api');
  mkdirSync(project, { recursive: true });
  writeFileSync(
    join(configDir, 'policies', 'missing-image.yaml'),
    stringify({ version: 1, extends: 'readonly-inspector', image: 'agent-dispatch/agent:does-not-exist-conformance' }),
  );
  writeFileSync(
    join(configDir, 'agents.yaml'),
    stringify({ agents: { api: { directory: project, policy: 'missing-image' } }, groups: { team: { description: 't', members: [{ agent: 'api' }] } }, settings: {} }),
  );
  transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, 'serve'],
    env: { AGENT_DISPATCH_CONFIG: join(configDir, 'agents.yaml'), HOME: root, PATH: process.env['PATH'] ?? '', DOCKER_HOST: process.env['DOCKER_HOST'] ?? 'unix:///var/run/docker.sock' },
    cwd: root,
    stderr: 'pipe',
  });
  transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  client = new Client({ name: 'conformance', version: '0.0.0' });
  client.onerror = (error) => transportErrors.push(error.message);
  await client.connect(transport);
  ({ tools } = await client.listTools());
}, 30_000);

afterAll(async () => {
  await client?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

async function call(name: string, args: unknown) {
  const result = (await client.callTool({ name, arguments: args as Record<string, unknown> }, undefined, { timeout: 60_000 })) as CallToolResult;
  expect(result.content, `${name}: one text item`).toHaveLength(1);
  const first = result.content[0]!;
  if (first.type !== 'text') throw new Error(`${name}: not text: ${JSON.stringify(result)}`);
  const json = JSON.parse(first.text) as Record<string, unknown>;
  expect(first.text, `${name}: a stack trace in the answer`).not.toMatch(STACK);
  return { isError: result.isError === true, json, text: first.text };
}

function expectEnvelope(answer: { isError: boolean; json: Record<string, unknown> }, what: string): void {
  expect(answer.isError, what).toBe(true);
  expect(typeof answer.json['error'], what).toBe('string');
  expect(typeof answer.json['hint'], `${what}: every envelope has a hint`).toBe('string');
  expect(answer.json['hint'], what).not.toBe('');
}

describe('every tool over stdio, valid and hostile inputs', () => {
  it('the server lists the 21 tools, each with an object input schema', () => {
    expect(tools).toHaveLength(21);
    for (const tool of tools) expect(tool.inputSchema.type).toBe('object');
  });

  it('a valid call of every tool is answered (a result, or an envelope that says why)', async () => {
    const args = validArgs(join(root, 'projects', 'api'));
    for (const tool of tools) {
      const answer = await call(tool.name, args[tool.name] ?? {});
      if (answer.isError) expectEnvelope(answer, `${tool.name} (valid)`);
    }
  }, 120_000);

  it('a wrong type for each field, and each required field missing, is an envelope', async () => {
    const args = validArgs(join(root, 'projects', 'api'));
    for (const tool of tools) {
      const properties = (tool.inputSchema.properties ?? {}) as Record<string, { type?: unknown }>;
      for (const [field, schema] of Object.entries(properties)) {
        expectEnvelope(await call(tool.name, { ...args[tool.name], [field]: wrongValue(schema.type) }), `${tool.name}.${field} wrong type`);
      }
      for (const field of tool.inputSchema.required ?? []) {
        const { [field]: _dropped, ...rest } = args[tool.name] ?? {};
        expectEnvelope(await call(tool.name, rest), `${tool.name} without ${field}`);
      }
    }
  }, 120_000);

  it('a 1 MB value in every string field is refused or handled without echoing it back', async () => {
    const args = validArgs(join(root, 'projects', 'api'));
    for (const tool of tools) {
      const properties = (tool.inputSchema.properties ?? {}) as Record<string, { type?: unknown }>;
      for (const [field, schema] of Object.entries(properties)) {
        if (schema.type !== 'string') continue;
        const answer = await call(tool.name, { ...args[tool.name], [field]: MB });
        expectEnvelope(answer, `${tool.name}.${field} = 1 MB`);
        expect(answer.text.length, `${tool.name}.${field}: the answer echoes the 1 MB value`).toBeLessThan(64 * 1024);
      }
    }
  }, 180_000);

  it('bad ids for every job tool are envelopes', async () => {
    for (const id of BAD_IDS) {
      for (const [tool, field] of [['dispatch_status', 'job_id'], ['dispatch_wait', 'job_id'], ['dispatch_cancel', 'job_id'], ['fetch_result', 'ref']] as const) {
        expectEnvelope(await call(tool, { [field]: id, ...(tool === 'dispatch_wait' ? { timeout_seconds: 1 } : {}) }), `${tool}(${id})`);
      }
    }
  });

  it('an unknown tool is an envelope; non-object arguments a JSON-RPC error, never a crash', async () => {
    expectEnvelope(await call('no_such_tool', {}), 'unknown tool');
    // Sent raw: the SDK client's own schema would refuse to send array arguments.
    const raw = (await client.request({ method: 'tools/call', params: { name: 'dispatch', arguments: ['agent', 'task'] as never } }, CallToolResultSchema).catch((e: Error) => e)) as CallToolResult | Error;
    // The SDK refuses params that break the protocol's own schema with a JSON-RPC error before any tool runs.
    if (raw instanceof Error) {
      expect(raw.message).toMatch(/^MCP error -326\d\d/);
      expect(raw.message).not.toMatch(STACK);
    } else expect(raw.isError).toBe(true);
  });

  it('the server is still up, and stdout carried only protocol messages', async () => {
    expect((await client.listTools()).tools).toHaveLength(21);
    expect(transportErrors).toEqual([]);
    expect(stderr).not.toMatch(/This is a bug/);
  });
});
