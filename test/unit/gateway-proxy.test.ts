import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseAllowPattern } from '../../src/gateway/allowlist.js';
import { GATEWAY_PROTOCOL, REFUSAL_HEADER, TOKEN_PREFIX } from '../../src/gateway/protocol.js';
import { createGatewayProxy } from '../../src/gateway/proxy.js';
import {
  agentRequest,
  closeServer,
  connectVia,
  CREDENTIAL,
  dial,
  echoServer,
  type FakeUpstream,
  fakeUpstream,
  listenLocal,
  readUntil,
  startGateway,
  type TestGateway,
} from './gateway-harness.js';

const TOKEN = 'tok-0123456789abcdef';
let upstream: FakeUpstream;
let gw: TestGateway;

beforeEach(async () => {
  upstream = await fakeUpstream();
  gw = await startGateway(upstream.url);
});

afterEach(async () => {
  await gw.close();
  await upstream.close();
});

describe('the Anthropic API (origin-form requests)', () => {
  it('forwards to the upstream with the credential added and the agent credential dropped', async () => {
    gw.proxy.register(TOKEN, []);
    const body = JSON.stringify({ model: 'claude', messages: [] });
    const res = await agentRequest(gw.socketPath, TOKEN, {
      method: 'POST',
      path: '/v1/messages?beta=true',
      headers: { 'x-api-key': 'placeholder', authorization: 'Bearer placeholder', 'content-type': 'application/json', 'proxy-authorization': 'x', 'anthropic-version': '2023-06-01' },
      body,
    });
    expect(res).toMatchObject({ status: 200, body: '{"ok":true}' });
    expect(upstream.seen).toHaveLength(1);
    const seen = upstream.seen[0]!;
    expect(seen).toMatchObject({ method: 'POST', url: '/v1/messages?beta=true', body });
    expect(seen.headers['x-api-key']).toBe(CREDENTIAL.value);
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers['proxy-authorization']).toBeUndefined();
    expect(seen.headers['anthropic-version']).toBe('2023-06-01');
    expect(seen.headers.host).toBe(`127.0.0.1:${upstream.port}`);
    const decisions = await gw.proxy.release(TOKEN);
    expect(decisions).toEqual([
      {
        time: expect.any(String),
        kind: 'api',
        host: '127.0.0.1',
        port: upstream.port,
        allowed: true,
        method: 'POST',
        path: '/v1/messages',
        status: 200,
        bytesOut: Buffer.byteLength(body),
        bytesIn: 11,
      },
    ]);
  });

  it('an authorization credential replaces the agent one; the upstream path prefix is kept', async () => {
    const other = await startGateway(`${upstream.url}/prefix/`, { credential: { header: 'authorization', value: 'Bearer real-oauth' } });
    try {
      other.proxy.register(TOKEN, []);
      await agentRequest(other.socketPath, TOKEN, { path: '/v1/models', headers: { authorization: 'Bearer fake', 'x-api-key': 'fake' } });
      expect(upstream.seen[0]!.url).toBe('/prefix/v1/models');
      expect(upstream.seen[0]!.headers.authorization).toBe('Bearer real-oauth');
      expect(upstream.seen[0]!.headers['x-api-key']).toBeUndefined();
    } finally {
      await other.close();
    }
  });

  it('with no credential configured, none is sent (the agent one is still dropped)', async () => {
    const other = await startGateway(upstream.url, { credential: null });
    try {
      other.proxy.register(TOKEN, []);
      await agentRequest(other.socketPath, TOKEN, { path: '/v1/models', headers: { 'x-api-key': 'fake' } });
      expect(upstream.seen[0]!.headers['x-api-key']).toBeUndefined();
    } finally {
      await other.close();
    }
  });

  it('streams the response chunk by chunk (SSE is not buffered)', async () => {
    gw.proxy.register(TOKEN, []);
    let finish: () => void = () => undefined;
    upstream.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: one\ndata: 1\n\n');
      finish = () => res.end('event: two\ndata: 2\n\n');
    };
    const socket = dial(gw.socketPath, TOKEN);
    socket.write('POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:3128\r\nContent-Length: 2\r\n\r\n{}');
    const first = await readUntil(socket, (t) => t.includes('data: 1'));
    expect(first).toMatch(/^HTTP\/1\.1 200 /);
    expect(first).not.toContain('data: 2');
    const rest = readUntil(socket, (t) => t.includes('data: 2'));
    finish();
    expect(await rest).toContain('event: two');
    socket.destroy();
  });

  it('answers HEAD / and GET / (the base URL probe)', async () => {
    gw.proxy.register(TOKEN, []);
    expect((await agentRequest(gw.socketPath, TOKEN, { method: 'HEAD', path: '/' })).status).toBe(200);
    expect((await agentRequest(gw.socketPath, TOKEN, { path: '/' })).status).toBe(200);
    expect(upstream.seen.map((r) => `${r.method} ${r.url}`)).toEqual(['HEAD /', 'GET /']);
  });

  it.each([
    ['GET', '/admin'],
    ['POST', '/'],
    ['GET', '/v1/../admin'],
    ['GET', '/v1/%2e%2e/admin'],
    ['GET', '/v1/a%2fb'],
    ['GET', '/v2/messages'],
  ])('refuses %s %s with a policy 403', async (method, path) => {
    gw.proxy.register(TOKEN, []);
    const res = await agentRequest(gw.socketPath, TOKEN, { method, path });
    expect(res.status).toBe(403);
    expect(res.headers[REFUSAL_HEADER]).toBe('policy');
    expect(res.body).toContain('only Anthropic API paths (/v1/...)');
    expect(res.body).toContain('do not retry');
    expect(upstream.seen).toEqual([]);
    const [decision] = await gw.proxy.release(TOKEN);
    expect(decision).toMatchObject({ kind: 'api', allowed: false, method, status: 403, path: path.split('?')[0] });
  });

  it('an unreachable upstream is a 502 upstream error, not a refusal', async () => {
    const port = await freePort();
    const other = await startGateway(`http://127.0.0.1:${port}`);
    try {
      other.proxy.register(TOKEN, []);
      const res = await agentRequest(other.socketPath, TOKEN, { method: 'POST', path: '/v1/messages', body: '{}' });
      expect(res.status).toBe(502);
      expect(res.headers[REFUSAL_HEADER]).toBeUndefined();
      expect(res.body).toContain('the Anthropic API upstream is unreachable (ECONNREFUSED)');
      expect(res.body).toContain('not a policy refusal');
      const [decision] = await other.proxy.release(TOKEN);
      expect(decision).toMatchObject({ kind: 'api', allowed: true, status: 502, reason: 'ECONNREFUSED' });
    } finally {
      await other.close();
    }
  });

  it('CONNECT to the gateway itself carries the API (then absolute-form to itself does too)', async () => {
    gw.proxy.register(TOKEN, []);
    const { socket, head } = await connectVia(gw.socketPath, TOKEN, '127.0.0.1:3128');
    expect(head).toMatch(/^HTTP\/1\.1 200 Connection Established\r\n\r\n$/);
    socket.write('GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:3128\r\nx-api-key: fake\r\n\r\n');
    expect(await readUntil(socket, (t) => t.includes('{"ok":true}'))).toMatch(/^HTTP\/1\.1 200 /);
    socket.destroy();
    const res = await agentRequest(gw.socketPath, TOKEN, { path: 'http://localhost:3128/v1/complete?x=1' });
    expect(res.status).toBe(200);
    expect(upstream.seen.map((r) => r.url)).toEqual(['/v1/models', '/v1/complete?x=1']);
    expect(upstream.seen.every((r) => r.headers['x-api-key'] === CREDENTIAL.value)).toBe(true);
    const decisions = await gw.proxy.release(TOKEN);
    expect(decisions.map((d) => `${d.kind} ${d.path}`)).toEqual(['api /v1/models', 'api /v1/complete']);
  });
});

