import type { IncomingHttpHeaders } from 'node:http';
import { AppError } from '../../errors.js';
import { hostPort, type ListenTarget } from './listen.js';

/**
 * Checks every request passes before it reaches MCP: the Host and Origin headers (a web page the user opens
 * must not reach the service through DNS rebinding or a cross-site request) and the bearer token.
 */

/** The names a request may address the service by; anything else in Host or Origin is refused. */
export interface AllowedHosts {
  /** `host:port` pairs (TCP), or bare host names (Unix socket: no port). */
  readonly entries: ReadonlySet<string>;
  readonly withPort: boolean;
}

const LOCAL_NAMES = ['localhost', '127.0.0.1', '[::1]'];

/** The listen host, the loopback names, and every `--allowed-host NAME[:PORT]` (a name alone takes the listen port). */
export function allowedHosts(target: ListenTarget, extra: readonly string[] = []): AllowedHosts {
  const withPort = target.kind === 'tcp';
  const port = target.kind === 'tcp' ? target.port : 0;
  const names = [...(target.kind === 'tcp' ? [hostPort(target.host, port)] : []), ...LOCAL_NAMES, ...extra];
  const keys = names.map((name) => {
    const key = hostKey(name, port, withPort);
    if (key === undefined) throw new AppError('INVALID_INPUT', `--allowed-host ${name} is not a host name.`, { hint: 'Pass a name or address, optionally with :PORT (IPv6 in brackets: [::1]:8717).' });
    return key;
  });
  return { entries: new Set(keys), withPort };
}

/** Host header → the key the allowed set holds (port made explicit), or undefined when it is not a plain host[:port]. */
function hostKey(host: string, defaultPort: number, withPort: boolean): string | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]/@?#\s]+)(?::(\d{1,5}))?$/.exec(host);
  if (!match) return undefined;
  let hostname: string;
  try {
    hostname = new URL(`http://${match[1]}`).hostname.toLowerCase();
  } catch {
    return undefined;
  }
  return withPort ? `${hostname}:${match[2] === undefined ? defaultPort : Number(match[2])}` : hostname;
}

export function hostAllowed(header: string | undefined, allowed: AllowedHosts, tls: boolean): boolean {
  if (!header) return false;
  const key = hostKey(header, tls ? 443 : 80, allowed.withPort);
  return key !== undefined && allowed.entries.has(key);
}

/** No Origin (a non-browser client, like Claude Code) is fine; a browser's Origin must name this service. */
export function originAllowed(origin: string | undefined, allowed: AllowedHosts): boolean {
  if (origin === undefined) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  const key = hostKey(url.host, url.protocol === 'https:' ? 443 : 80, allowed.withPort);
  return key !== undefined && allowed.entries.has(key);
}

/** The token of `Authorization: Bearer <token>`, or undefined. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(headers.authorization ?? '');
  return match?.[1];
}
