import { isAbsolute } from 'node:path';
import { type AllowRule, GATEWAY_PROTOCOL, type GatewayCommand, type GatewayConfig, type GatewayCredential } from './protocol.js';

/**
 * Hand-written validation of what arrives on stdin (no zod in the gateway image). Error messages name the
 * field, never its value: the config line carries the credential.
 */

type Result<T> = { ok: true; value: T } | { ok: false; message: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function parseJson(line: string): Result<unknown> {
  try {
    return { ok: true, value: JSON.parse(line) };
  } catch {
    // JSON.parse messages may quote the input, which for the config includes the credential.
    return { ok: false, message: 'not a JSON line' };
  }
}

function parseCredential(v: unknown): Result<GatewayCredential | null> {
  if (v === null) return { ok: true, value: null };
  if (!isObject(v)) return { ok: false, message: 'credential must be null or {header, value}' };
  if (v.header !== 'x-api-key' && v.header !== 'authorization') return { ok: false, message: "credential.header must be 'x-api-key' or 'authorization'" };
  // Printable ASCII only: the value becomes a header, so no CR/LF (header injection) and nothing Node rejects.
  if (typeof v.value !== 'string' || !/^[\x20-\x7e]+$/.test(v.value) || v.value.trim() !== v.value) {
    return { ok: false, message: 'credential.value must be a non-empty printable ASCII string' };
  }
  if (v.header === 'authorization' && !/^Bearer \S+$/.test(v.value)) return { ok: false, message: "credential.value for 'authorization' must be 'Bearer <token>'" };
  return { ok: true, value: { header: v.header, value: v.value } };
}

export function parseConfig(line: string): Result<GatewayConfig> {
  const json = parseJson(line);
  if (!json.ok) return { ok: false, message: `config: ${json.message}` };
  const c = json.value;
  if (!isObject(c)) return { ok: false, message: 'config: must be a JSON object' };
  if (c.protocol !== GATEWAY_PROTOCOL) return { ok: false, message: `config: protocol must be ${GATEWAY_PROTOCOL} (this gateway speaks only that)` };
  if (typeof c.socketPath !== 'string' || !isAbsolute(c.socketPath)) return { ok: false, message: 'config: socketPath must be an absolute path' };
  let upstream: URL | undefined;
  try {
    upstream = typeof c.upstream === 'string' ? new URL(c.upstream) : undefined;
  } catch {
    upstream = undefined;
  }
  if (!upstream || (upstream.protocol !== 'http:' && upstream.protocol !== 'https:') || upstream.username || upstream.password || upstream.search || upstream.hash) {
    return { ok: false, message: 'config: upstream must be an http(s) URL without credentials, query or fragment' };
  }
  const credential = parseCredential(c.credential);
  if (!credential.ok) return { ok: false, message: `config: ${credential.message}` };
  return { ok: true, value: { protocol: GATEWAY_PROTOCOL, socketPath: c.socketPath, upstream: c.upstream as string, credential: credential.value } };
}

function parseRules(v: unknown): AllowRule[] | null {
  if (!Array.isArray(v)) return null;
  const rules: AllowRule[] = [];
  for (const r of v) {
    if (!isObject(r) || typeof r.host !== 'string' || r.host === '') return null;
    const port = r.port;
    if (port !== '*' && !(typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535)) return null;
    rules.push({ host: r.host.toLowerCase(), port });
  }
  return rules;
}

/** A command line; on failure the message, and the id when the line had a usable one. */
export function parseCommand(line: string): Result<GatewayCommand> & { id?: string } {
  const json = parseJson(line);
  if (!json.ok) return json;
  const c = json.value;
  if (!isObject(c)) return { ok: false, message: 'a command must be a JSON object' };
  if (typeof c.id !== 'string' || c.id === '') return { ok: false, message: 'a command needs a string id' };
  const id = c.id;
  const fail = (message: string) => ({ ok: false as const, message, id });
  switch (c.op) {
    case 'ping':
    case 'canary':
      return { ok: true, value: { op: c.op, id } };
    case 'release':
      if (typeof c.token !== 'string' || c.token === '') return fail('release needs a token');
      return { ok: true, value: { op: 'release', id, token: c.token } };
    case 'register': {
      if (typeof c.token !== 'string' || c.token === '') return fail('register needs a token');
      const allow = parseRules(c.allow);
      if (!allow) return fail("register needs allow: [{host, port: 1-65535 | '*'}]");
      return { ok: true, value: { op: 'register', id, token: c.token, allow } };
    }
    default:
      return fail(`unknown op ${JSON.stringify(String(c.op)).slice(0, 40)}`);
  }
}