describe('CONNECT tunnels', () => {
  it('tunnels to an allowed destination and records the byte counts when it closes', async () => {
    const echo = await echoServer();
    try {
      gw.proxy.register(TOKEN, [parseAllowPattern(`127.0.0.1:${echo.port}`)]);
      const { socket, head } = await connectVia(gw.socketPath, TOKEN, `127.0.0.1:${echo.port}`);
      expect(head).toBe('HTTP/1.1 200 Connection Established\r\n\r\n');
      socket.write('hello gateway');
      expect(await readUntil(socket, (t) => t === 'hello gateway')).toBe('hello gateway');
      socket.end();
      await new Promise((resolve) => socket.once('close', resolve));
      const decisions = await gw.proxy.release(TOKEN);
      expect(decisions).toEqual([
        { time: expect.any(String), kind: 'connect', host: '127.0.0.1', port: echo.port, allowed: true, bytesOut: 13, bytesIn: 13 },
      ]);
    } finally {
      await echo.close();
    }
  });

  it('refuses an unlisted host with a 403 policy refusal, without a DNS lookup', async () => {
    const lookup = vi.fn(async () => ['93.184.216.34']);
    const other = await startGateway(upstream.url, { lookup });
    try {
      other.proxy.register(TOKEN, [parseAllowPattern('github.com')]);
      const { socket, head } = await connectVia(other.socketPath, TOKEN, 'example.org:443');
      const response = head + (await readUntil(socket));
      expect(response).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
      expect(response).toContain(`\r\n${REFUSAL_HEADER}: policy\r\n`);
      expect(response).toContain('connection: close');
      expect(response).toContain(
        "agent-dispatch egress gateway: example.org:443 is not allowed by this agent's sandbox policy (network.allow): it is not listed in network.allow. This is a permanent policy decision, not a network error: do not retry, and do not look for another route. If the task needs this destination, tell the user to add it to the agent's policy.",
      );
      expect(lookup).not.toHaveBeenCalled();
      expect(await other.proxy.release(TOKEN)).toEqual([
        { time: expect.any(String), kind: 'connect', host: 'example.org', port: 443, allowed: false, reason: 'it is not listed in network.allow', bytesOut: 0, bytesIn: 0 },
      ]);
    } finally {
      await other.close();
    }
  });

  it('refuses a listed name that resolves to a private address', async () => {
    const other = await startGateway(upstream.url, { lookup: async () => ['10.0.0.5'] });
    try {
      other.proxy.register(TOKEN, [parseAllowPattern('*.corp.example')]);
      const { socket, head } = await connectVia(other.socketPath, TOKEN, 'db.corp.example:443');
      const response = head + (await readUntil(socket));
      expect(response).toMatch(/^HTTP\/1\.1 403 /);
      expect(response).toContain('it resolves to a private address (private)');
      const [decision] = await other.proxy.release(TOKEN);
      expect(decision).toMatchObject({ allowed: false, host: 'db.corp.example', reason: expect.stringContaining('resolves to a private address') });
    } finally {
      await other.close();
    }
  });

  it('an allowed name that does not resolve is a 502 upstream error (allowed, with the reason)', async () => {
    const other = await startGateway(upstream.url, { lookup: async () => Promise.reject(Object.assign(new Error('nope'), { code: 'ENOTFOUND' })) });
    try {
      other.proxy.register(TOKEN, [parseAllowPattern('missing.example')]);
      const { socket, head } = await connectVia(other.socketPath, TOKEN, 'missing.example:443');
      const response = head + (await readUntil(socket));
      expect(response).toMatch(/^HTTP\/1\.1 502 /);
      expect(response).not.toContain(REFUSAL_HEADER);
      expect(response).toContain('not a policy refusal');
      const [decision] = await other.proxy.release(TOKEN);
      expect(decision).toMatchObject({ allowed: true, reason: 'DNS lookup of missing.example failed: ENOTFOUND' });
    } finally {
      await other.close();
    }
  });

  it('an allowed destination that refuses the connection is a 502', async () => {
    const port = await freePort();
    gw.proxy.register(TOKEN, [parseAllowPattern(`127.0.0.1:${port}`)]);
    const { socket, head } = await connectVia(gw.socketPath, TOKEN, `127.0.0.1:${port}`);
    const response = head + (await readUntil(socket));
    expect(response).toMatch(/^HTTP\/1\.1 502 /);
    expect(response).toContain('ECONNREFUSED');
    const [decision] = await gw.proxy.release(TOKEN);
    expect(decision).toMatchObject({ kind: 'connect', allowed: true, reason: `connect to 127.0.0.1:${port} failed: ECONNREFUSED` });
  });

  it.each(['[::1]:8080', '[fe80::1%eth0]:443', '127.1.2.3:22', '[::ffff:127.0.0.1]:80'])('refuses the non-public literal %s even under *:*', async (authority) => {
    gw.proxy.register(TOKEN, [parseAllowPattern('*:*')]);
    const { socket, head } = await connectVia(gw.socketPath, TOKEN, authority);
    expect(head + (await readUntil(socket))).toMatch(/^HTTP\/1\.1 403 [^]*it is a private address \((loopback|link-local)\)/);
    const [decision] = await gw.proxy.release(TOKEN);
    expect(decision).toMatchObject({ kind: 'connect', allowed: false });
  });

  it('answers 400 to a CONNECT without host:port', async () => {
    gw.proxy.register(TOKEN, []);
    const { socket, head } = await connectVia(gw.socketPath, TOKEN, 'no-port');
    expect(head).toMatch(/^HTTP\/1\.1 400 /);
    socket.destroy();
  });
});

