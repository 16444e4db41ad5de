/** In-process pieces for the gateway tests: a gateway on a tmp socket, fake upstreams, and agent-side clients. */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingHttpHeaders, request, type Server as HttpServer, type ServerResponse } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Lookup } from '../../src/gateway/destination.js';
import { GATEWAY_PROTOCOL, type GatewayCredential, TOKEN_PREFIX } from '../../src/gateway/protocol.js';
import { createGatewayProxy, type GatewayProxy } from '../../src/gateway/proxy.js';

export const CREDENTIAL: GatewayCredential = { header: 'x-api-key', value: 'sk-ant-real-credential-0123456789' };

export interface TestGateway {
  proxy: GatewayProxy;
  socketPath: string;
  dir: string;
  close(): Promise<void>;
}

export async function startGateway(
  upstream: string,
  options: { lookup?: Lookup; credential?: GatewayCredential | null } = {},
): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), 'ad-gw-'));
  const socketPath = join(dir, 'gateway.sock');
  const proxy = createGatewayProxy(
    { protocol: GATEWAY_PROTOCOL, socketPath, upstream, credential: options.credential === undefined ? CREDENTIAL : options.credential },
    options.lookup ? { lookup: options.lookup } : {},
  );
  await proxy.listen();
  return {
    proxy,
    socketPath,
    dir,
    async close() {
      await proxy.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What the fake Anthropic API saw. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface FakeUpstream {
  url: string;
  port: number;
  seen: SeenRequest[];
  /** Called for each request after its body is read; default: 200 `{"ok":true}`. */
  handler: (req: SeenRequest, res: ServerResponse) => void;
  server: HttpServer;
  close(): Promise<void>;
}

export async function fakeUpstream(): Promise<FakeUpstream> {
  const seen: SeenRequest[] = [];
  const fake: FakeUpstream = {
    url: '',
    port: 0,
    seen,
    handler: (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    },
    server: createHttpServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        const entry = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body };
        seen.push(entry);
        fake.handler(entry, res);
      });
    }),
    close: () => closeServer(fake.server),
  };
  fake.port = await listenLocal(fake.server);
  fake.url = `http://127.0.0.1:${fake.port}`;
  return fake;
}

export function listenLocal(server: Server | HttpServer): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

export function closeServer(server: Server | HttpServer): Promise<void> {
  if ('closeAllConnections' in server) server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A TCP echo server on 127.0.0.1. */
export async function echoServer(): Promise<{ port: number; server: Server; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  const port = await listenLocal(server);
  return {
    port,
    server,
    close: () => {
      for (const s of sockets) s.destroy();
      return closeServer(server);
    },
  };
}

/** A connection to the gateway as the bridge makes it: the token line first. */
export function dial(socketPath: string, token: string): Socket {
  const socket = connect(socketPath);
  socket.write(`${TOKEN_PREFIX}${token}\n`);
  return socket;
}

/** Reads from the socket until `until(text)` holds or it closes; resolves with everything read. */
export function readUntil(socket: Socket, until: (text: string) => boolean = () => false): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const done = (): void => {
      socket.removeListener('data', onData);
      resolve(text);
    };
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      if (until(text)) done();
    };
    socket.on('data', onData);
    socket.once('close', done);
    socket.once('error', reject);
  });
}

export const headersDone = (text: string): boolean => text.includes('\r\n\r\n');

/** A raw CONNECT; resolves with the socket and the response head (the tunnel is open on a 200). */
export async function connectVia(socketPath: string, token: string, authority: string): Promise<{ socket: Socket; head: string }> {
  const socket = dial(socketPath, token);
  socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
  const head = await readUntil(socket, headersDone);
  return { socket, head };
}

export interface AgentResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An HTTP request through the gateway socket, as the agent's client sends it (origin or absolute form). */
export function agentRequest(
  socketPath: string,
  token: string,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<AgentResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method: options.method ?? 'GET',
        path: options.path,
        headers: { host: '127.0.0.1:3128', ...options.headers },
        createConnection: () => dial(socketPath, token),
      },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export function until(condition: () => boolean, timeoutMs = 3_000): Promise<void> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (condition()) return resolve();
      if (Date.now() - started > timeoutMs) return reject(new Error('condition not met in time'));
      setTimeout(tick, 10);
    };
    tick();
  });
}

/** An upstream that keeps every byte it received (to see exactly what reached it) and what its parser made of them. */
export interface RawUpstream {
  url: string;
  /** Every byte received, all connections, in arrival order. */
  raw(): string;
  /** The requests Node's parser found in those bytes. */
  requests: SeenRequest[];
  connections: number;
  close(): Promise<void>;
}

export async function rawUpstream(): Promise<RawUpstream> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const requests: SeenRequest[] = [];
  const parser = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"ok":true}');
    });
  });
  const parserPort = await listenLocal(parser);
  const upstream: RawUpstream = {
    url: '',
    raw: () => Buffer.concat(chunks).toString('latin1'),
    requests,
    connections: 0,
    close: async () => {
      for (const s of sockets) s.destroy();
      await Promise.all([closeServer(server), closeServer(parser)]);
    },
  };
  // A recording TCP relay in front of Node's parser: Node's server reads its sockets natively, past any 'data' tap.
  const server = createServer((socket) => {
    upstream.connections += 1;
    const backend = connect(parserPort, '127.0.0.1');
    for (const s of [socket, backend]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.once('close', () => (s === socket ? backend : socket).destroy());
    }
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.pipe(backend);
    backend.pipe(socket);
  });
  upstream.url = `http://127.0.0.1:${await listenLocal(server)}`;
  return upstream;
}

/** Writes `bytes` on a fresh token connection and reads until the gateway closes it (or `ms` pass). */
export function rawExchange(socketPath: string, token: string, bytes: string, ms = 3_000): Promise<string> {
  const socket = dial(socketPath, token);
  socket.write(bytes, 'latin1');
  const timer = setTimeout(() => socket.destroy(), ms);
  return readUntil(socket).finally(() => {
    clearTimeout(timer);
    socket.destroy();
  });
}
