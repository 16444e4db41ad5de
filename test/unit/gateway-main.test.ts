/**
 * The gateway program as the container runs it: src/gateway compiled on its own into a folder with only
 * `package.json` {"type":"module"} beside it (no node_modules, like the image), driven over stdin/stdout.
 */
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCommand, parseConfig } from '../../src/gateway/messages.js';
import { GATEWAY_PROTOCOL, type GatewayEvent } from '../../src/gateway/protocol.js';
import { PART_BYTES } from '../../src/gateway/decisions.js';
import { agentRequest, connectVia, type FakeUpstream, fakeUpstream } from './gateway-harness.js';

const REPO = resolve(import.meta.dirname, '..', '..');
const SECRET = 'sk-ant-main-test-credential-9f8e7d6c';
let root: string;
let main: string;

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-gw-main-'));
  const out = join(root, 'gateway');
  const sources = readdirSync(join(REPO, 'src', 'gateway')).filter((f) => f.endsWith('.ts')).map((f) => join(REPO, 'src', 'gateway', f));
  const flags = ['--ignoreConfig', '--outDir', out, '--rootDir', join(REPO, 'src', 'gateway'), '--module', 'NodeNext', '--moduleResolution', 'NodeNext'];
  execFileSync(join(REPO, 'node_modules', '.bin', 'tsc'), [...flags, '--target', 'ES2022', '--types', 'node', '--strict', '--skipLibCheck', ...sources]);
  writeFileSync(join(out, 'package.json'), '{"type":"module"}\n');
  main = join(out, 'main.js');
}, 60_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

interface Running {
  child: ChildProcessWithoutNullStreams;
  send(message: unknown): void;
  next(): Promise<GatewayEvent>;
  stdout: string[];
  stderr: () => string;
  exit: Promise<number | null>;
}

function run(): Running {
  const child = spawn(process.execPath, [main], { cwd: root, stdio: 'pipe' });
  const stdout: string[] = [];
  let stderr = '';
  const queue: GatewayEvent[] = [];
  const waiting: ((e: GatewayEvent) => void)[] = [];
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  createInterface({ input: child.stdout }).on('line', (line) => {
    stdout.push(line);
    const event = JSON.parse(line) as GatewayEvent;
    const waiter = waiting.shift();
    if (waiter) waiter(event);
    else queue.push(event);
  });
  return {
    child,
    send: (m) => child.stdin.write(`${typeof m === 'string' ? m : JSON.stringify(m)}\n`),
    next: () => {
      const queued = queue.shift();
      return queued ? Promise.resolve(queued) : new Promise((r) => waiting.push(r));
    },
    stdout,
    stderr: () => stderr,
    exit: new Promise((r) => child.on('exit', (code) => r(code))),
  };
}

