/**
 * The multi-user HTTP service in process (startHttpService) with a FAKE sandbox behind it: real HTTP, the SDK's
 * own StreamableHTTPClientTransport, real tokens. What must hold: no or a bad token → 401 with a hint; a forged
 * Origin or Host → 403; only /mcp answers; a session belongs to the user who opened it; revoke applies to the
 * next request; every user's dispatches share one concurrency budget; the Unix socket is 0660; beyond loopback
 * only with TLS, and TLS works; a dropped SSE stream resumes with Last-Event-ID, for its own session only.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { TokenStore } from '../../src/config/tokens.js';
import { MAX_UPLOADS_PER_USER, startHttpService, type HttpService, type HttpServiceOptions } from '../../src/mcp/http/service.js';
import { SSE_RETRY_MS } from '../../src/mcp/http/sessions.js';
import { FakeSandbox, gate, outcome, resultLine } from '../helpers/fake-sandbox.js';

const INIT = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } };
const MCP_HEADERS = { Accept: 'application/json, text/event-stream', 'Content-Type': 'application/json' };

let root: string;
let env: Record<string, string>;
let tokens: TokenStore;
let sandbox: FakeSandbox;
let service: HttpService | undefined;
const clients: Client[] = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-http-'));
  const configDir = join(root, 'config');
  mkdirSync(join(configDir, 'policies'), { recursive: true });
  const project = join(root, 'project');
  mkdirSync(project);
  writeFileSync(
    join(configDir, 'policies', 'open.yaml'),
    stringify({ version: 1, description: 'unit', repo: 'ro', credentials: 'env', network: { mode: 'open' }, env: { pass: [], set: {} }, tools: { permission_mode: 'default', allow: null, deny: [] }, resources: { memory: '1g', cpus: 1, pids: 256, nofile: 1024, tmp_size: '64m', timeout: 600 }, image: 'agent-dispatch/agent:unit' }),
  );
  writeFileSync(join(configDir, 'agents.yaml'), stringify({ agents: { api: { directory: project, policy: 'open', description: 'the API', users: ['alice', 'bob'] }, solo: { directory: project, policy: 'open', description: 'alice only', users: ['alice'] } }, groups: {}, settings: { max_concurrency: 1 } }));
  env = { AGENT_DISPATCH_CONFIG: join(configDir, 'agents.yaml'), AGENT_DISPATCH_TOKENS_FILE: join(root, 'tokens.json'), ANTHROPIC_API_KEY: 'sk-unit' };
  // Anything reading process.env instead of the injected env would find no config here.
  vi.stubEnv('AGENT_DISPATCH_CONFIG', join(root, 'nowhere', 'agents.yaml'));
  tokens = new TokenStore(env['AGENT_DISPATCH_TOKENS_FILE']!);
  sandbox = new FakeSandbox((run) => {
    run.onStdoutLine?.(resultLine());
    return outcome({ stdoutLines: [resultLine()] });
  });
});

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  await service?.close();
  service = undefined;
  rmSync(root, { recursive: true, force: true });
});

async function start(options: Partial<HttpServiceOptions> = {}): Promise<HttpService> {
  service = await startHttpService({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, env, sandbox, ...options });
  return service;
}

async function connect(url: string, token: string): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const client = new Client({ name: 'http-test', version: '0.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { Authorization: `Bearer ${token}` } } });
  await client.connect(transport);
  clients.push(client);
  return { client, transport };
}

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: any;
}

/** One HTTP request with full control of the headers (Host included), over TCP, a Unix socket or TLS. */
function raw(target: { url?: string; socketPath?: string; ca?: Buffer }, options: { method?: string; path?: string; headers?: OutgoingHttpHeaders; body?: string | Buffer } = {}): Promise<RawAnswer> {
  const url = new URL(target.url ?? 'http://localhost/mcp');
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      { host: url.hostname, port: url.port, path: options.path ?? url.pathname, method: options.method ?? 'POST', headers: options.headers, socketPath: target.socketPath, ca: target.ca },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(body.startsWith('event:') ? body.split('\ndata: ')[1]!.split('\n')[0]! : body);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const initialize = (target: Parameters<typeof raw>[0], token: string, headers: OutgoingHttpHeaders = {}) =>
  raw(target, { headers: { ...MCP_HEADERS, Authorization: `Bearer ${token}`, ...headers }, body: JSON.stringify(INIT) });

describe('authentication', () => {
  it('no token: 401, WWW-Authenticate: Bearer, and a hint that says how to get one', async () => {
    const { url } = await start();
    const r = await raw({ url }, { headers: MCP_HEADERS, body: JSON.stringify(INIT) });
    expect(r.status).toBe(401);
    expect(r.headers['www-authenticate']).toBe('Bearer realm="agent-dispatch"');
    expect(r.json).toEqual({ error: 'Missing bearer token.', hint: expect.stringContaining("'agent-dispatch token create YOUR_NAME'") });
  });

  it('a bad, a malformed and a revoked token: 401 invalid_token; the SDK client cannot connect', async () => {
    const { url } = await start();
    const { token, info } = await tokens.create('alice');
    for (const bad of [`${token.slice(0, -2)}xx`, 'not-a-token', token]) {
      if (bad === token) await tokens.revoke('id', info.id);
      const r = await initialize({ url }, bad);
      expect(r.status, bad).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer realm="agent-dispatch", error="invalid_token"');
      expect(r.json.error).toBe('Invalid or revoked token.');
    }
    await expect(connect(url, token)).rejects.toMatchObject({ code: 401, message: expect.stringContaining('Invalid or revoked token.') });
  });

  it('with a token the SDK client connects and lists the tools', async () => {
    const { url } = await start();
    const { client } = await connect(url, (await tokens.create('alice')).token);
    const names = (await client.listTools()).tools.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(['list_agents', 'dispatch', 'dispatch_async', 'dispatch_status']));
  });
});

