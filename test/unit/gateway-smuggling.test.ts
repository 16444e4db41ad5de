/**
 * Request smuggling through the API forwarder: raw bytes from the agent side, an upstream that keeps every byte
 * it receives. The upstream must see exactly the requests the gateway decided on, each one in the decisions.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DROPPED_HOST, GATEWAY_HOST } from '../../src/gateway/decisions.js';
import type { EgressDecision } from '../../src/gateway/protocol.js';
import { dial, rawExchange, rawUpstream, type RawUpstream, readUntil, startGateway, type TestGateway, until } from './gateway-harness.js';

const SMUGGLED = 'GET /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
const chunked = (body: string): string => `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`;
const REQUEST_REFUSED = /^HTTP\/1\.1 400 [^\r]*\r\n[\s\S]*x-agent-dispatch-refusal: request\r\n/i;

let upstream: RawUpstream;
let gw: TestGateway;
let token: string;
let n = 0;

beforeAll(async () => {
  upstream = await rawUpstream();
  gw = await startGateway(upstream.url);
});
afterAll(async () => {
  await gw.close();
  await upstream.close();
});
beforeEach(() => {
  token = `tok-smuggle-${++n}`;
  gw.proxy.register(token, []);
});
afterEach(() => gw.proxy.release(token).catch(() => undefined));

const decisions = (): Promise<EgressDecision[]> => gw.proxy.release(token);

describe('framing the gateway refuses: nothing reaches the upstream, the refusal is recorded, the connection closes', () => {
  const cases: [string, string, RegExp][] = [
    ['GET /v1 with a chunked body holding a second request', `GET /v1/models HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`, /GET request must not have a body/],
    ['HEAD /v1 with a Content-Length body', `HEAD /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`, /HEAD request must not have a body/],
    ['Transfer-Encoding and Content-Length together', `POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`, /HPE_/],
    ['two Content-Length headers', `POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: ${SMUGGLED.length + 2}\r\n\r\n{}${SMUGGLED}`, /HPE_/],
    ['Transfer-Encoding: gzip, chunked', `POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${chunked(SMUGGLED)}`, /not exactly chunked/],
    ['Transfer-Encoding: chunked twice', `POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`, /HPE_|not exactly chunked/],
    ['Transfer-Encoding: identity', `POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n${SMUGGLED}`, /HPE_|not exactly chunked/],
    ['an obs-fold continuation line', `POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}`, /HPE_/],
    ['a bare CR in a header', `GET /v1/models HTTP/1.1\r\nHost: x\rTransfer-Encoding: chunked\r\n\r\n`, /HPE_/],
    ['Connection: Upgrade to the upstream', `GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n${SMUGGLED}`, /upgrades are not forwarded/],
  ];

  it.each(cases)('%s', async (_name, payload, reason) => {
    const before = upstream.raw().length;
    const answer = await rawExchange(gw.socketPath, token, payload);
    expect(answer).toMatch(REQUEST_REFUSED);
    // the gateway closed the connection (rawExchange returned on close, not on its timeout), and sent one answer
    expect(answer.match(/HTTP\/1\.1 \d{3} /g)).toHaveLength(1);
    expect(upstream.raw().slice(before)).toBe('');
    const recorded = await decisions();
    expect(recorded).toEqual([expect.objectContaining({ allowed: false, status: 400, reason: expect.stringMatching(reason) })]);
  });

  it('a request pipelined behind a refused one is never forwarded', async () => {
    const before = upstream.raw().length;
    const answer = await rawExchange(gw.socketPath, token, `GET /v1/models HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /v1/next HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(answer).toMatch(REQUEST_REFUSED);
    expect(upstream.raw().slice(before)).toBe('');
    expect(await decisions()).toEqual([expect.objectContaining({ path: '/v1/models', allowed: false, status: 400 })]);
  });
});

describe('requests the gateway takes: the upstream sees exactly them', () => {
  it('pipelined requests on one connection are each decided, forwarded and recorded', async () => {
    const before = upstream.requests.length;
    const socket = dial(gw.socketPath, token);
    socket.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\nPOST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GET /v1/models/m HTTP/1.1\r\nHost: x\r\n\r\n`);
    const answer = await readUntil(socket, (text) => (text.match(/\{"ok":true\}/g) ?? []).length >= 3);
    socket.destroy();
    expect(answer.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 200', 'HTTP/1.1 200']);
    expect(upstream.requests.slice(before).map((r) => `${r.method} ${r.url} ${r.body}`)).toEqual(['GET /v1/models ', 'POST /v1/messages {}', 'GET /v1/models/m ']);
    const recorded = await decisions();
    expect(recorded.map((d) => `${d.method} ${d.path} ${d.allowed} ${d.status}`)).toEqual(['GET /v1/models true 200', 'POST /v1/messages true 200', 'GET /v1/models/m true 200']);
  });

  it('after a refusal on a pipelined connection, the connection closes: what followed it is neither forwarded nor recorded', async () => {
    const before = upstream.requests.length;
    const rawBefore = upstream.raw().length;
    const socket = dial(gw.socketPath, token);
    socket.write(`GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n${SMUGGLED}POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`);
    const answer = await readUntil(socket);
    expect(answer.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 200', 'HTTP/1.1 403']);
    await new Promise((r) => setTimeout(r, 100));
    expect(upstream.requests.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v1/models']);
    expect(upstream.raw().slice(rawBefore)).not.toMatch(/admin|messages/);
    const recorded = await decisions();
    expect(recorded.map((d) => `${d.method} ${d.path} ${d.allowed} ${d.status}`).sort()).toEqual(['GET /admin/smuggled false 403', 'GET /v1/models true 200']);
  });

  it('a chunked POST body holding a request is forwarded re-framed, as the body of one request', async () => {
    const before = upstream.requests.length;
    const rawBefore = upstream.raw().length;
    const answer = await rawExchange(gw.socketPath, token, `POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked(SMUGGLED)}`);
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    await until(() => upstream.requests.length > before);
    await new Promise((r) => setTimeout(r, 100));
    expect(upstream.requests.slice(before).map((r) => `${r.method} ${r.url}`)).toEqual(['POST /v1/messages']);
    expect(upstream.requests.at(-1)!.body).toBe(SMUGGLED);
    expect(upstream.raw().slice(rawBefore)).toMatch(/\r\ntransfer-encoding: chunked\r\n/i);
    expect(await decisions()).toEqual([expect.objectContaining({ kind: 'api', method: 'POST', path: '/v1/messages', allowed: true, status: 200 })]);
  });
});

describe('oversized requests: one recorded refusal each, folded together', () => {
  it('a target over 4 KiB gets 414, a head over 16 KiB gets 431; 300 of each are two decisions with counts', async () => {
    const long = `/v1/${'a'.repeat(8 * 1024)}`;
    const header = `X-Big: ${'b'.repeat(20 * 1024)}`;
    const answers: string[] = [];
    for (let i = 0; i < 300; i += 50) {
      const batch = Array.from({ length: 50 }, () => [
        rawExchange(gw.socketPath, token, `GET ${long} HTTP/1.1\r\nHost: x\r\n\r\n`),
        rawExchange(gw.socketPath, token, `GET /v1/models HTTP/1.1\r\nHost: x\r\n${header}\r\n\r\n`),
      ]).flat();
      answers.push(...(await Promise.all(batch)));
    }
    expect(answers.filter((a) => /^HTTP\/1\.1 414 URI Too Long\r\n/.test(a))).toHaveLength(300);
    expect(answers.filter((a) => /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/.test(a))).toHaveLength(300);
    expect(upstream.raw()).not.toContain('aaaaaaaa');
    const recorded = await decisions();
    expect(recorded).toHaveLength(2);
    expect(recorded).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'api', allowed: false, status: 414, count: 300 }),
        expect.objectContaining({ kind: 'http', host: GATEWAY_HOST, allowed: false, status: 431, count: 300 }),
      ]),
    );
    expect(JSON.stringify(recorded).length).toBeLessThan(2_000);
    expect(recorded.some((d) => d.host === DROPPED_HOST)).toBe(false);
  });
});
