import { chmod, lstat, unlink } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { normalizeHost } from './allowlist.js';
import { Canary, type CanaryResult } from './canary.js';
import { type RequestContext, sendRaw } from './context.js';
import { GATEWAY_HOST } from './decisions.js';
import { defaultLookup, type Lookup } from './destination.js';
import { MAX_HEAD_BYTES, requestProblem } from './framing.js';
import { handleApi, handleHttp, refuseRequest } from './forward.js';
import { readToken } from './handshake.js';
import type { AllowRule, EgressDecision, GatewayConfig } from './protocol.js';
import { requestRefusal, tokenRefusal } from './refusal.js';
import { send } from './relay.js';
import { TokenState } from './tokens.js';
import { handleConnect } from './tunnel.js';

/** The address the in-container bridge listens on: a request for it is meant for the gateway itself. */
export const BRIDGE_PORT = 3128;
const SELF_HOSTS = new Set(['127.0.0.1', 'localhost', '::1']);
/** How long `release` waits for the decisions of the connections it closed: well within the server's 5 s for the answer. */
const RELEASE_WAIT_MS = 2_000;
/**
 * Connections one dispatch may hold open at once, and requests or tunnels it may have in flight (pipelining puts
 * many on one connection): a flooding agent must not take every descriptor or all the memory of the gateway.
 */
export const MAX_CONNECTIONS_PER_TOKEN = 256;
export const MAX_INFLIGHT_PER_TOKEN = 256;
const BUSY = `this dispatch already has ${MAX_INFLIGHT_PER_TOKEN} requests or tunnels in flight through the gateway`;

export interface GatewayProxyOptions {
  lookup?: Lookup;
  now?: () => Date;
}

export interface GatewayProxy {
  listen(): Promise<void>;
  register(token: string, allow: AllowRule[]): void;
  /** Refuses the token from now on, closes its connections and returns (and forgets) its decisions. */
  release(token: string): Promise<EgressDecision[]>;
  canary(): Promise<CanaryResult>;
  close(): Promise<void>;
}

