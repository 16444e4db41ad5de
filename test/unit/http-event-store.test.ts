/**
 * The per-session SSE event store behind `serve --http` resumption: replay is in order and only of the cursor's
 * own stream; ids minted by another session's store are unknown; the event and byte bounds drop the oldest
 * events first; a closed session's store keeps nothing.
 */
import { describe, expect, it } from 'vitest';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { SessionEventStore } from '../../src/mcp/http/event-store.js';

const note = (n: number, pad = ''): JSONRPCMessage => ({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 't', progress: n, message: pad } });
const answer = (id: number): JSONRPCMessage => ({ jsonrpc: '2.0', id, result: { content: [] } });

async function replay(store: SessionEventStore, cursor: string): Promise<{ stream: string; sent: Array<[string, JSONRPCMessage]> }> {
  const sent: Array<[string, JSONRPCMessage]> = [];
  const stream = await store.replayEventsAfter(cursor, { send: async (id, message) => void sent.push([id, message]) });
  return { stream, sent };
}

describe('SessionEventStore', () => {
  it('replays, in order, only the events of the cursor’s stream that came after it', async () => {
    const store = new SessionEventStore();
    const primeA = await store.storeEvent('A', {} as JSONRPCMessage);
    const primeB = await store.storeEvent('B', {} as JSONRPCMessage);
    const a1 = await store.storeEvent('A', note(1));
    await store.storeEvent('B', note(100));
    const a2 = await store.storeEvent('A', note(2));
    const a3 = await store.storeEvent('A', answer(7));
    const b2 = await store.storeEvent('B', answer(8));

    expect(await store.getStreamIdForEventId(a1)).toBe('A');
    expect(await store.getStreamIdForEventId(primeB)).toBe('B');
    expect(await replay(store, primeA)).toEqual({ stream: 'A', sent: [[a1, note(1)], [a2, note(2)], [a3, answer(7)]] });
    expect(await replay(store, a2)).toEqual({ stream: 'A', sent: [[a3, answer(7)]] });
    expect(await replay(store, primeB)).toEqual({ stream: 'B', sent: [[expect.any(String), note(100)], [b2, answer(8)]] });
    expect((await replay(store, a3)).sent).toEqual([]);
    expect(new Set([primeA, primeB, a1, a2, a3, b2]).size).toBe(6);
  });

  it('an id minted by another session’s store (or forged, or not yet minted) is no cursor here', async () => {
    const mine = new SessionEventStore();
    const theirs = new SessionEventStore();
    const myPrime = await mine.storeEvent('S', {} as JSONRPCMessage);
    await mine.storeEvent('S', answer(1));
    const theirPrime = await theirs.storeEvent('S', {} as JSONRPCMessage);
    await theirs.storeEvent('S', answer(2));

    expect(await mine.getStreamIdForEventId(theirPrime)).toBeUndefined();
    await expect(replay(mine, theirPrime)).rejects.toThrow(/Unknown event id/);
    // Same shape, this store's nonce but a seq it never minted; and plain garbage.
    const [nonce, no] = myPrime.split('.');
    for (const forged of [`${nonce}.${no}.999`, `${nonce}.99.1`, 'S_1', '', `${myPrime}x`]) expect(await mine.getStreamIdForEventId(forged)).toBeUndefined();
    expect((await replay(theirs, theirPrime)).sent).toEqual([[expect.any(String), answer(2)]]);
  });

  it('past maxEvents the session’s oldest events go first, across streams; a stream with none left is forgotten', async () => {
    const store = new SessionEventStore({ maxEvents: 3, maxBytes: 1 << 20 });
    const a1 = await store.storeEvent('A', note(1));
    const b1 = await store.storeEvent('B', note(2));
    const a2 = await store.storeEvent('A', note(3));
    expect(store.eventCount).toBe(3);
    const a3 = await store.storeEvent('A', note(4)); // drops a1
    expect(store.eventCount).toBe(3);
    expect(await store.getStreamIdForEventId(b1)).toBe('B');
    await store.storeEvent('A', note(5)); // drops b1: stream B is gone
    expect(await store.getStreamIdForEventId(b1)).toBeUndefined();
    // a1 itself was dropped but its stream lives: resuming from it sends what is kept.
    expect((await replay(store, a1)).sent.map(([id]) => id)).toEqual([a2, a3, expect.any(String)]);
  });

  it('past maxBytes the oldest events go first; one message larger than the bound is kept alone', async () => {
    const oneNote = Buffer.byteLength(JSON.stringify(note(0, 'x'.repeat(100))));
    const store = new SessionEventStore({ maxEvents: 1000, maxBytes: oneNote * 3 });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await store.storeEvent('A', note(i, 'x'.repeat(100))));
    expect(store.eventCount).toBe(3);
    expect(store.byteCount).toBeLessThanOrEqual(oneNote * 3);
    expect((await replay(store, ids[2]!)).sent.map(([, m]) => (m as unknown as { params: { progress: number } }).params.progress)).toEqual([3, 4]);

    const big = await store.storeEvent('A', note(9, 'y'.repeat(oneNote * 4)));
    expect(store.eventCount).toBe(1);
    expect(await store.getStreamIdForEventId(big)).toBe('A');
    expect(await store.getStreamIdForEventId(ids[4]!)).toBe('A'); // same stream, still resumable from there
    expect((await replay(store, ids[4]!)).sent.map(([id]) => id)).toEqual([big]);
  });

  it('clear() (the session closed) drops every event and keeps none stored later', async () => {
    const store = new SessionEventStore();
    const prime = await store.storeEvent('A', {} as JSONRPCMessage);
    await store.storeEvent('A', answer(1));
    store.clear();
    expect(store.eventCount).toBe(0);
    expect(store.byteCount).toBe(0);
    expect(await store.getStreamIdForEventId(prime)).toBeUndefined();
    const late = await store.storeEvent('A', answer(2));
    expect(typeof late).toBe('string');
    expect(store.eventCount).toBe(0);
    expect(await store.getStreamIdForEventId(late)).toBeUndefined();
  });
});