describe('DNS rebinding and cross-site requests', () => {
  it('a forged Origin: 403 with a hint, before the token is even looked at', async () => {
    const { url } = await start();
    const token = (await tokens.create('alice')).token;
    const r = await initialize({ url }, token, { Origin: 'http://evil.example' });
    expect(r.status).toBe(403);
    expect(r.json).toEqual({ error: "Origin 'http://evil.example' is not allowed.", hint: expect.stringContaining('--allowed-host') });
    expect((await initialize({ url }, token, { Origin: 'null' })).status).toBe(403);
    // The service's own origin is fine (and so is no Origin at all, as above).
    expect((await initialize({ url }, token, { Origin: `http://localhost:${new URL(url).port}` })).status).toBe(200);
  });

  it('a Host that is not the service (a rebound DNS name, another port): 403', async () => {
    const { url } = await start();
    const token = (await tokens.create('alice')).token;
    const port = Number(new URL(url).port);
    for (const host of ['evil.example', `evil.example:${port}`, `127.0.0.1:${port + 1}`, `localhost.evil.example:${port}`, `user@localhost:${port}`]) {
      const r = await initialize({ url }, token, { Host: host });
      expect(r.status, host).toBe(403);
      expect(r.json.hint).toContain('--allowed-host');
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`]) expect((await initialize({ url }, token, { Host: host })).status, host).toBe(200);
  });

  it('--allowed-host adds a name (Host and Origin)', async () => {
    const { url } = await start({ allowedHosts: ['dispatch.internal'] });
    const token = (await tokens.create('alice')).token;
    const port = new URL(url).port;
    expect((await initialize({ url }, token, { Host: `dispatch.internal:${port}`, Origin: `http://dispatch.internal:${port}` })).status).toBe(200);
  });
});

describe('routing and limits', () => {
  it('only /mcp answers: any other path is 404 with the endpoint in the hint', async () => {
    const { url } = await start();
    const token = (await tokens.create('alice')).token;
    for (const path of ['/', '/mcp/', '/other', '/.well-known/oauth-protected-resource']) {
      const r = await raw({ url }, { method: 'GET', path, headers: { Authorization: `Bearer ${token}` } });
      expect(r.status, path).toBe(404);
      expect(r.json).toEqual({ error: 'Not found.', hint: 'The MCP endpoint is /mcp.' });
    }
  });

  it(`one user trickling request bodies holds at most ${MAX_UPLOADS_PER_USER} at once (429 beyond); another user is unaffected, and closed ones free their place`, async () => {
    const { url } = await start();
    const alice = (await tokens.create('alice')).token;
    const { port } = new URL(url);
    const trickles = Array.from({ length: MAX_UPLOADS_PER_USER }, () => {
      const socket = netConnect(Number(port), '127.0.0.1');
      socket.write(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${alice}\r\nContent-Type: application/json\r\nContent-Length: 4000000\r\n\r\n{"jsonrpc":`);
      return socket;
    });
    try {
      await vi.waitFor(async () => expect((await initialize({ url }, alice)).status).toBe(429), { timeout: 5000, interval: 50 });
      const refused = await initialize({ url }, alice);
      expect(refused.json).toEqual({ error: `Too many requests of user 'alice' are still sending their bodies (limit ${MAX_UPLOADS_PER_USER}).`, hint: expect.stringContaining('Send each request body at once') });
      expect((await initialize({ url }, (await tokens.create('bob')).token)).status).toBe(200);
    } finally {
      for (const socket of trickles) socket.destroy();
    }
    await vi.waitFor(async () => expect((await initialize({ url }, alice)).status).toBe(200), { timeout: 5000, interval: 50 });
  });

  it('one user may have maxRequestsPerUser messages in flight (429 beyond; a batch counts each message); another user is unaffected; finished calls free their place', async () => {
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    sandbox.scripts = [
      async (run) => {
        await blocked;
        run.onStdoutLine?.(resultLine());
        return outcome({ stdoutLines: [resultLine()] });
      },
    ];
    const { url } = await start({ maxRequestsPerUser: 2 });
    const aliceToken = (await tokens.create('alice')).token;
    const alice = await connect(url, aliceToken);
    const bob = await connect(url, (await tokens.create('bob')).token);
    // The client's own event stream (GET, once it is open) holds one place; one long call takes the other.
    const long = alice.client.callTool({ name: 'dispatch', arguments: { agent: 'api', task: 'held' } });
    await vi.waitFor(() => expect(sandbox.runs).toHaveLength(1));
    const headers = { ...MCP_HEADERS, Authorization: `Bearer ${aliceToken}`, 'Mcp-Session-Id': alice.transport.sessionId!, 'Mcp-Protocol-Version': '2025-06-18' };
    const list = (id: number) => ({ jsonrpc: '2.0', id, method: 'tools/list' });
    await vi.waitFor(async () => expect((await raw({ url }, { headers, body: JSON.stringify(list(6)) })).status).toBe(429));
    const refused = await raw({ url }, { headers, body: JSON.stringify(list(7)) });
    expect(refused.json).toEqual({ error: "Too many calls of user 'alice' in flight (limit 2).", hint: expect.stringContaining('Wait for calls in flight') });
    expect((await bob.client.listTools()).tools.length).toBeGreaterThan(0);
    release();
    await long;
    await vi.waitFor(async () => expect((await raw({ url }, { headers, body: JSON.stringify(list(8)) })).status).toBe(200));
    expect((await raw({ url }, { headers, body: JSON.stringify([list(9), list(10), list(11)]) })).status).toBe(429);
  });

  it('a body over 4 MiB: 413; invalid JSON: 400 parse error; no session id on a non-initialize: 400', async () => {
    const { url } = await start();
    const token = (await tokens.create('alice')).token;
    const auth = { ...MCP_HEADERS, Authorization: `Bearer ${token}` };
    const big = await raw({ url }, { headers: auth, body: Buffer.alloc(4 * 1024 * 1024 + 1, 0x20) });
    expect(big.status).toBe(413);
    expect(big.json.error).toContain('4 MiB');
    const bad = await raw({ url }, { headers: auth, body: '{"jsonrpc":' });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe(-32700);
    const noSession = await raw({ url }, { headers: auth, body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }) });
    expect(noSession.status).toBe(400);
    expect(noSession.json.error.data.hint).toContain('initialize');
  });
});

describe('sessions and users', () => {
  it('a session belongs to the user who opened it: another user’s token on it is 404, like an unknown session', async () => {
    const { url } = await start();
    const alice = (await tokens.create('alice')).token;
    const bob = (await tokens.create('bob')).token;
    const { client, transport } = await connect(url, alice);
    const session = transport.sessionId!;
    expect(session).toMatch(/^[0-9a-f-]{36}$/);
    const list = JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' });
    const asBob = await raw({ url }, { headers: { ...MCP_HEADERS, Authorization: `Bearer ${bob}`, 'Mcp-Session-Id': session, 'Mcp-Protocol-Version': '2025-06-18' }, body: list });
    expect(asBob.status).toBe(404);
    const unknown = await raw({ url }, { headers: { ...MCP_HEADERS, Authorization: `Bearer ${bob}`, 'Mcp-Session-Id': '00000000-0000-4000-8000-000000000000', 'Mcp-Protocol-Version': '2025-06-18' }, body: list });
    expect(asBob.json).toEqual(unknown.json);
    expect((await client.listTools()).tools.length).toBeGreaterThan(0);
  });

  it("the token's user is the session's caller: own agents, own jobs, no config changes", async () => {
    const { url } = await start();
    const alice = (await connect(url, (await tokens.create('alice')).token)).client;
    const bob = (await connect(url, (await tokens.create('bob')).token)).client;
    const call = async (client: Client, name: string, args: Record<string, unknown> = {}) => {
      const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
      return { isError: result.isError === true, json: JSON.parse((result.content[0] as { text: string }).text) };
    };
    expect((await call(alice, 'list_agents')).json.map((a: { name: string }) => a.name)).toEqual(['api', 'solo']);
    expect((await call(bob, 'list_agents')).json.map((a: { name: string }) => a.name)).toEqual(['api']);
    const { job_id } = (await call(alice, 'dispatch_async', { agent: 'api', task: 'mine' })).json;
    expect((await call(alice, 'dispatch_wait', { job_id, timeout_seconds: 30 })).json).toMatchObject({ id: job_id, status: 'done' });
    const theirs = await call(bob, 'dispatch_status', { job_id });
    expect(theirs.isError).toBe(true);
    expect(theirs.json.error).toContain(job_id);
    const update = await call(bob, 'update_agent', { name: 'api', description: 'changed' });
    expect(update.json.error).toBe("update_agent is for admins of this dispatch service; user 'bob' is not one.");
  });

  it('revoking a user’s token ends their open session at the next request (no restart)', async () => {
    const { url } = await start();
    const { client } = await connect(url, (await tokens.create('alice')).token);
    expect((await client.listTools()).tools.length).toBeGreaterThan(0);
    await new TokenStore(env['AGENT_DISPATCH_TOKENS_FILE']!).revoke('user', 'alice');
    await expect(client.listTools()).rejects.toMatchObject({ code: 401 });
  });

  it("revoking a token also ends the sessions it opened, open streams included, within a sweep; the user's other token keeps its session", async () => {
    const { url } = await start({ sweepMs: 50 });
    const first = await tokens.create('alice');
    const second = await tokens.create('alice');
    await connect(url, first.token);
    const { client: kept } = await connect(url, second.token);
    expect(service!.sessionCount()).toBe(2);
    await new TokenStore(env['AGENT_DISPATCH_TOKENS_FILE']!).revoke('id', first.info.id);
    await vi.waitFor(() => expect(service!.sessionCount()).toBe(1), { timeout: 2000, interval: 50 });
    expect((await kept.listTools()).tools.length).toBeGreaterThan(0);
  });

  it('two users dispatch at once through one core: settings.max_concurrency 1 holds across sessions', async () => {
    let running = 0;
    let most = 0;
    sandbox.scripts = [
      async (run) => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 150));
        running--;
        run.onStdoutLine?.(resultLine());
        return outcome({ stdoutLines: [resultLine()] });
      },
    ];
    const { url } = await start();
    const sessions = await Promise.all(['alice', 'bob', 'alice', 'bob'].map(async (user) => (await connect(url, (await tokens.create(user)).token)).client));
    const answers = await Promise.all(sessions.map((c, i) => c.callTool({ name: 'dispatch', arguments: { agent: 'api', task: `task ${i}` } }) as Promise<CallToolResult>));
    for (const answer of answers) expect(JSON.parse((answer.content[0] as { text: string }).text)).toMatchObject({ success: true, result: 'Hello from the agent' });
    expect(sandbox.runs).toHaveLength(4);
    expect(most).toBe(1);
    expect(service!.sessionCount()).toBe(4);
  });

  it('a session idle past idleSessionMs is closed (its id then answers 404); over maxSessions a new one gets 503', async () => {
    const { url } = await start({ idleSessionMs: 200, maxSessions: 2 });
    const token = (await tokens.create('alice')).token;
    const first = await initialize({ url }, token);
    expect((await initialize({ url }, token)).status).toBe(200);
    const third = await initialize({ url }, token);
    expect(third.status).toBe(503);
    expect(third.json).toEqual({ error: 'Too many open sessions.', hint: expect.stringContaining('idle sessions are closed') });
    await new Promise((r) => setTimeout(r, 1500));
    expect(service!.sessionCount()).toBe(0);
    const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' });
    const headers = { ...MCP_HEADERS, Authorization: `Bearer ${token}`, 'Mcp-Session-Id': String(first.headers['mcp-session-id']), 'Mcp-Protocol-Version': '2025-06-18' };
    expect((await raw({ url }, { headers, body: list })).status).toBe(404);
  });

  it("one user opening sessions in a loop hits their own cap (429), not everyone's: another user still gets in", async () => {
    const { url } = await start({ maxSessions: 10, maxSessionsPerUser: 2 });
    const alice = (await tokens.create('alice')).token;
    expect((await initialize({ url }, alice)).status).toBe(200);
    expect((await initialize({ url }, alice)).status).toBe(200);
    const over = await initialize({ url }, alice);
    expect(over.status).toBe(429);
    expect(over.json).toEqual({ error: "Too many open sessions for user 'alice' (limit 2).", hint: expect.stringContaining('Close MCP clients you do not use') });
    expect((await initialize({ url }, (await tokens.create('bob')).token)).status).toBe(200);
    expect(service!.sessionCount()).toBe(3);
  });

  it('close ends every session and stops listening', async () => {
    const { url } = await start();
    await connect(url, (await tokens.create('alice')).token);
    expect(service!.sessionCount()).toBe(1);
    await service!.close();
    expect(service!.sessionCount()).toBe(0);
    await expect(raw({ url }, { method: 'GET' })).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('where it listens', () => {
  it('a Unix socket: mode 0660, MCP over it works; a stale socket is replaced, a regular file is refused', async () => {
    const socketPath = join(root, 'ad.sock');
    writeFileSync(socketPath, 'not a socket');
    await expect(start({ listen: { kind: 'socket', path: socketPath } })).rejects.toThrow(/exists and is not a socket; refusing to replace it/);
    expect(readFileSync(socketPath, 'utf8')).toBe('not a socket');
    rmSync(socketPath);

    const first = await start({ listen: { kind: 'socket', path: socketPath } });
    await expect(startHttpService({ listen: { kind: 'socket', path: socketPath }, env, sandbox })).rejects.toThrow(/Another server is listening/);
    await first.close();
    // A socket file left behind by a server that died (nothing answers on it):
    const stale = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.exit(0))`]);
    expect(stale.status).toBe(0);
    expect(statSync(socketPath).isSocket()).toBe(true);

    await start({ listen: { kind: 'socket', path: socketPath } });
    expect(statSync(socketPath).mode & 0o777).toBe(0o660);
    const token = (await tokens.create('alice')).token;
    const r = await initialize({ socketPath }, token);
    expect(r.status).toBe(200);
    expect(r.json.result.serverInfo.name).toBe('agent-dispatch');
    expect((await initialize({ socketPath }, token, { Host: 'evil.example' })).status).toBe(403);
  });

  it('beyond loopback without TLS: refused, with the way out in the hint', async () => {
    const refused = startHttpService({ listen: { kind: 'tcp', host: '0.0.0.0', port: 0 }, env, sandbox });
    await expect(refused).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('without TLS'), hint: expect.stringContaining('--tls-cert FILE --tls-key FILE') });
  });

  it('TLS: an openssl certificate serves https; plain http on that port gets no MCP answer', async () => {
    const cert = join(root, 'cert.pem');
    const key = join(root, 'key.pem');
    const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
    expect(made.status, made.stderr?.toString()).toBe(0);
    const { url } = await start({ tls: { cert: readFileSync(cert), key: readFileSync(key) } });
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const token = (await tokens.create('alice')).token;
    const r = await initialize({ url, ca: readFileSync(cert) }, token);
    expect(r.status).toBe(200);
    expect(r.headers['mcp-session-id']).toBeTruthy();
    await expect(initialize({ url }, token)).rejects.toThrow(/self-signed|certificate/);
    const plain = await initialize({ url: url.replace('https:', 'http:') }, token).catch((e: Error) => e);
    expect(plain instanceof Error ? plain.message : (plain as RawAnswer).status).not.toBe(200);
  });

  it('a mismatched key: refused with a hint', async () => {
    const a = join(root, 'a');
    mkdirSync(a);
    for (const n of ['1', '2']) spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(a, `k${n}`), '-out', join(a, `c${n}`), '-days', '1', '-subj', '/CN=localhost']);
    await expect(start({ tls: { cert: readFileSync(join(a, 'c1')), key: readFileSync(join(a, 'k2')) } })).rejects.toThrow(/TLS certificate or key is unusable/);
  });
});