describe('plain HTTP proxy requests (absolute form)', () => {
  it('forwards to an allowed destination with Host kept and Proxy-* dropped', async () => {
    const target = await fakeUpstream();
    try {
      gw.proxy.register(TOKEN, [parseAllowPattern(`127.0.0.1:${target.port}`)]);
      const res = await agentRequest(gw.socketPath, TOKEN, {
        path: `http://127.0.0.1:${target.port}/file.txt?secret=1`,
        headers: { host: `127.0.0.1:${target.port}`, 'proxy-authorization': 'Basic x', 'x-api-key': 'agent-own' },
      });
      expect(res.status).toBe(200);
      expect(target.seen[0]).toMatchObject({ url: '/file.txt?secret=1' });
      expect(target.seen[0]!.headers.host).toBe(`127.0.0.1:${target.port}`);
      expect(target.seen[0]!.headers['proxy-authorization']).toBeUndefined();
      expect(target.seen[0]!.headers['x-api-key']).toBe('agent-own');
      expect(await gw.proxy.release(TOKEN)).toEqual([
        { time: expect.any(String), kind: 'http', host: '127.0.0.1', port: target.port, allowed: true, method: 'GET', path: '/file.txt', status: 200, bytesOut: 0, bytesIn: 11 },
      ]);
    } finally {
      await target.close();
    }
  });

  it('refuses an unlisted destination (default port 80)', async () => {
    gw.proxy.register(TOKEN, [parseAllowPattern('example.com')]);
    const res = await agentRequest(gw.socketPath, TOKEN, { path: 'http://example.com/x?q=1', headers: { host: 'example.com' } });
    expect(res.status).toBe(403);
    expect(res.headers[REFUSAL_HEADER]).toBe('policy');
    expect(res.body).toContain('example.com:80 is not allowed');
    const [decision] = await gw.proxy.release(TOKEN);
    expect(decision).toMatchObject({ kind: 'http', host: 'example.com', port: 80, allowed: false, path: '/x', status: 403 });
  });
});

