import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { errorCode } from './destination.js';
import { type AllowRule, REFUSAL_HEADER, TOKEN_PREFIX } from './protocol.js';

export const CANARY_TIMEOUT_MS = 5_000;
export const CANARY_DENIED_HOST = 'denied.canary.invalid';
const ANSWER = 'canary-ok';

export interface CanaryResult {
  ok: boolean;
  detail: string;
}

export interface CanaryGateway {
  socketPath: string;
  register(token: string, allow: AllowRule[]): void;
  release(token: string): Promise<unknown>;
}

/**
 * The gateway checking itself exactly as an agent would use it: through its socket, with a token, an allowed
 * CONNECT (to a tiny local server answering `canary-ok`) and a denied one (must be a 403 policy refusal).
 */
export class Canary {
  private target: Promise<Server> | undefined;

  constructor(private readonly gateway: CanaryGateway) {}

  async run(): Promise<CanaryResult> {
    const token = `canary-${randomBytes(16).toString('hex')}`;
    // Per run: canaries of concurrent dispatches share the gateway, and one finishing must not cut another's sockets.
    const clients = new Set<Socket>();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<CanaryResult>((resolve) => {
      timer = setTimeout(() => resolve({ ok: false, detail: `the canary did not finish within ${CANARY_TIMEOUT_MS / 1000} s` }), CANARY_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.check(token, clients), timeout]);
    } catch (err) {
      return { ok: false, detail: err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(timer);
      for (const client of clients) client.destroy();
      await this.gateway.release(token).catch(() => undefined);
    }
  }

  close(): void {
    void this.target?.then((server) => server.close()).catch(() => undefined);
  }

  private async check(token: string, clients: Set<Socket>): Promise<CanaryResult> {
    const port = await this.listen();
    this.gateway.register(token, [{ host: '127.0.0.1', port }]);
    const allowed = await this.exchange(clients, token, `127.0.0.1:${port}`, (text) => text.includes(ANSWER));
    if (!/^HTTP\/1\.1 200 /.test(allowed) || !body(allowed).includes(ANSWER)) {
      return { ok: false, detail: `allowed destination 127.0.0.1:${port}: expected 200 then '${ANSWER}', got ${quote(allowed)}` };
    }
    const denied = await this.exchange(clients, token, `${CANARY_DENIED_HOST}:443`, () => false);
    const refusal = new RegExp(`\\r\\n${REFUSAL_HEADER}: policy\\r\\n`, 'i');
    if (!/^HTTP\/1\.1 403 /.test(denied) || !refusal.test(head(denied))) {
      return { ok: false, detail: `denied destination ${CANARY_DENIED_HOST}:443: expected a 403 policy refusal, got ${quote(denied)}` };
    }
    return { ok: true, detail: `allowed CONNECT tunnelled '${ANSWER}'; denied CONNECT refused with 403 (${REFUSAL_HEADER}: policy)` };
  }

  /** The local destination, started on first use. */
  private listen(): Promise<number> {
    this.target ??= new Promise<Server>((resolve, reject) => {
      const server = createServer((socket) => {
        socket.on('error', () => undefined);
        socket.end(ANSWER);
      });
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve(server));
    });
    // A failed start is retried by the next canary rather than remembered.
    this.target.catch(() => (this.target = undefined));
    return this.target.then((server) => (server.address() as { port: number }).port);
  }

  /** One client connection: token line, CONNECT, then read until `enough` or the gateway closes. */
  private exchange(clients: Set<Socket>, token: string, authority: string, enough: (text: string) => boolean): Promise<string> {
    const { socketPath } = this.gateway;
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      clients.add(socket);
      let text = '';
      const finish = (): void => {
        socket.destroy();
        clients.delete(socket);
        resolve(text);
      };
      socket.on('connect', () => socket.write(`${TOKEN_PREFIX}${token}\nCONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`));
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (enough(text)) finish();
      });
      socket.on('end', finish);
      socket.on('close', finish);
      socket.on('error', (err) => {
        clients.delete(socket);
        reject(new Error(`cannot use the gateway socket ${socketPath}: ${errorCode(err)}`));
      });
    });
  }
}

function head(response: string): string {
  const end = response.indexOf('\r\n\r\n');
  return end < 0 ? response : response.slice(0, end + 2);
}

function body(response: string): string {
  const end = response.indexOf('\r\n\r\n');
  return end < 0 ? '' : response.slice(end + 4);
}

function quote(response: string): string {
  if (response === '') return 'nothing (the connection closed)';
  return JSON.stringify(response.split('\r\n')[0]!.slice(0, 120));
}
