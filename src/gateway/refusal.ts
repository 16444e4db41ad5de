import { REFUSAL_HEADER } from './protocol.js';

/**
 * What the agent reads when the gateway says no. The agent is a model: the text must tell it that a refusal is
 * final (so it does not retry or hunt for a way around) and that only the user can change the policy.
 */

const PREFIX = 'agent-dispatch egress gateway:';
const PERMANENT =
  'This is a permanent policy decision, not a network error: do not retry, and do not look for another route.';
const ASK_USER = "If the task needs this destination, tell the user to add it to the agent's policy.";

export interface HttpResponseText {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function policy(body: string): HttpResponseText {
  return {
    status: 403,
    headers: { 'content-type': 'text/plain; charset=utf-8', [REFUSAL_HEADER]: 'policy', connection: 'close' },
    body: `${body}\n`,
  };
}

/** host:port refused by network.allow; `reason` comes from allowlist.decide. */
export function destinationRefusal(target: string, reason: string): HttpResponseText {
  return policy(`${PREFIX} ${target} is not allowed by this agent's sandbox policy (network.allow): ${reason}. ${PERMANENT} ${ASK_USER}`);
}

export function tokenRefusal(): HttpResponseText {
  return policy(
    `${PREFIX} this connection did not present a valid dispatch token (unknown or missing token, or the dispatch has ended), so nothing is forwarded. ${PERMANENT}`,
  );
}

export function apiPathRefusal(method: string, path: string): HttpResponseText {
  return policy(
    `${PREFIX} ${method} ${path} is not allowed by this agent's sandbox policy: only Anthropic API paths (/v1/...) are forwarded to the API. ${PERMANENT}`,
  );
}

/**
 * A request the gateway will not take as it is (malformed, oversized, ambiguous framing, too many connections),
 * whatever its destination: the header says `request`, not `policy`.
 */
export function requestRefusal(status: number, reason: string): HttpResponseText {
  return {
    status,
    headers: { 'content-type': 'text/plain; charset=utf-8', [REFUSAL_HEADER]: 'request', connection: 'close' },
    body: `${PREFIX} this request is refused: ${reason}. Nothing of it was forwarded. Send well-formed HTTP/1.1 (one Content-Length or Transfer-Encoding: chunked, no body on GET or HEAD, no upgrade, short targets and headers).\n`,
  };
}

/** An allowed destination that could not be reached: an upstream error, not policy (no refusal header). */
export function upstreamError(target: string, detail: string): HttpResponseText {
  return {
    status: 502,
    headers: { 'content-type': 'text/plain; charset=utf-8', connection: 'close' },
    body: `${PREFIX} ${target} is allowed by the sandbox policy, but the gateway could not reach it (${detail}). This is an upstream network error, not a policy refusal; it may be temporary.\n`,
  };
}

export function apiUpstreamError(detail: string): HttpResponseText {
  return {
    status: 502,
    headers: { 'content-type': 'text/plain; charset=utf-8', connection: 'close' },
    body: `${PREFIX} the Anthropic API upstream is unreachable (${detail}). This is an upstream network error, not a policy refusal; it may be temporary.\n`,
  };
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  403: 'Forbidden',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

/** The response as raw HTTP/1.1 bytes, for sockets that no http.ServerResponse wraps. */
export function rawResponse(response: HttpResponseText): string {
  const headers = { ...response.headers, 'content-length': String(Buffer.byteLength(response.body)) };
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`);
  return `HTTP/1.1 ${response.status} ${REASONS[response.status] ?? 'Error'}\r\n${lines.join('')}\r\n${response.body}`;
}
