import type { Socket } from 'node:net';
import { TOKEN_PREFIX } from './protocol.js';

export const HANDSHAKE_MAX_BYTES = 256;
export const HANDSHAKE_TIMEOUT_MS = 5_000;

/**
 * Reads the bridge's first line, `AGENT-DISPATCH-TOKEN <token>\n`. Resolves with the token (the bytes after
 * the line are pushed back into the socket, paused) or null: no line in time, too long, or another prefix.
 */
export function readToken(socket: Socket, timeoutMs = HANDSHAKE_TIMEOUT_MS): Promise<string | null> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const finish = (token: string | null): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      resolve(token);
    };
    const onEnd = (): void => finish(null);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const newline = buffered.indexOf(0x0a);
      if (newline < 0) {
        if (buffered.length > HANDSHAKE_MAX_BYTES) finish(null);
        return;
      }
      if (newline > HANDSHAKE_MAX_BYTES) return finish(null);
      socket.pause();
      const rest = buffered.subarray(newline + 1);
      if (rest.length > 0) socket.unshift(rest);
      const line = buffered.subarray(0, newline).toString('utf8').replace(/\r$/, '');
      const token = line.startsWith(TOKEN_PREFIX) ? line.slice(TOKEN_PREFIX.length).trim() : '';
      finish(token === '' ? null : token);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
  });
}
