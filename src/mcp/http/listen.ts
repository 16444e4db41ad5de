import { lstatSync, unlinkSync } from 'node:fs';
import { connect, isIP } from 'node:net';
import { AppError } from '../../errors.js';

/** The port `serve --http` listens on when --listen does not name one (127.0.0.1:8717). */
export const DEFAULT_PORT = 8717;
export const DEFAULT_HOST = '127.0.0.1';

/** Where the service listens: a TCP address, or a Unix socket for users of the same host. */
export type ListenTarget = { kind: 'tcp'; host: string; port: number } | { kind: 'socket'; path: string };

/** `ADDR:PORT`, `[v6]:PORT`, `ADDR` (default port) or `:PORT` (default host). */
export function parseListen(value: string): ListenTarget {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  const plain = /^([^:]*)(?::(\d+))?$/.exec(value);
  const match = bracketed ?? plain;
  const host = match?.[1] || DEFAULT_HOST;
  const port = match?.[2] === undefined ? DEFAULT_PORT : Number(match[2]);
  if (!match || (bracketed && isIP(host) !== 6) || !Number.isInteger(port) || port > 65_535) {
    throw new AppError('INVALID_INPUT', `--listen ${value} is not ADDR:PORT.`, { hint: `For example --listen 127.0.0.1:${DEFAULT_PORT}, --listen [::1]:${DEFAULT_PORT}, or --socket PATH for a Unix socket.` });
  }
  return { kind: 'tcp', host, port };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** `host:port` as it appears in a URL or a Host header (IPv6 in brackets). */
export function hostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/**
 * Beyond loopback a bearer token crosses the network: refuse to send it in clear text. A Unix socket and a
 * loopback address never leave the host.
 */
export function requireTlsBeyondLoopback(target: ListenTarget, tls: boolean): void {
  if (target.kind === 'tcp' && !isLoopback(target.host) && !tls) {
    throw new AppError('INVALID_INPUT', `Refusing to listen on ${hostPort(target.host, target.port)} without TLS: bearer tokens would cross the network in clear text.`, {
      hint: 'Pass --tls-cert FILE --tls-key FILE (PEM), or listen on loopback (--listen 127.0.0.1:PORT) or a Unix socket (--socket PATH).',
    });
  }
}

/**
 * Make room for a Unix socket at `path`: nothing there, or a socket no server answers on (left by a server
 * that died) which is removed. Anything else — a file, a directory, a link, a live server — is refused.
 */
export async function clearSocketPath(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!isSocket) {
    throw new AppError('INVALID_INPUT', `${path} exists and is not a socket; refusing to replace it.`, { hint: 'Choose another --socket path, or remove that file yourself if it is not needed.' });
  }
  if (await answers(path)) {
    throw new AppError('INVALID_INPUT', `Another server is listening on ${path}.`, { hint: 'Stop it first, or choose another --socket path.' });
  }
  unlinkSync(path);
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