export function createGatewayProxy(config: GatewayConfig, options: GatewayProxyOptions = {}): GatewayProxy {
  const upstream = new URL(config.upstream);
  const lookup = options.lookup ?? defaultLookup;
  const now = options.now ?? (() => new Date());
  const tokens = new Map<string, TokenState>();
  const tokenOf = new WeakMap<Socket, string>();
  const sockets = new Set<Socket>();
  /** Connections the gateway answered with a refusal (which closes them): nothing more on them is forwarded. */
  const spoiled = new WeakSet<Socket>();

  const contextOf = (socket: Socket): RequestContext | undefined => {
    const token = tokenOf.get(socket);
    const state = token === undefined ? undefined : tokens.get(token);
    return state && { state, lookup, upstream, credential: config.credential };
  };
  const isSelf = (host: string, port: number): boolean => port === BRIDGE_PORT && SELF_HOSTS.has(normalizeHost(host));
  const feed = (socket: Socket): void => {
    http.emit('connection', socket);
    socket.resume();
  };

  const http = createHttpServer({ requestTimeout: 0, maxHeaderSize: MAX_HEAD_BYTES }, (req: IncomingMessage, res: ServerResponse) => {
    // Requests pipelined behind a refusal (refusals close the connection) are dropped, never forwarded: one behind a
    // malformed request was parsed with framing the gateway refused, and the agent would never get their answers.
    if (spoiled.has(req.socket)) return void res.destroy();
    route(req, res);
    // A response ended at once is a refusal, the gateway's own answer.
    if (res.writableEnded) spoiled.add(req.socket);
  });
  const route = (req: IncomingMessage, res: ServerResponse): void => {
    const ctx = contextOf(req.socket);
    if (!ctx) return send(res, tokenRefusal());
    const problem = ctx.state.inflight >= MAX_INFLIGHT_PER_TOKEN ? { status: 503 as const, reason: BUSY } : requestProblem(req);
    if (problem) {
      res.once('finish', () => req.socket.destroy());
      return refuseRequest(ctx, req, res, problem);
    }
    const target = req.url ?? '';
    if (target.startsWith('/')) return handleApi(ctx, req, res, target);
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      url = new URL('invalid:');
    }
    if (url.protocol !== 'http:' || url.hostname === '') {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' });
      return void res.end('agent-dispatch egress gateway: proxy requests must be http://host[:port]/path (use CONNECT for https)\n');
    }
    const port = url.port ? Number(url.port) : 80;
    if (isSelf(url.hostname, port)) return handleApi(ctx, req, res, url.pathname + url.search);
    handleHttp(ctx, req, res, url).catch(() => res.destroy());
  };
  http.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const ctx = contextOf(socket);
    if (!ctx) return sendRaw(socket, tokenRefusal());
    if (ctx.state.inflight >= MAX_INFLIGHT_PER_TOKEN) return refuseRaw(ctx.state, socket, 503, BUSY);
    const self = {
      is: isSelf,
      refeed: (s: Socket, rest: Buffer) => {
        if (rest.length > 0) s.unshift(rest);
        feed(s);
      },
    };
    handleConnect(ctx, req, socket, head, self).catch(() => socket.destroy());
  });
  http.on('clientError', (err: Error & { code?: string; reason?: string }, socket: Socket) => {
    const ctx = contextOf(socket);
    const code = err.code ?? '';
    // A request the gateway already refused may be followed by bytes its parser cannot read: that is no new request.
    if (spoiled.has(socket)) return void socket.destroy();
    if (!ctx || !code.startsWith('HPE_') || !socket.writable) {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n', () => socket.destroy());
      else socket.destroy();
      return;
    }
    // Node's parser refused it (head too long, obs-fold, TE with CL, bare CR...): one recorded refusal per request.
    const overflow = code === 'HPE_HEADER_OVERFLOW';
    const status = overflow ? 431 : 400;
    const reason = overflow ? `its request head is over ${MAX_HEAD_BYTES / 1024} KiB` : `it is not well-formed HTTP/1.1 (${code}${err.reason ? `: ${err.reason}` : ''})`;
    refuseRaw(ctx.state, socket, status, reason);
  });

  const server = createNetServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.setNoDelay(true);
    void readToken(socket).then((token) => {
      const state = token === null ? undefined : tokens.get(token);
      if (token === null || !state) return sendRaw(socket, tokenRefusal());
      if (state.sockets.size >= MAX_CONNECTIONS_PER_TOKEN) {
        return refuseRaw(state, socket, 503, `this dispatch already has ${MAX_CONNECTIONS_PER_TOKEN} connections open through the gateway`);
      }
      tokenOf.set(socket, token);
      state.track(socket);
      feed(socket);
    });
  });

  const canary = new Canary({
    socketPath: config.socketPath,
    register: (token, allow) => register(token, allow),
    release: (token) => release(token),
  });

  function register(token: string, allow: AllowRule[]): void {
    if (!/^[\x21-\x7e]{1,200}$/.test(token)) throw new Error('a token is 1-200 printable ASCII characters without spaces');
    const existing = tokens.get(token);
    if (existing) existing.allow = allow;
    else tokens.set(token, new TokenState(allow, now));
  }

  async function release(token: string): Promise<EgressDecision[]> {
    const state = tokens.get(token);
    if (!state) throw new Error('unknown token');
    tokens.delete(token);
    return state.release(RELEASE_WAIT_MS);
  }

  return {
    async listen() {
      await removeStaleSocket(config.socketPath);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(config.socketPath, () => {
          server.off('error', reject);
          resolve();
        });
      });
      await chmod(config.socketPath, 0o666);
    },
    register,
    release,
    canary: () => canary.run(),
    async close() {
      canary.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      http.close();
      if (server.listening) await closed;
    },
  };
}

/** A refusal on a bare socket before there is a destination, recorded for the token. */
function refuseRaw(state: TokenState, socket: Socket, status: number, reason: string): void {
  const record = state.begin();
  sendRaw(socket, requestRefusal(status, reason));
  record({ kind: 'http', host: GATEWAY_HOST, port: 0, allowed: false, reason, status, bytesOut: 0, bytesIn: 0 });
}

/** A socket file left by a previous gateway blocks listen; anything else at that path is not ours to delete. */
async function removeStaleSocket(path: string): Promise<void> {
  try {
    const stat = await lstat(path);
    if (!stat.isSocket()) throw new Error(`${path} exists and is not a socket`);
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
