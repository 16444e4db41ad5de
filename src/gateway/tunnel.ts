import type { IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { CONNECT_TIMEOUT_MS, type RequestContext, sendRaw } from './context.js';
import { errorCode, parseAuthority, resolveDestination } from './destination.js';
import { destinationRefusal, type HttpResponseText, upstreamError } from './refusal.js';

const ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';

const BAD_REQUEST: HttpResponseText = {
  status: 400,
  headers: { 'content-type': 'text/plain; charset=utf-8', connection: 'close' },
  body: 'agent-dispatch egress gateway: CONNECT needs host:port\n',
};

/**
 * CONNECT host:port. `self` is asked first: a tunnel to the gateway's own address is handed back to the HTTP
 * server (the API flows through it); anything else is checked against the token's rules and tunnelled.
 * The decision is recorded when the tunnel closes, so its byte counts are final.
 */
export async function handleConnect(
  ctx: RequestContext,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  self: { is(host: string, port: number): boolean; refeed(socket: Socket, head: Buffer): void },
): Promise<void> {
  const target = parseAuthority(req.url ?? '');
  if (!target) {
    const record = ctx.state.begin();
    sendRaw(socket, BAD_REQUEST);
    return record({ kind: 'connect', host: (req.url ?? '').slice(0, 256), port: 0, allowed: false, reason: 'CONNECT needs host:port', status: 400, bytesOut: 0, bytesIn: 0 });
  }
  if (self.is(target.host, target.port)) {
    socket.write(ESTABLISHED);
    return self.refeed(socket, head);
  }
  const record = ctx.state.begin();
  const base = { kind: 'connect' as const, host: target.host, port: target.port };
  const name = `${target.host}:${target.port}`;
  const resolution = await resolveDestination(ctx.state.allow, target.host, target.port, ctx.lookup);
  if (resolution.kind === 'refused') {
    sendRaw(socket, destinationRefusal(name, resolution.reason));
    return record({ ...base, allowed: false, reason: resolution.reason, bytesOut: 0, bytesIn: 0 });
  }
  if (resolution.kind === 'failed') {
    sendRaw(socket, upstreamError(name, resolution.reason));
    return record({ ...base, allowed: true, reason: resolution.reason, bytesOut: 0, bytesIn: 0 });
  }
  if (socket.destroyed) {
    return record({ ...base, allowed: true, reason: 'the agent connection closed before the tunnel opened', bytesOut: 0, bytesIn: 0 });
  }
  tunnel(socket, head, name, resolution.address, target.port, (bytesOut, bytesIn, failure) =>
    record({ ...base, allowed: true, ...(failure ? { reason: failure } : {}), bytesOut, bytesIn }),
  );
}

function tunnel(
  socket: Socket,
  head: Buffer,
  name: string,
  address: string,
  port: number,
  done: (bytesOut: number, bytesIn: number, failure?: string) => void,
): void {
  const upstream = connect({ host: address, port, allowHalfOpen: true });
  let bytesOut = 0;
  let bytesIn = 0;
  let opened = false;
  let failure: string | undefined;
  let closed = 0;
  const timer = setTimeout(() => upstream.destroy(new Error(`connect timed out after ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
  const onClose = (): void => {
    closed += 1;
    if (closed === 2) done(bytesOut, bytesIn, failure);
  };
  upstream.once('connect', () => {
    clearTimeout(timer);
    opened = true;
    socket.write(ESTABLISHED);
    if (head.length > 0) {
      bytesOut += head.length;
      upstream.write(head);
    }
    socket.on('data', (chunk: Buffer) => (bytesOut += chunk.length));
    upstream.on('data', (chunk: Buffer) => (bytesIn += chunk.length));
    socket.pipe(upstream);
    upstream.pipe(socket);
  });
  upstream.on('error', (err) => {
    clearTimeout(timer);
    if (opened) {
      failure ??= `tunnel error: ${errorCode(err)}`;
      return socket.destroy();
    }
    failure = `connect to ${address}:${port} failed: ${err.message.startsWith('connect timed out') ? err.message : errorCode(err)}`;
    sendRaw(socket, upstreamError(name, failure));
  });
  upstream.once('close', () => {
    clearTimeout(timer);
    // Let what upstream sent reach the agent before closing its side (the pipe may still hold some).
    if (opened && !socket.destroyed) {
      socket.end();
      if (socket.writableFinished) socket.destroy();
      else socket.once('finish', () => socket.destroy());
    }
    onClose();
  });
  socket.once('close', () => {
    if (!opened && !failure) failure = 'the agent connection closed before the tunnel opened';
    upstream.destroy();
    onClose();
  });
}
