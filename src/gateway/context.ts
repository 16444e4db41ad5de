import type { Socket } from 'node:net';
import type { Lookup } from './destination.js';
import type { GatewayCredential } from './protocol.js';
import { type HttpResponseText, rawResponse } from './refusal.js';
import type { TokenState } from './tokens.js';

/** What a request handler needs: the token's state and the gateway's configuration. */
export interface RequestContext {
  state: TokenState;
  lookup: Lookup;
  upstream: URL;
  credential: GatewayCredential | null;
}

export const CONNECT_TIMEOUT_MS = 10_000;

/** Writes a whole response on a bare socket, then closes it. */
export function sendRaw(socket: Socket, response: HttpResponseText): void {
  if (socket.destroyed) return;
  socket.end(rawResponse(response), () => socket.destroy());
}