interface SseEvent {
  id?: string;
  retry?: number;
  data: string;
}

/** An SSE response read as it arrives: `until` waits for an event, `drop` cuts the connection (a flaky network). */
interface SseReader {
  status: number;
  body: string;
  until(match: (e: SseEvent) => boolean): Promise<SseEvent>;
  drop(): void;
}

function sse(url: string, options: { method: 'GET' | 'POST'; headers: OutgoingHttpHeaders; body?: string }): Promise<SseReader> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const events: SseEvent[] = [];
    const waiters: Array<() => boolean> = [];
    const req = httpRequest({ host: target.hostname, port: target.port, path: target.pathname, method: options.method, headers: options.headers }, (res) => {
      let buffer = '';
      const reader: SseReader = {
        status: res.statusCode ?? 0,
        body: '',
        until: (match) =>
          new Promise((found, fail) => {
            const timer = setTimeout(() => fail(new Error(`no such event within 5 s; got ${JSON.stringify(events)} ${reader.body}`)), 5000);
            const check = (): boolean => {
              const event = events.find(match);
              if (event === undefined) return false;
              clearTimeout(timer);
              found(event);
              return true;
            };
            if (!check()) waiters.push(check);
          }),
        drop: () => req.destroy(),
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        reader.body += chunk;
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const event: SseEvent = { data: '' };
          for (const line of buffer.slice(0, end).split('\n')) {
            const [field, ...rest] = line.split(':');
            const value = rest.join(':').replace(/^ /, '');
            if (field === 'id') event.id = value;
            else if (field === 'retry') event.retry = Number(value);
            else if (field === 'data') event.data += value;
          }
          buffer = buffer.slice(end + 2);
          events.push(event);
          for (const waiter of waiters.splice(0)) if (!waiter()) waiters.push(waiter);
        }
      });
      res.on('error', () => undefined);
      resolve(reader);
    });
    req.on('error', (error: NodeJS.ErrnoException) => (error.code === 'ECONNRESET' ? undefined : reject(error)));
    req.end(options.body);
  });
}

