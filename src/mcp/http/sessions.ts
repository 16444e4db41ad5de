import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { userCaller } from '../../core/caller.js';
import type { DispatchCore } from '../../dispatch/core.js';
import { describeError } from '../../errors.js';
import { logger } from '../../log.js';
import { createServer } from '../server.js';
import { SessionEventStore } from './event-store.js';

const log = logger('http');
/** What the priming event of each SSE stream tells the client to wait before it reconnects with Last-Event-ID. */
export const SSE_RETRY_MS = 2000;

/** One MCP session: its own McpServer and transport, bound to the user whose token opened it. */
export interface Session {
  readonly id: string;
  readonly user: string;
  /** The id of the token that opened it: revoking that token ends the session. */
  readonly tokenId: string;
  readonly transport: StreamableHTTPServerTransport;
  /** Requests (and SSE streams) still open: a session with one is never idle. */
  active: number;
  lastSeen: number;
}

/**
 * The live sessions. Each has its own McpServer (the caller is per session) over the ONE shared core, so every
 * user's dispatches draw on one concurrency budget. Sessions idle longer than `idleMs` are closed.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();
  private readonly sweeper: NodeJS.Timeout;

  /** `tokenIds` says which tokens are still valid; the sweep (at least once a minute) ends sessions of any other. */
  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly core: DispatchCore,
    private readonly idleMs: number,
    private readonly tokenIds: () => ReadonlySet<string>,
    sweepMs = Math.min(60_000, Math.max(1000, idleMs / 4)),
  ) {
    this.sweeper = setInterval(() => this.sweep(), sweepMs);
    this.sweeper.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  /** How many sessions `user` has open. */
  countOf(user: string): number {
    let count = 0;
    for (const session of this.sessions.values()) if (session.user === user) count++;
    return count;
  }

  /** The session with this id if `user` opened it; another user's session is as unknown as a missing one. */
  find(id: string, user: string): Session | undefined {
    const session = this.sessions.get(id);
    return session?.user === user ? session : undefined;
  }

  /** The transport of a new session of `user`; it joins the registry when the SDK gives it its id (initialize). */
  async open(user: string, tokenId: string): Promise<StreamableHTTPServerTransport> {
    const { server } = createServer(this.env, undefined, { core: this.core, caller: userCaller(user) });
    // Its own store per session: a dropped SSE stream resumes (GET + Last-Event-ID) only within the session that
    // opened it, and find() gives a session only to its own user.
    const events = new SessionEventStore();
    const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      eventStore: events,
      retryInterval: SSE_RETRY_MS,
      onsessioninitialized: (id) => {
        this.sessions.set(id, { id, user, tokenId, transport, active: 0, lastSeen: Date.now() });
        log.info('session opened', { user, session: id });
      },
    });
    server.server.onclose = () => {
      events.clear();
      const id = transport.sessionId;
      if (id !== undefined && this.sessions.delete(id)) log.info('session closed', { user, session: id });
    };
    await server.connect(transport);
    return transport;
  }

  /** Count `res` as activity of `session` until it closes. */
  track(session: Session, res: ServerResponse): void {
    session.active++;
    session.lastSeen = Date.now();
    res.once('close', () => {
      session.active--;
      session.lastSeen = Date.now();
    });
  }

  async closeAll(): Promise<void> {
    clearInterval(this.sweeper);
    await Promise.allSettled([...this.sessions.values()].map((s) => s.transport.close()));
    this.sessions.clear();
  }

  /**
   * Close idle sessions, and every session whose token was revoked: a revoked user's next request is refused
   * anyway, but an open stream (the GET event stream, a long dispatch_wait) would go on delivering to them.
   */
  private sweep(): void {
    const now = Date.now();
    let valid: ReadonlySet<string> | undefined;
    try {
      valid = this.tokenIds();
    } catch (error) {
      log.warn(`cannot read the tokens to end revoked sessions: ${describeError(error)}`);
    }
    for (const session of this.sessions.values()) {
      const revoked = valid !== undefined && !valid.has(session.tokenId);
      if (revoked || (session.active === 0 && now - session.lastSeen > this.idleMs)) {
        log.info(revoked ? 'closing the session of a revoked token' : 'closing idle session', { user: session.user, session: session.id });
        void session.transport.close();
      }
    }
  }
}
