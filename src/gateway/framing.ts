import type { IncomingMessage } from 'node:http';

/** The longest request target taken (an API path is tens of characters): longer ones get 414. */
export const MAX_TARGET_BYTES = 4096;
/** The longest request head (request line and headers); Node's parser stops a longer one and we answer 431. */
export const MAX_HEAD_BYTES = 16 * 1024;

export interface RequestProblem {
  status: 400 | 414 | 503;
  reason: string;
}

function values(req: IncomingMessage, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === name) out.push(req.rawHeaders[i + 1]!);
  return out;
}

/**
 * Why a request is not forwarded as it is, or undefined. The gateway re-frames every request it forwards
 * (Node's client frames the upstream request from the headers relay.ts sets), so the upstream can only see a
 * second request inside the first if the two disagree on where a body ends. Whatever could make them disagree
 * is refused here, even where Node's parser would take it: TE with CL, two CLs, a TE other than exactly
 * `chunked`, a body on GET or HEAD (Node's client writes such a body raw, unframed), and upgrades (after one,
 * the bytes are no longer HTTP the gateway decides on). Obs-fold and bare CR or LF are refused by Node's parser
 * itself (a client error, answered and recorded in proxy.ts).
 */
export function requestProblem(req: IncomingMessage): RequestProblem | undefined {
  const target = req.url ?? '';
  if (Buffer.byteLength(target) > MAX_TARGET_BYTES) return { status: 414, reason: `its request target is over ${MAX_TARGET_BYTES} bytes` };
  const te = values(req, 'transfer-encoding');
  const cl = values(req, 'content-length');
  const bad = (reason: string): RequestProblem => ({ status: 400, reason });
  if (te.length > 0 && cl.length > 0) return bad('it has both Transfer-Encoding and Content-Length');
  if (cl.length > 1) return bad('it has more than one Content-Length');
  if (te.length > 1 || (te.length === 1 && te[0]!.trim().toLowerCase() !== 'chunked')) return bad('its Transfer-Encoding is not exactly chunked');
  const method = req.method ?? '';
  if ((method === 'GET' || method === 'HEAD') && (te.length > 0 || (cl.length === 1 && cl[0]!.trim() !== '0'))) return bad(`a ${method} request must not have a body`);
  const connection = values(req, 'connection').join(',');
  if (values(req, 'upgrade').length > 0 || /(^|,)\s*upgrade\s*(,|$)/i.test(connection)) return bad('protocol upgrades are not forwarded');
  return undefined;
}

/** The framing header of the forwarded request: chunked when the agent's was (requestProblem let only that through). */
export function framingHeaders(req: IncomingMessage): Record<string, string> {
  return req.headers['transfer-encoding'] === undefined ? {} : { 'transfer-encoding': 'chunked' };
}