describe('resuming a dropped event stream (Last-Event-ID)', () => {
  const answerOf = (e: SseEvent) => e.data.includes('"result"') && e.data.includes('"id":42');

  it('a dispatch whose POST stream drops mid-call is resumed by GET + Last-Event-ID and answers there; another user or session with that id gets nothing', async () => {
    const running = gate();
    const finished = gate();
    sandbox.scripts = [running.script, finished.script];
    const { url } = await start();
    const aliceToken = (await tokens.create('alice')).token;
    const bobToken = (await tokens.create('bob')).token;
    const { transport } = await connect(url, aliceToken);
    const session = transport.sessionId!;
    const headers = (token: string, sessionId: string) => ({ Authorization: `Bearer ${token}`, 'Mcp-Session-Id': sessionId, 'Mcp-Protocol-Version': '2025-11-25' });
    const call = (id: number, task: string) => sse(url, { method: 'POST', headers: { ...MCP_HEADERS, ...headers(aliceToken, session) }, body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'dispatch', arguments: { agent: 'api', task } } }) });
    const resume = (token: string, sessionId: string, lastEventId: string) => sse(url, { method: 'GET', headers: { Accept: 'text/event-stream', ...headers(token, sessionId), 'Last-Event-ID': lastEventId } });

    // The stream opens with a priming event: an id to resume from, no data, and the retry interval.
    const post = await call(42, 'long');
    expect(post.status).toBe(200);
    const priming = await post.until((e) => e.id !== undefined);
    expect(priming).toEqual({ id: expect.any(String), retry: SSE_RETRY_MS, data: '' });
    await running.started;
    post.drop();

    // Not another user (their token on alice's session is the unknown session it always was), not alice's other
    // session, not bob's own session: the event id is a cursor only within the session that minted it.
    const asBob = await resume(bobToken, session, priming.id!);
    await new Promise((r) => setTimeout(r, 100));
    expect(asBob.status).toBe(404);
    expect(asBob.body).not.toContain('gated answer');
    const other = await connect(url, aliceToken);
    const bobs = await connect(url, bobToken);
    for (const [token, sessionId] of [[aliceToken, other.transport.sessionId!], [bobToken, bobs.transport.sessionId!]] as const) {
      const r = await resume(token, sessionId, priming.id!);
      expect(r.status).toBe(400);
    }

    // Resumed while the dispatch still runs: its answer comes on the GET stream, which then ends.
    const resumed = await resume(aliceToken, session, priming.id!);
    expect(resumed.status).toBe(200);
    running.release();
    const answer = await resumed.until(answerOf);
    expect(JSON.parse(JSON.parse(answer.data).result.content[0].text)).toMatchObject({ success: true, result: 'gated answer' });

    // Answered while nobody listened: the stored answer is replayed to the resume.
    const again = await call(42, 'answered while away');
    const primed = await again.until((e) => e.id !== undefined);
    await finished.started;
    again.drop();
    finished.release();
    // Time for the answer to be stored with no stream to take it (were it late, it would come live: same result).
    await new Promise((r) => setTimeout(r, 200));
    const replayed = await resume(aliceToken, session, primed.id!);
    expect(JSON.parse(JSON.parse((await replayed.until(answerOf)).data).result.content[0].text)).toMatchObject({ success: true, result: 'gated answer' });
    replayed.drop();
    expect(asBob.body).not.toContain('gated answer');
  });
});