describe('tokens', () => {
  it('refuses an unknown token, and a connection without the token line', async () => {
    for (const first of [`${TOKEN_PREFIX}nobody\n`, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n']) {
      const socket = (await import('node:net')).connect(gw.socketPath);
      socket.write(first);
      const response = await readUntil(socket);
      expect(response).toMatch(/^HTTP\/1\.1 403 /);
      expect(response).toContain(`${REFUSAL_HEADER}: policy`);
      expect(response).toContain('did not present a valid dispatch token');
    }
    expect(upstream.seen).toEqual([]);
  });

  it('release closes open tunnels, returns their decisions, and refuses the token afterwards', async () => {
    const echo = await echoServer();
    try {
      gw.proxy.register(TOKEN, [parseAllowPattern(`127.0.0.1:${echo.port}`)]);
      const { socket } = await connectVia(gw.socketPath, TOKEN, `127.0.0.1:${echo.port}`);
      socket.write('ping');
      await readUntil(socket, (t) => t === 'ping');
      const closed = new Promise((resolve) => socket.once('close', resolve));
      const decisions = await gw.proxy.release(TOKEN);
      await closed;
      expect(decisions).toEqual([expect.objectContaining({ kind: 'connect', allowed: true, bytesOut: 4, bytesIn: 4 })]);
      const again = await connectVia(gw.socketPath, TOKEN, `127.0.0.1:${echo.port}`);
      expect(again.head).toMatch(/^HTTP\/1\.1 403 /);
      await expect(gw.proxy.release(TOKEN)).rejects.toThrow('unknown token');
    } finally {
      await echo.close();
    }
  });

  it('release waits for a streaming API response cut short, and records it', async () => {
    gw.proxy.register(TOKEN, []);
    upstream.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
    };
    const socket = dial(gw.socketPath, TOKEN);
    socket.write('POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1:3128\r\nContent-Length: 0\r\n\r\n');
    await readUntil(socket, (t) => t.includes('data: 1'));
    const decisions = await gw.proxy.release(TOKEN);
    expect(decisions).toEqual([expect.objectContaining({ kind: 'api', status: 200, bytesIn: 9 })]);
  });

  it('tokens are independent: each sees only its own decisions', async () => {
    gw.proxy.register('a-token', []);
    gw.proxy.register('b-token', []);
    await agentRequest(gw.socketPath, 'a-token', { path: '/v1/a' });
    await agentRequest(gw.socketPath, 'b-token', { path: '/v1/b' });
    expect((await gw.proxy.release('a-token')).map((d) => d.path)).toEqual(['/v1/a']);
    expect((await gw.proxy.release('b-token')).map((d) => d.path)).toEqual(['/v1/b']);
  });

  it('register validates the token', () => {
    expect(() => gw.proxy.register('has space', [])).toThrow();
    expect(() => gw.proxy.register('', [])).toThrow();
  });
});

