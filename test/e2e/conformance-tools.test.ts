/**
 * The two helpers of scripts/conformance.sh, run the way the script runs them (a node process, real files,
 * real sockets). report.mjs is the CI verdict on the official conformance suite: it must fail on a failure
 * the baseline does not list, on a baseline entry that passes now, on a malformed or unknown baseline line,
 * and count a WARNING or a missing result as a failure. auth-proxy.mjs must add the bearer token and change
 * nothing else a scenario looks at (Host and Origin reach the service as sent, so the dns-rebinding scenario
 * tests the service's guard), stream SSE unbuffered and pass a client's disconnect on.
 * The whole script against the built serve --http runs as its own .ci/run phase (conformance).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

const TOOLS = join(import.meta.dirname, '..', '..', 'tools', 'conformance');
const REPORT = join(TOOLS, 'report.mjs');
const PROXY = join(TOOLS, 'auth-proxy.mjs');

type Status = 'SUCCESS' | 'FAILURE' | 'WARNING' | 'INFO';

describe('report.mjs: the run against the baseline', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'conformance-report-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Write the suite's result layout for `runs` (scenario → its checks' statuses), then judge it. */
  function judge(baseline: string, scenarios: string[], runs: Record<string, Status[]>) {
    for (const [name, statuses] of Object.entries(runs)) {
      const at = join(dir, 'results', `server-${name}-2026-12-06T20-45-01-123Z`);
      mkdirSync(at, { recursive: true });
      const checks = statuses.map((status, i) => ({ id: `${name}-${i}`, status, ...(status === 'SUCCESS' ? {} : { errorMessage: `${name} check ${i} said ${status}` }) }));
      writeFileSync(join(at, 'checks.json'), JSON.stringify(checks));
    }
    writeFileSync(join(dir, 'baseline.txt'), baseline);
    const run = spawnSync(process.execPath, [REPORT, join(dir, 'results'), join(dir, 'baseline.txt'), ...scenarios], { encoding: 'utf8' });
    return { status: run.status, out: run.stdout + run.stderr };
  }

  const row = (out: string, name: string) => out.split('\n').find((line) => line.startsWith(`${name} `)) ?? '';

  it('passes when every failure is listed and every listed scenario fails; names with dashes and digits parse', () => {
    const r = judge('# comment\n\nprompts-list  # no prompts here\njson-schema-2020-12 # no fixture tool\n', ['ping', 'prompts-list', 'json-schema-2020-12'], {
      ping: ['SUCCESS', 'INFO'],
      'prompts-list': ['FAILURE'],
      'json-schema-2020-12': ['FAILURE', 'SUCCESS'],
    });
    expect(r.status).toBe(0);
    expect(row(r.out, 'ping')).toMatch(/^ping\s+pass\s+1 ok, 0 failed, 0 warned$/);
    expect(row(r.out, 'prompts-list')).toMatch(/expected failure\s+0 ok, 1 failed, 0 warned\s+no prompts here$/);
    expect(row(r.out, 'json-schema-2020-12')).toMatch(/expected failure\s+1 ok, 1 failed, 0 warned\s+no fixture tool$/);
    expect(r.out).toContain('3 scenarios: 1 pass, 2 expected failures (baseline), 0 unexpected failures, 0 stale baseline entries');
  });

  it('fails on a failure the baseline does not list, naming its first failing check', () => {
    const r = judge('', ['ping', 'tools-list'], { ping: ['SUCCESS'], 'tools-list': ['SUCCESS', 'FAILURE'] });
    expect(r.status).toBe(1);
    expect(row(r.out, 'tools-list')).toContain('UNEXPECTED FAILURE');
    expect(r.out).toContain('tools-list failed and is not in');
    expect(r.out).toContain('tools-list-1: tools-list check 1 said FAILURE');
  });

  it('fails on a baseline entry that passes now (stale)', () => {
    const r = judge('ping  # was broken\n', ['ping'], { ping: ['SUCCESS'] });
    expect(r.status).toBe(1);
    expect(row(r.out, 'ping')).toContain('STALE BASELINE');
    expect(r.out).toContain('ping passes now: remove its line');
  });

  it('counts a WARNING as a failure, like the suite’s own --expected-failures', () => {
    expect(judge('', ['sse'], { sse: ['SUCCESS', 'WARNING'] }).status).toBe(1);
    const listed = judge('sse  # warns: no priming event\n', ['sse'], { sse: ['SUCCESS', 'WARNING'] });
    expect(listed.status).toBe(0);
    expect(row(listed.out, 'sse')).toMatch(/expected failure\s+1 ok, 0 failed, 1 warned/);
  });

  it('counts a scenario that left no result as failed', () => {
    const r = judge('', ['ping', 'crashed'], { ping: ['SUCCESS'] });
    expect(r.status).toBe(1);
    expect(row(r.out, 'crashed')).toMatch(/UNEXPECTED FAILURE\s+-\s+no result/);
  });

  it.each([
    ['a line without a reason', 'ping\n', "needs the form 'scenario  # reason'"],
    ['an empty reason', 'ping  #   \n', "needs the form 'scenario  # reason'"],
    ['a scenario the suite does not have', 'pong  # typo\n', "'pong' is not a server scenario of this suite version"],
    ['a scenario listed twice', 'ping  # one\nping  # two\n', "'ping' is listed twice"],
  ])('refuses a baseline with %s', (_what, baseline, message) => {
    const r = judge(baseline, ['ping'], { ping: ['FAILURE'] });
    expect(r.status).toBe(1);
    expect(r.out).toContain(message);
  });
});