describe('gateway main.ts over stdin/stdout', () => {
  let upstream: FakeUpstream;
  beforeAll(async () => {
    upstream = await fakeUpstream();
  });
  afterAll(() => upstream.close());

  it('serves the protocol, injects the credential, and never prints it', async () => {
    const socketPath = join(root, 'gw.sock');
    const g = run();
    g.send({ protocol: GATEWAY_PROTOCOL, socketPath, upstream: upstream.url, credential: { header: 'x-api-key', value: SECRET } });
    expect(await g.next()).toEqual({ event: 'ready', protocol: GATEWAY_PROTOCOL, socketPath });
    g.send({ op: 'ping', id: 'p1' });
    expect(await g.next()).toEqual({ event: 'pong', id: 'p1' });
    g.send({ op: 'register', id: 'r1', token: 'tok-main', allow: [{ host: 'example.com', port: 443 }] });
    expect(await g.next()).toEqual({ event: 'registered', id: 'r1' });
    const res = await agentRequest(socketPath, 'tok-main', { method: 'POST', path: '/v1/messages', headers: { 'x-api-key': 'placeholder' }, body: '{}' });
    expect(res.status).toBe(200);
    expect(upstream.seen.at(-1)!.headers['x-api-key']).toBe(SECRET);
    g.send({ op: 'canary', id: 'c1' });
    expect(await g.next()).toMatchObject({ event: 'canary', id: 'c1', ok: true });
    g.send('this is not json');
    expect(await g.next()).toEqual({ event: 'error', message: 'not a JSON line' });
    g.send({ op: 'explode', id: 'x1' });
    expect(await g.next()).toMatchObject({ event: 'error', id: 'x1', message: expect.stringContaining('unknown op') });
    g.send({ op: 'release', id: 'u1', token: 'nobody' });
    expect(await g.next()).toEqual({ event: 'error', id: 'u1', message: 'unknown token' });
    g.send({ op: 'release', id: 'r2', token: 'tok-main' });
    const released = await g.next();
    expect(released).toMatchObject({ event: 'released', id: 'r2', decisions: [{ kind: 'api', path: '/v1/messages', status: 200, allowed: true }] });
    g.child.stdin.end();
    expect(await g.exit).toBe(0);
    expect(g.stdout.join('\n')).not.toContain(SECRET);
    expect(g.stderr()).not.toContain(SECRET);
  });

  it.each([
    ['a bad protocol', { protocol: GATEWAY_PROTOCOL + 1, socketPath: '/tmp/x.sock', upstream: 'https://api.anthropic.com', credential: { header: 'x-api-key', value: SECRET } }],
    ['a relative socket path', { protocol: GATEWAY_PROTOCOL, socketPath: 'x.sock', upstream: 'https://api.anthropic.com', credential: { header: 'x-api-key', value: SECRET } }],
    ['a bad credential header', { protocol: GATEWAY_PROTOCOL, socketPath: '/tmp/x.sock', upstream: 'https://api.anthropic.com', credential: { header: 'cookie', value: SECRET } }],
    ['broken JSON', `{"protocol":${GATEWAY_PROTOCOL},"credential":{"header":"x-api-key","value":"${SECRET}"`],
  ])('exits 2 with a fatal event on %s, without echoing the credential', async (_name, config) => {
    const g = run();
    g.send(config);
    const event = await g.next();
    expect(event).toMatchObject({ event: 'fatal', message: expect.stringMatching(/^config: /) });
    expect(await g.exit).toBe(2);
    expect(g.stdout.join('\n') + g.stderr()).not.toContain(SECRET);
  });

  it('answers a release with many decisions in parts, every line under 64 KiB of decisions, all of them joined', async () => {
    const socketPath = join(root, 'parts.sock');
    const g = run();
    g.send({ protocol: GATEWAY_PROTOCOL, socketPath, upstream: upstream.url, credential: null });
    expect(await g.next()).toMatchObject({ event: 'ready' });
    g.send({ op: 'register', id: 'r1', token: 'tok-parts', allow: [] });
    expect(await g.next()).toEqual({ event: 'registered', id: 'r1' });
    const hosts = Array.from({ length: 600 }, (_, i) => `refused-${i}.example`);
    for (let i = 0; i < hosts.length; i += 50) {
      await Promise.all(hosts.slice(i, i + 50).map(async (host) => (await connectVia(socketPath, 'tok-parts', `${host}:443`)).socket.destroy()));
    }
    const before = g.stdout.length;
    g.send({ op: 'release', id: 'u1', token: 'tok-parts' });
    const parts: GatewayEvent[] = [];
    for (let e = await g.next(); ; e = await g.next()) {
      parts.push(e);
      if (e.event !== 'decisions') break;
    }
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.slice(0, -1).every((e) => e.event === 'decisions' && e.id === 'u1')).toBe(true);
    expect(parts.at(-1)).toMatchObject({ event: 'released', id: 'u1' });
    for (const line of g.stdout.slice(before)) expect(line.length).toBeLessThan(PART_BYTES + 100);
    const all = parts.flatMap((e) => (e.event === 'decisions' || e.event === 'released' ? e.decisions : []));
    expect(all.map((d) => d.host).sort()).toEqual([...hosts].sort());
    g.child.stdin.end();
    expect(await g.exit).toBe(0);
  });

  it('exits 0 on SIGTERM', async () => {
    const g = run();
    g.send({ protocol: GATEWAY_PROTOCOL, socketPath: join(root, 'term.sock'), upstream: upstream.url, credential: null });
    expect(await g.next()).toMatchObject({ event: 'ready' });
    g.child.kill('SIGTERM');
    expect(await g.exit).toBe(0);
  });

  it('a socket path it cannot listen on is fatal', async () => {
    const g = run();
    g.send({ protocol: GATEWAY_PROTOCOL, socketPath: join(root, 'missing-dir', 'gw.sock'), upstream: upstream.url, credential: null });
    expect(await g.next()).toMatchObject({ event: 'fatal', message: expect.stringContaining('cannot listen on') });
    expect(await g.exit).toBe(1);
  });
});

describe('config and command validation', () => {
  const good = { protocol: GATEWAY_PROTOCOL, socketPath: '/run/agent-dispatch/gateway.sock', upstream: 'https://api.anthropic.com', credential: { header: 'authorization', value: 'Bearer abc' } };

  it('accepts a valid config, with or without a credential', () => {
    expect(parseConfig(JSON.stringify(good))).toEqual({ ok: true, value: good });
    expect(parseConfig(JSON.stringify({ ...good, credential: null }))).toMatchObject({ ok: true });
  });

  it.each([
    [{ ...good, upstream: 'ftp://x' }, 'upstream'],
    [{ ...good, upstream: 'https://user:pw@x' }, 'upstream'],
    [{ ...good, credential: { header: 'authorization', value: 'abc' } }, "'Bearer <token>'"],
    [{ ...good, credential: { header: 'x-api-key', value: 'a\r\nb' } }, 'printable ASCII'],
    [{ ...good, credential: { header: 'x-api-key', value: '' } }, 'printable ASCII'],
    [{ ...good, credential: undefined }, 'credential must be null'],
  ])('refuses %j', (config, message) => {
    const result = parseConfig(JSON.stringify(config));
    expect(result.ok).toBe(false);
    expect(!result.ok && result.message).toContain(message);
  });

  it('parses commands and names the id of a bad one', () => {
    expect(parseCommand('{"op":"register","id":"1","token":"t","allow":[{"host":"A.com","port":"*"}]}')).toEqual({
      ok: true,
      value: { op: 'register', id: '1', token: 't', allow: [{ host: 'a.com', port: '*' }] },
    });
    expect(parseCommand('{"op":"register","id":"2","token":"t","allow":[{"host":"a.com","port":0}]}')).toMatchObject({ ok: false, id: '2' });
    expect(parseCommand('{"op":"release","id":"3"}')).toMatchObject({ ok: false, id: '3', message: 'release needs a token' });
    expect(parseCommand('{"op":"ping"}')).toEqual({ ok: false, message: 'a command needs a string id' });
    expect(parseCommand('[]')).toMatchObject({ ok: false });
  });
});