describe('listen and canary', () => {
  it('the socket is mode 0666 and a stale socket file is replaced', async () => {
    expect(statSync(gw.socketPath).mode & 0o777).toBe(0o666);
    const dir = mkdtempSync(join(tmpdir(), 'ad-gw-stale-'));
    const path = join(dir, 'g.sock');
    // A socket file left behind the way a killed gateway leaves it.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    expect(lstatSync(path).isSocket()).toBe(true);
    const proxy = createGatewayProxy({ protocol: GATEWAY_PROTOCOL, socketPath: path, upstream: upstream.url, credential: null });
    try {
      await proxy.listen();
      expect(await proxy.canary()).toMatchObject({ ok: true });
    } finally {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to delete a regular file at the socket path', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ad-gw-file-'));
    const path = join(dir, 'g.sock');
    writeFileSync(path, 'not a socket');
    const proxy = createGatewayProxy({ protocol: GATEWAY_PROTOCOL, socketPath: path, upstream: upstream.url, credential: null });
    try {
      await expect(proxy.listen()).rejects.toThrow('exists and is not a socket');
      expect(existsSync(path)).toBe(true);
    } finally {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the canary passes through the real socket and leaves no token behind', async () => {
    const result = await gw.proxy.canary();
    expect(result).toEqual({ ok: true, detail: expect.stringContaining("tunnelled 'canary-ok'") });
    expect((await gw.proxy.canary()).ok).toBe(true);
  });

  it('concurrent canaries (parallel dispatches of one agent) all pass: one finishing never cuts another', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => gw.proxy.canary()));
    expect(results.map((r) => r.detail).filter((d, i) => !results[i]!.ok)).toEqual([]);
  });

  it('the canary fails, precisely, once the socket file is gone', async () => {
    unlinkSync(gw.socketPath);
    const result = await gw.proxy.canary();
    expect(result.ok).toBe(false);
    expect(result.detail).toBe(`cannot use the gateway socket ${gw.socketPath}: ENOENT`);
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  const port = await listenLocal(server);
  await closeServer(server);
  return port;
}
