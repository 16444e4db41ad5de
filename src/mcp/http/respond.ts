import type { IncomingMessage, ServerResponse } from 'node:http';

/** Requests larger than this (4 MiB) are answered 413 before anything parses them. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * An HTTP-level refusal: `{error, hint}` like every other failure of agent-dispatch. With `rpcCode` the body is
 * a JSON-RPC error instead (what MCP clients expect for session problems), the hint in `error.data`.
 */
export function sendError(res: ServerResponse, status: number, error: string, hint: string, options: { rpcCode?: number; headers?: Record<string, string> } = {}): void {
  const body = options.rpcCode === undefined ? { error, hint } : { jsonrpc: '2.0', error: { code: options.rpcCode, message: error, data: { hint } }, id: null };
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'application/json', ...options.headers });
  res.end(`${JSON.stringify(body)}\n`);
}

export type BodyRead = { kind: 'ok'; value: unknown } | { kind: 'too-large' } | { kind: 'invalid' };

/** The JSON body, reading no more than `limit` bytes (a larger declared or actual body stops the read). */
export async function readJsonBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<BodyRead> {
  if (Number(req.headers['content-length'] ?? 0) > limit) return { kind: 'too-large' };
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return { kind: 'too-large' };
    chunks.push(chunk);
  }
  try {
    return { kind: 'ok', value: JSON.parse(Buffer.concat(chunks).toString('utf8')) };
  } catch {
    return { kind: 'invalid' };
  }
}
