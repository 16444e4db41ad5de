import { chmodSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { TokenStore, tokensPath, type TokenInfo } from '../../config/tokens.js';
import { DispatchCore } from '../../dispatch/core.js';
import type { Sandbox } from '../../dispatch/dispatcher.js';
import { AppError, describeError } from '../../errors.js';
import { logger } from '../../log.js';
import { allowedHosts, bearerToken, hostAllowed, originAllowed, type AllowedHosts } from './guard.js';
import { clearSocketPath, hostPort, requireTlsBeyondLoopback, type ListenTarget } from './listen.js';
import { readJsonBody, sendError, type BodyRead } from './respond.js';
import { SessionRegistry } from './sessions.js';
import { UserQuota } from './user-quota.js';

const log = logger('http');

export const MCP_PATH = '/mcp';
const DEFAULT_IDLE_MS = 12 * 3600_000;
const DEFAULT_MAX_SESSIONS = 1000;
/** One user's share of the sessions: whoever opens sessions in a loop cannot lock every other user out. */
const DEFAULT_MAX_SESSIONS_PER_USER = 100;
/**
 * Request bodies one user may be sending at once. Each is held in memory (up to 4 MiB) until it is complete, so
 * without a bound one user trickling bodies over many connections could make the service run out of memory;
 * a client's real bodies are small and arrive at once.
 */
export const MAX_UPLOADS_PER_USER = 8;
/**
 * Messages of one user in flight at once (a JSON-RPC batch counts each; an open event stream counts one). Each
 * call holds a little of the service (a dispatch_wait re-reads its job file four times a second for up to an
 * hour), so without a bound one user's thousands of parallel calls would slow every other user's.
 */
const DEFAULT_MAX_REQUESTS_PER_USER = 64;
const NO_SESSION_HINT = 'Start a new MCP session: send initialize without an Mcp-Session-Id header (Claude Code does this on reconnect).';

export interface HttpServiceOptions {
  /** TCP address (port 0 picks a free one) or Unix socket (created 0660). */
  listen: ListenTarget;
  /** PEM certificate and key: HTTPS. Required beyond loopback. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Extra names (NAME or NAME:PORT) the Host and Origin headers may carry, besides the listen host and loopback. */
  allowedHosts?: string[];
  env?: NodeJS.ProcessEnv;
  /** Replaces the Docker runner (tests); ignored when `core` is given. */
  sandbox?: Sandbox;
  /** The one core every session shares; made from `env` (and `sandbox`) when absent. */
  core?: DispatchCore;
  /** Default: the file `tokensPath(env)` names. */
  tokens?: TokenStore;
  /** A session with no open request for this long is closed (default 12 h). */
  idleSessionMs?: number;
  /** How often idle sessions and those of revoked tokens are closed (default: a quarter of idleSessionMs, 1 s..1 min). */
  sweepMs?: number;
  /** More sessions than this at once are refused with 503 (default 1000). */
  maxSessions?: number;
  /** More sessions of one user than this at once are refused with 429 (default 100). */
  maxSessionsPerUser?: number;
  /** More messages of one user in flight than this are refused with 429 (default 64; a batch counts each). */
  maxRequestsPerUser?: number;
}

export interface HttpService {
  /** Where clients connect: `http(s)://host:port/mcp` (for a socket, the URL to use over that socket). */
  readonly url: string;
  /** The bound address (the real port when 0 was asked for). */
  readonly listen: ListenTarget;
  readonly core: DispatchCore;
  sessionCount(): number;
  /** Stop accepting, shut the core down (its containers removed), close every session. */
  close(): Promise<void>;
}

/**
 * The multi-user MCP service (`serve --http`): Streamable HTTP at /mcp, one McpServer per session, all
 * sessions on one DispatchCore. Every request is checked in this order: Host and Origin (403), path (404),
 * bearer token (401), body size (413), then the session, which must belong to the token's user (404).
 * Starts the core (`startup`) before it answers.
 *
 *   const service = await startHttpService({ listen: { kind: 'tcp', host: '127.0.0.1', port: 0 }, env, sandbox });
 *   // service.url → http://127.0.0.1:PORT/mcp; send `Authorization: Bearer <token from TokenStore.create>`
 *   await service.close();
 */
export async function startHttpService(options: HttpServiceOptions): Promise<HttpService> {
  const env = options.env ?? process.env;
  requireTlsBeyondLoopback(options.listen, options.tls !== undefined);
  allowedHosts(options.listen, options.allowedHosts); // refuses a bad --allowed-host before anything listens
  const core = options.core ?? new DispatchCore(env, options.sandbox);
  const tokens = options.tokens ?? new TokenStore(tokensPath(env));
  const registry = new SessionRegistry(env, core, options.idleSessionMs ?? DEFAULT_IDLE_MS, () => new Set(tokens.list().map((t) => t.id)), options.sweepMs);
  const server = options.tls ? httpsServer(options.tls) : createHttpServer();
  const bound = await listen(server, options.listen);
  const deps: HandlerDeps = { tokens, registry, uploads: new UserQuota(MAX_UPLOADS_PER_USER), inFlight: new UserQuota(options.maxRequestsPerUser ?? DEFAULT_MAX_REQUESTS_PER_USER), allowed: allowedHosts(bound, options.allowedHosts), maxSessions: options.maxSessions ?? DEFAULT_MAX_SESSIONS, maxSessionsPerUser: options.maxSessionsPerUser ?? DEFAULT_MAX_SESSIONS_PER_USER, tls: options.tls !== undefined };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res, deps).catch((error: unknown) => {
      log.error('request failed', { error: describeError(error) });
      sendError(res, 500, 'Internal error while handling the request.', 'Retry; if it persists, the service log (stderr, AGENT_DISPATCH_LOG=debug) says why.');
    });
  });
  await core.startup();
  const url = `${options.tls ? 'https' : 'http'}://${bound.kind === 'tcp' ? hostPort(bound.host, bound.port) : 'localhost'}${MCP_PATH}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    listen: bound,
    core,
    sessionCount: () => registry.size,
    close: () =>
      (closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        await core.shutdown();
        await registry.closeAll();
        server.closeAllConnections();
        await stopped;
      })()),
  };
}

async function listen(server: Server, target: ListenTarget): Promise<ListenTarget> {
  if (target.kind === 'socket') {
    await clearSocketPath(target.path);
    // Created 0660 from the start (umask; not settable in a worker thread), then made so explicitly: same-host
    // users reach it through its group, and nobody else ever could.
    let umask: number | undefined;
    try {
      umask = process.umask(0o117);
    } catch {
      umask = undefined;
    }
    try {
      await listening(server, () => server.listen(target.path));
    } finally {
      if (umask !== undefined) process.umask(umask);
    }
    chmodSync(target.path, 0o660);
    return target;
  }
  await listening(server, () => server.listen(target.port, target.host));
  return { ...target, port: (server.address() as AddressInfo).port };
}

function httpsServer(tls: NonNullable<HttpServiceOptions['tls']>): Server {
  try {
    return createHttpsServer({ cert: tls.cert, key: tls.key });
  } catch (error) {
    throw new AppError('INVALID_INPUT', `The TLS certificate or key is unusable: ${describeError(error)}.`, { hint: 'Pass a PEM certificate and its matching unencrypted PEM private key (--tls-cert, --tls-key).' });
  }
}

function listening(server: Server, start: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const busy = error.code === 'EADDRINUSE';
      reject(new AppError('INVALID_INPUT', `Cannot listen: ${describeError(error)}.`, { hint: busy ? 'Another program uses that address: stop it or pick another --listen port.' : 'Check the --listen address (or --socket path) and your permissions.', cause: error }));
    });
    server.once('listening', () => {
      server.removeAllListeners('error');
      server.on('error', (error) => log.error('server error', { error: describeError(error) }));
      resolve();
    });
    start();
  });
}

interface HandlerDeps {
  tokens: TokenStore;
  registry: SessionRegistry;
  /** Bodies being received, per user. */
  uploads: UserQuota;
  /** Messages being answered (and open event streams), per user. */
  inFlight: UserQuota;
  allowed: AllowedHosts;
  maxSessions: number;
  maxSessionsPerUser: number;
  tls: boolean;
}

async function handle(req: IncomingMessage, res: ServerResponse, deps: HandlerDeps): Promise<void> {
  if (!hostAllowed(req.headers.host, deps.allowed, deps.tls)) {
    return sendError(res, 403, `Host '${req.headers.host ?? ''}' is not one this service answers to.`, 'Connect by the address it listens on (or localhost); the operator can allow more names with --allowed-host NAME.');
  }
  if (!originAllowed(req.headers.origin, deps.allowed)) {
    return sendError(res, 403, `Origin '${req.headers.origin}' is not allowed.`, 'Web pages cannot call this service. A client that is not a browser sends no Origin header; the operator can allow a name with --allowed-host NAME.');
  }
  if (new URL(req.url ?? '/', 'http://localhost').pathname !== MCP_PATH) {
    return sendError(res, 404, 'Not found.', `The MCP endpoint is ${MCP_PATH}.`);
  }
  const token = authenticate(req, res, deps.tokens);
  if (token === undefined) return;
  const { user } = token;
  const sessionId = req.headers['mcp-session-id'];
  let body: unknown;
  if (req.method === 'POST') {
    const read = await readBodyOf(user, req, deps.uploads);
    if (read.kind === 'busy') {
      return sendError(res, 429, `Too many requests of user '${user}' are still sending their bodies (limit ${MAX_UPLOADS_PER_USER}).`, 'Send each request body at once; wait for the ones in flight before sending more.', { headers: { Connection: 'close' } });
    }
    if (read.kind === 'too-large') return sendError(res, 413, 'Request body too large (limit 4 MiB).', 'Send less per call: large inputs belong in the agent’s repository, not in the task text.', { headers: { Connection: 'close' } });
    if (read.kind === 'invalid') return sendError(res, 400, 'Parse error: the body is not JSON.', 'Send one JSON-RPC message (or a batch) as application/json.', { rpcCode: -32700 });
    body = read.value;
  }
  const messages = Array.isArray(body) ? Math.max(1, body.length) : 1;
  if (!holdInFlight(user, messages, res, deps)) {
    return sendError(res, 429, `Too many calls of user '${user}' in flight (limit ${deps.inFlight.max}).`, 'Wait for calls in flight to finish before sending more (a batch counts each of its messages); dispatch_async with dispatch_status replaces many parallel waits.');
  }
  if (typeof sessionId === 'string') {
    const session = deps.registry.find(sessionId, user);
    if (!session) return sendError(res, 404, 'Session not found.', NO_SESSION_HINT, { rpcCode: -32001 });
    deps.registry.track(session, res);
    return session.transport.handleRequest(req, res, body);
  }
  const initialize = Array.isArray(body) ? body.some((m) => isInitializeRequest(m)) : isInitializeRequest(body);
  if (req.method !== 'POST' || !initialize) {
    return sendError(res, 400, 'Bad Request: no valid session id.', NO_SESSION_HINT, { rpcCode: -32000 });
  }
  if (deps.registry.size >= deps.maxSessions) {
    return sendError(res, 503, 'Too many open sessions.', 'Retry later; idle sessions are closed automatically, and closing clients you do not use frees theirs.');
  }
  if (deps.registry.countOf(user) >= deps.maxSessionsPerUser) {
    return sendError(res, 429, `Too many open sessions for user '${user}' (limit ${deps.maxSessionsPerUser}).`, 'Close MCP clients you do not use (their sessions end), or wait: idle sessions are closed automatically.');
  }
  const transport = await deps.registry.open(user, token.id);
  await transport.handleRequest(req, res, body);
}

/** Count `n` messages against the user's in-flight cap until the response is closed; false (nothing held) past the cap. */
function holdInFlight(user: string, n: number, res: ServerResponse, deps: HandlerDeps): boolean {
  if (!deps.inFlight.take(user, n)) return false;
  res.once('close', () => deps.inFlight.give(user, n));
  return true;
}

/** The body, read only while the user has fewer than MAX_UPLOADS_PER_USER bodies arriving. */
async function readBodyOf(user: string, req: IncomingMessage, uploads: UserQuota): Promise<BodyRead | { kind: 'busy' }> {
  if (!uploads.take(user)) return { kind: 'busy' };
  try {
    return await readJsonBody(req);
  } finally {
    uploads.give(user);
  }
}

/** The token's user and id, or undefined after answering 401 (500 when the token file itself is refused: fail closed). */
function authenticate(req: IncomingMessage, res: ServerResponse, tokens: TokenStore): TokenInfo | undefined {
  const token = bearerToken(req.headers);
  let found: TokenInfo | undefined;
  try {
    found = token === undefined ? undefined : tokens.identify(token);
  } catch (error) {
    log.error(describeError(error));
    sendError(res, 500, 'The service cannot check tokens right now.', 'Ask the operator: the service log says why (its token file is refused).');
    return undefined;
  }
  if (found !== undefined) return found;
  const challenge = token === undefined ? 'Bearer realm="agent-dispatch"' : 'Bearer realm="agent-dispatch", error="invalid_token"';
  sendError(res, 401, token === undefined ? 'Missing bearer token.' : 'Invalid or revoked token.', "Ask the operator for a token ('agent-dispatch token create YOUR_NAME' on the service host) and send it as 'Authorization: Bearer <token>'; token create prints the claude mcp add line that does this.", {
    headers: { 'WWW-Authenticate': challenge },
  });
  return undefined;
}
