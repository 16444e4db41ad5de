import { type ClientRequest, type IncomingMessage, type RequestOptions, request as httpRequest, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { CONNECT_TIMEOUT_MS } from './context.js';
import { errorCode } from './destination.js';
import { framingHeaders } from './framing.js';
import { forwardHeaders } from './headers.js';
import type { HttpResponseText } from './refusal.js';

export interface RelayOutcome {
  /** The status the agent got; undefined when it went away before any. */
  status: number | undefined;
  bytesOut: number;
  bytesIn: number;
  failure?: string;
}

export function send(res: ServerResponse, response: HttpResponseText): void {
  if (res.headersSent) return void res.destroy();
  res.writeHead(response.status, response.headers);
  res.end(response.body);
}

/**
 * Streams req to the upstream and the upstream's answer back, chunk by chunk (SSE must not wait for the end).
 * `failed` builds the 502 for an upstream that could not be reached. `done` runs once, when the agent's
 * response is over (complete, failed, or the agent went away).
 */
export function relay(
  options: RequestOptions & { protocol: 'http:' | 'https:' },
  req: IncomingMessage,
  res: ServerResponse,
  failed: (detail: string) => HttpResponseText,
  done: (outcome: RelayOutcome) => void,
): void {
  const outcome: RelayOutcome = { status: undefined, bytesOut: 0, bytesIn: 0 };
  let complete = false;
  let upstream: ClientRequest;
  try {
    upstream = (options.protocol === 'https:' ? httpsRequest : httpRequest)(options);
  } catch (err) {
    // Node refuses some paths and header values outright (ERR_UNESCAPED_CHARACTERS, ERR_INVALID_CHAR).
    send(res, failed(errorCode(err)));
    return done({ status: 502, bytesOut: 0, bytesIn: 0, failure: errorCode(err) });
  }
  upstream.on('socket', (socket) => {
    if (!socket.connecting) return;
    const timer = setTimeout(() => upstream.destroy(new Error(`connect timed out after ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
    socket.once('connect', () => clearTimeout(timer));
    socket.once('close', () => clearTimeout(timer));
  });
  upstream.on('response', (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, forwardHeaders(upRes.headers));
    upRes.on('data', (chunk: Buffer) => (outcome.bytesIn += chunk.length));
    upRes.on('end', () => (complete = true));
    upRes.on('error', () => res.destroy());
    upRes.on('aborted', () => res.destroy());
    upRes.pipe(res);
  });
  upstream.on('error', (err) => {
    const detail = err.message.startsWith('connect timed out') ? err.message : errorCode(err);
    outcome.failure ??= res.headersSent ? `upstream error: ${detail}` : detail;
    if (res.headersSent) res.destroy();
    else send(res, failed(detail));
  });
  req.on('data', (chunk: Buffer) => (outcome.bytesOut += chunk.length));
  req.pipe(upstream);
  res.once('close', () => {
    // Only an unfinished exchange is aborted: a finished one's socket may already serve another request.
    if (!complete) upstream.destroy();
    if (res.headersSent) outcome.status = res.statusCode;
    else outcome.failure ??= 'the agent connection closed before the response';
    done(outcome);
  });
}

/** Request headers to forward (hop-by-hop, Proxy-*, Expect and `drop` removed), the body's framing, and `set`. */
export function requestHeaders(req: IncomingMessage, drop: readonly string[], set: Record<string, string>): Record<string, string | string[] | number> {
  const headers = forwardHeaders(req.headers, ['expect', 'host', ...drop]) as Record<string, string | string[] | number>;
  return { ...headers, ...framingHeaders(req), ...set };
}
