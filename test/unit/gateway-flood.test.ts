/**
 * One dispatch flooding the gateway: what it can make the gateway hold is bounded, and another dispatch on the
 * same gateway keeps its own decisions and its connections.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { summariseEgress } from '../../src/dispatch/audit.js';
import { DROPPED_HOST, GATEWAY_HOST, MAX_DECISION_BYTES } from '../../src/gateway/decisions.js';
import { MAX_CONNECTIONS_PER_TOKEN, MAX_INFLIGHT_PER_TOKEN } from '../../src/gateway/proxy.js';
import { agentRequest, dial, type FakeUpstream, fakeUpstream, rawExchange, readUntil, startGateway, type TestGateway, until } from './gateway-harness.js';

let upstream: FakeUpstream;
let gw: TestGateway;

beforeAll(async () => {
  upstream = await fakeUpstream();
  gw = await startGateway(upstream.url, { lookup: async () => ['203.0.113.7'] });
});
afterAll(async () => {
  await gw.close();
  await upstream.close();
});

/** `count` requests from `make(i)`, `parallel` at a time, each on its own connection; their answers. */
async function flood(token: string, count: number, make: (i: number) => string, parallel = 50): Promise<string[]> {
  const answers: string[] = [];
  for (let i = 0; i < count; i += parallel) {
    const batch = Array.from({ length: Math.min(parallel, count - i) }, (_, j) => rawExchange(gw.socketPath, token, make(i + j)));
    answers.push(...(await Promise.all(batch)));
  }
  return answers;
}

describe('a flood of refused requests from one dispatch', () => {
  it('5 000 with 8 KB targets and 3 000 to distinct hosts: a bounded release, every refusal counted; the other dispatch keeps its own', async () => {
    gw.proxy.register('tok-flood', []);
    gw.proxy.register('tok-quiet', [{ host: 'allowed.example', port: 80 }]);
    const target = 'a'.repeat(8 * 1024);
    const quiet = (async () => {
      // the other dispatch works on while the flood runs
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) statuses.push((await agentRequest(gw.socketPath, 'tok-quiet', { method: 'POST', path: '/v1/messages', body: '{}' })).status);
      return statuses;
    })();
    const long = await flood('tok-flood', 5_000, (i) => (i % 2 ? `GET /v1/${target} HTTP/1.1\r\nHost: x\r\n\r\n` : `GET http://denied.example/${target} HTTP/1.1\r\nHost: denied.example\r\n\r\n`));
    const distinct = await flood('tok-flood', 3_000, (i) => `GET http://denied-${i}.example/${'p'.repeat(200)} HTTP/1.1\r\nHost: denied-${i}.example\r\n\r\n`);
    expect(long.every((a) => a.startsWith('HTTP/1.1 414 '))).toBe(true);
    expect(distinct.every((a) => a.startsWith('HTTP/1.1 403 '))).toBe(true);
    expect(await quiet).toEqual(new Array(20).fill(200));

    const flooded = await gw.proxy.release('tok-flood');
    const line = JSON.stringify(flooded);
    expect(line.length).toBeLessThan(MAX_DECISION_BYTES + 2_000);
    expect(line).not.toContain('a'.repeat(300));
    expect(flooded.filter((d) => d.status === 414).map((d) => d.count)).toEqual([2_500, 2_500]);
    expect(flooded.at(-1)).toMatchObject({ host: DROPPED_HOST, allowed: false });
    expect(summariseEgress(flooded)).toMatchObject({ allowed: 0, denied: 8_000 });

    const own = await gw.proxy.release('tok-quiet');
    expect(own).toHaveLength(20);
    expect(own.every((d) => d.kind === 'api' && d.allowed && d.status === 200)).toBe(true);
  }, 120_000);

  it(`past ${MAX_CONNECTIONS_PER_TOKEN} open connections a dispatch is refused (503, recorded once with a count); another dispatch still connects`, async () => {
    gw.proxy.register('tok-hog', []);
    gw.proxy.register('tok-other', []);
    const held: Socket[] = [];
    try {
      for (let i = 0; i < MAX_CONNECTIONS_PER_TOKEN; i++) held.push(dial(gw.socketPath, 'tok-hog'));
      // every held connection has been taken (a request on the last one is answered)
      const last = held.at(-1)!;
      last.write('GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n');
      await readUntil(last, (t) => t.includes('{"ok":true}'));
      const over = await Promise.all([1, 2, 3].map(() => rawExchange(gw.socketPath, 'tok-hog', 'GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n')));
      for (const answer of over) expect(answer).toMatch(/^HTTP\/1\.1 503 [\s\S]*x-agent-dispatch-refusal: request\r\n/);
      expect((await agentRequest(gw.socketPath, 'tok-other', { path: '/v1/models' })).status).toBe(200);
    } finally {
      for (const s of held) s.destroy();
    }
    const hog = await gw.proxy.release('tok-hog');
    expect(hog.filter((d) => d.status === 503)).toEqual([expect.objectContaining({ host: GATEWAY_HOST, allowed: false, count: 3 })]);
    expect(await gw.proxy.release('tok-other')).toHaveLength(1);
  }, 60_000);

  it(`past ${MAX_INFLIGHT_PER_TOKEN} requests in flight (pipelined on one connection) the next gets 503 and the rest are dropped; the upstream sees no more`, async () => {
    gw.proxy.register('tok-pipe', []);
    gw.proxy.register('tok-beside', []);
    const reply = upstream.handler;
    const held: ServerResponse[] = [];
    upstream.handler = (req, res) => (req.url === '/v1/hold' ? held.push(res) : reply(req, res));
    const before = upstream.seen.length;
    const socket = dial(gw.socketPath, 'tok-pipe');
    try {
      socket.write('GET /v1/hold HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(MAX_INFLIGHT_PER_TOKEN + 100));
      await until(() => held.length >= MAX_INFLIGHT_PER_TOKEN, 10_000);
      await new Promise((r) => setTimeout(r, 300));
      expect(upstream.seen.length - before).toBe(MAX_INFLIGHT_PER_TOKEN);
      // another dispatch on the same gateway is not held back
      expect((await agentRequest(gw.socketPath, 'tok-beside', { path: '/v1/models' })).status).toBe(200);
    } finally {
      upstream.handler = reply;
      for (const res of held) res.end('{}');
    }
    const answer = await readUntil(socket);
    expect(answer.match(/HTTP\/1\.1 \d{3}/g)).toEqual([...new Array<string>(MAX_INFLIGHT_PER_TOKEN).fill('HTTP/1.1 200'), 'HTTP/1.1 503']);
    const decisions = await gw.proxy.release('tok-pipe');
    expect(decisions.filter((d) => d.allowed)).toHaveLength(MAX_INFLIGHT_PER_TOKEN);
    expect(decisions.filter((d) => !d.allowed)).toEqual([expect.objectContaining({ kind: 'api', path: '/v1/hold', status: 503, reason: expect.stringContaining('in flight') })]);
    expect(await gw.proxy.release('tok-beside')).toHaveLength(1);
  }, 60_000);
});
