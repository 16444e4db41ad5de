import { randomBytes } from 'node:crypto';
import type { EventId, EventStore, StreamId } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { logger } from '../../log.js';

const log = logger('http');

export interface EventStoreLimits {
  /** Events one session keeps (across all its streams). */
  maxEvents: number;
  /** Bytes (of the JSON text) one session keeps. A single larger message is still kept, alone. */
  maxBytes: number;
}

/**
 * Per session: a session's store dies with it, and sessions per user are capped, so these also bound what one
 * user can make the service hold (at most 100 sessions × 2 MiB).
 */
export const DEFAULT_EVENT_LIMITS: EventStoreLimits = { maxEvents: 1000, maxBytes: 2 * 1024 * 1024 };

interface StoredEvent {
  readonly id: EventId;
  readonly seq: number;
  readonly message: JSONRPCMessage;
  readonly bytes: number;
  readonly stream: StreamRing;
}

interface StreamRing {
  readonly id: StreamId;
  readonly no: number;
  /** Oldest first; eviction takes from the front. */
  readonly events: StoredEvent[];
  /** The seq of the newest event of this stream dropped by the bounds (0: none). */
  droppedThrough: number;
}

/** `<store nonce>.<stream no>.<seq>`: the nonce makes another session's ids unknown here, not a cursor into this one. */
const EVENT_ID = /^([A-Za-z0-9_-]{16})\.(\d{1,15})\.(\d{1,15})$/;

/**
 * The events of ONE MCP session's SSE streams, kept so a client whose stream dropped can resume it with
 * Last-Event-ID (GET). Bounded: past `maxEvents` or `maxBytes` the session's oldest events go first, and a stream
 * whose events are all gone is forgotten. Isolation is structural: each session has its own store (the session
 * lookup already refuses another user's session), and an id minted by another store is unknown here.
 */
export class SessionEventStore implements EventStore {
  private readonly nonce = randomBytes(12).toString('base64url');
  private readonly streams = new Map<StreamId, StreamRing>();
  private readonly byNo = new Map<number, StreamRing>();
  /** Every kept event, oldest first (seq order). */
  private readonly queue: StoredEvent[] = [];
  private bytes = 0;
  private seq = 0;
  private streamNo = 0;
  private closed = false;

  constructor(private readonly limits: EventStoreLimits = DEFAULT_EVENT_LIMITS) {}

  get eventCount(): number {
    return this.queue.length;
  }

  get byteCount(): number {
    return this.bytes;
  }

  async storeEvent(streamId: StreamId, message: JSONRPCMessage): Promise<EventId> {
    const seq = ++this.seq;
    let stream = this.streams.get(streamId);
    if (stream === undefined) {
      stream = { id: streamId, no: ++this.streamNo, events: [], droppedThrough: 0 };
      if (!this.closed) {
        this.streams.set(streamId, stream);
        this.byNo.set(stream.no, stream);
      }
    }
    const id = `${this.nonce}.${stream.no}.${seq}`;
    // After close the SDK may still send a late answer: it gets an id, nothing is kept.
    if (this.closed) return id;
    const event: StoredEvent = { id, seq, message, bytes: Buffer.byteLength(JSON.stringify(message)), stream };
    stream.events.push(event);
    this.queue.push(event);
    this.bytes += event.bytes;
    while (this.queue.length > this.limits.maxEvents || (this.bytes > this.limits.maxBytes && this.queue.length > 1)) this.evictOldest();
    return id;
  }

  async getStreamIdForEventId(eventId: EventId): Promise<StreamId | undefined> {
    return this.cursor(eventId)?.stream.id;
  }

  /**
   * Sends the events of the cursor's stream that came after it. A cursor whose own event was already dropped still
   * resumes its stream from what is kept (the newest events, the answer among them, are the last to go).
   */
  async replayEventsAfter(lastEventId: EventId, { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> }): Promise<StreamId> {
    const cursor = this.cursor(lastEventId);
    if (cursor === undefined) throw new Error('Unknown event id: it belongs to no stream of this session (or was dropped).');
    const { stream, seq } = cursor;
    if (stream.droppedThrough > seq) log.warn('resuming a stream whose older events were dropped (event store bounds)', { stream: stream.id, dropped_through: stream.droppedThrough, cursor: seq });
    for (const event of [...stream.events]) if (event.seq > seq) await send(event.id, event.message);
    return stream.id;
  }

  /** Drop everything (the session closed); later events are not kept. */
  clear(): void {
    this.closed = true;
    this.streams.clear();
    this.byNo.clear();
    this.queue.length = 0;
    this.bytes = 0;
  }

  private cursor(eventId: EventId): { stream: StreamRing; seq: number } | undefined {
    const match = EVENT_ID.exec(eventId);
    if (match === null || match[1] !== this.nonce) return undefined;
    const stream = this.byNo.get(Number(match[2]));
    const seq = Number(match[3]);
    // A seq this store never minted is no cursor (it would otherwise skip the stream's future events).
    if (stream === undefined || seq > this.seq) return undefined;
    return { stream, seq };
  }

  private evictOldest(): void {
    const event = this.queue.shift();
    if (event === undefined) return;
    this.bytes -= event.bytes;
    const { stream } = event;
    stream.events.shift();
    stream.droppedThrough = event.seq;
    if (stream.events.length === 0) {
      this.streams.delete(stream.id);
      this.byNo.delete(stream.no);
    }
  }
}
