import type { IncomingMessage, ServerResponse } from 'node:http';
import { normalizeHost } from './allowlist.js';
import type { RequestContext } from './context.js';
import { GATEWAY_HOST } from './decisions.js';
import { resolveDestination } from './destination.js';
import type { RequestProblem } from './framing.js';
import type { EgressDecision } from './protocol.js';
import { apiPathRefusal, apiUpstreamError, destinationRefusal, requestRefusal, upstreamError } from './refusal.js';
import { relay, requestHeaders, send } from './relay.js';

/** `/v1/...` (any method), and `GET /` / `HEAD /` (Claude Code probes the base URL); no dot segments. */
export function apiPathAllowed(method: string, path: string): boolean {
  const pathname = path.split('?')[0]!;
  if (pathname === '/' && (method === 'GET' || method === 'HEAD')) return true;
  if (!pathname.startsWith('/v1/')) return false;
  return pathname.split('/').every((segment) => {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return false;
    }
    return decoded !== '.' && decoded !== '..' && !/[/\\]/.test(decoded);
  });
}

function defaultPort(url: URL): number {
  return url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
}

type Target = Omit<EgressDecision, 'time' | 'allowed' | 'bytesOut' | 'bytesIn'>;

function apiTarget(ctx: RequestContext, method: string, path: string): Target {
  return { kind: 'api', host: normalizeHost(ctx.upstream.hostname), port: defaultPort(ctx.upstream), method, path: path.split('?')[0]! };
}

/** A request the gateway does not take as it is (requestProblem): refused, and recorded against what it named. */
export function refuseRequest(ctx: RequestContext, req: IncomingMessage, res: ServerResponse, problem: RequestProblem): void {
  const method = req.method ?? 'GET';
  const target = req.url ?? '';
  let named: Target;
  if (target.startsWith('/')) named = apiTarget(ctx, method, target);
  else {
    try {
      const url = new URL(target);
      named = { kind: 'http', host: normalizeHost(url.hostname), port: defaultPort(url), method, path: url.pathname };
    } catch {
      named = { kind: 'http', host: GATEWAY_HOST, port: 0, method, path: target.split('?')[0]! };
    }
  }
  const record = ctx.state.begin();
  send(res, requestRefusal(problem.status, problem.reason));
  record({ ...named, allowed: false, reason: problem.reason, status: problem.status, bytesOut: 0, bytesIn: 0 });
}

/** An origin-form request (`POST /v1/messages?beta=true`): the Anthropic API, with the credential added. */
export function handleApi(ctx: RequestContext, req: IncomingMessage, res: ServerResponse, path: string): void {
  const method = req.method ?? 'GET';
  const record = ctx.state.begin();
  const base = apiTarget(ctx, method, path);
  if (!apiPathAllowed(method, path)) {
    const refusal = apiPathRefusal(method, base.path!);
    send(res, refusal);
    return record({ ...base, allowed: false, reason: 'not an Anthropic API path', status: 403, bytesOut: 0, bytesIn: 0 });
  }
  const prefix = ctx.upstream.pathname.replace(/\/+$/, '');
  const credential: Record<string, string> = ctx.credential ? { [ctx.credential.header]: ctx.credential.value } : {};
  relay(
    {
      protocol: ctx.upstream.protocol as 'http:' | 'https:',
      hostname: ctx.upstream.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: defaultPort(ctx.upstream),
      method,
      path: prefix + path,
      headers: requestHeaders(req, ['x-api-key', 'authorization'], { host: ctx.upstream.host, ...credential }),
    },
    req,
    res,
    (detail) => apiUpstreamError(detail),
    ({ status, bytesOut, bytesIn, failure }) => record({ ...base, allowed: true, ...(failure ? { reason: failure } : {}), ...(status ? { status } : {}), bytesOut, bytesIn }),
  );
}

/** An absolute-form request (`GET http://host:port/path`): plain HTTP to a destination the rules allow. */
export async function handleHttp(ctx: RequestContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const method = req.method ?? 'GET';
  const host = normalizeHost(url.hostname);
  const port = defaultPort(url);
  const name = `${host}:${port}`;
  const record = ctx.state.begin();
  const base: Target = { kind: 'http', host, port, method, path: url.pathname };
  const resolution = await resolveDestination(ctx.state.allow, host, port, ctx.lookup);
  if (resolution.kind !== 'allowed') {
    const refused = resolution.kind === 'refused';
    send(res, refused ? destinationRefusal(name, resolution.reason) : upstreamError(name, resolution.reason));
    return record({ ...base, allowed: !refused, reason: resolution.reason, status: refused ? 403 : 502, bytesOut: 0, bytesIn: 0 });
  }
  if (req.socket.destroyed) {
    return record({ ...base, allowed: true, reason: 'the agent connection closed before the request was sent', bytesOut: 0, bytesIn: 0 });
  }
  relay(
    {
      protocol: 'http:',
      host: resolution.address,
      port,
      method,
      path: url.pathname + url.search,
      agent: false,
      setHost: false,
      headers: requestHeaders(req, [], { host: req.headers.host ?? url.host }),
    },
    req,
    res,
    (detail) => upstreamError(name, detail),
    ({ status, bytesOut, bytesIn, failure }) => record({ ...base, allowed: true, ...(failure ? { reason: failure } : {}), ...(status ? { status } : {}), bytesOut, bytesIn }),
  );
}