describe('auth-proxy.mjs: the bearer token added, the rest passed through', () => {
  const TOKEN = 'adt_conformance-test-token';
  let upstream: Server;
  let upstreamPort: number;
  let proxy: ChildProcess;
  let proxyPort: number;
  const seen: { method?: string; url?: string; headers?: IncomingHttpHeaders; body?: string } = {};
  let streamClosed: Promise<void>;

  beforeAll(async () => {
    let closed!: () => void;
    streamClosed = new Promise((resolve) => (closed = resolve));
    upstream = createServer((req, res) => {
      if (req.url === '/sse') {
        // One event, then the stream stays open until the client leaves.
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: message\ndata: {"n":1}\n\n');
        res.on('close', closed);
        return;
      }
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        Object.assign(seen, { method: req.method, url: req.url, headers: req.headers, body });
        res.writeHead(418, { 'content-type': 'application/json', 'mcp-session-id': 'abc' });
        res.end(JSON.stringify({ echoed: body }));
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamPort = (upstream.address() as AddressInfo).port;
    ({ child: proxy, port: proxyPort } = await startProxy(upstreamPort));
  });

  afterAll(async () => {
    await stop(proxy);
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  });

  /** A proxy in front of the port `target`, once it says which port it listens on. */
  async function startProxy(target: number): Promise<{ child: ChildProcess; port: number }> {
    const child = spawn(process.execPath, [PROXY, String(target)], { env: { ...process.env, CONFORMANCE_BEARER_TOKEN: TOKEN }, stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
      child.once('exit', (code) => reject(new Error(`auth-proxy exited ${code}`)));
    });
    return { child, port };
  }

  async function stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }

  function send(port: number, path: string, method: string, headers: Record<string, string>, body?: string) {
    return new Promise<{ status: number; headers: IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  it('adds Authorization (replacing any the client sent) and forwards Host, Origin, method, path, body and the answer as they are', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
    const answer = await send(proxyPort, '/mcp?x=1', 'POST', { host: 'evil.example.com', origin: 'http://evil.example.com', authorization: 'Bearer not-this-one', 'content-type': 'application/json', 'mcp-session-id': 's1' }, body);
    expect(seen.headers!.authorization).toBe(`Bearer ${TOKEN}`);
    expect(seen.headers!.host).toBe('evil.example.com');
    expect(seen.headers!.origin).toBe('http://evil.example.com');
    expect(seen.headers!['mcp-session-id']).toBe('s1');
    expect([seen.method, seen.url, seen.body]).toEqual(['POST', '/mcp?x=1', body]);
    expect(answer.status).toBe(418);
    expect(answer.headers['mcp-session-id']).toBe('abc');
    expect(JSON.parse(answer.body)).toEqual({ echoed: body });
  });

  it('streams an SSE answer before the upstream ends it, and closes the upstream stream when the client leaves', async () => {
    const first = await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: proxyPort, path: '/sse', method: 'GET', headers: { accept: 'text/event-stream' } }, (res) => {
        expect(res.headers['content-type']).toBe('text/event-stream');
        res.once('data', (chunk: Buffer) => {
          resolve(chunk.toString());
          req.destroy();
        });
      });
      req.on('error', (error) => (req.destroyed ? undefined : reject(error)));
      req.end();
    });
    expect(first).toBe('event: message\ndata: {"n":1}\n\n');
    await streamClosed;
  });

  it('answers 502 when the service does not answer', async () => {
    const orphan = await startProxy(1);
    try {
      const answer = await send(orphan.port, '/mcp', 'POST', {}, '{}');
      expect(answer.status).toBe(502);
      expect(answer.body).toContain('auth-proxy: upstream 127.0.0.1:1');
    } finally {
      await stop(orphan.child);
    }
  });

  it('refuses to start without a token', () => {
    const run = spawnSync(process.execPath, [PROXY, String(upstreamPort)], { env: { ...process.env, CONFORMANCE_BEARER_TOKEN: '' }, encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr).toContain('usage: CONFORMANCE_BEARER_TOKEN=<token> node auth-proxy.mjs UPSTREAM_PORT');
  });
});
