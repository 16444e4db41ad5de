/** The in-container bridge, run for real as `node -e BRIDGE_SCRIPT -- cmd...` against a fake gateway socket. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BRIDGE_SCRIPT, bridgeCommand } from '../../src/gateway/bridge-script.js';
import { BRIDGE_ENV, TOKEN_PREFIX } from '../../src/gateway/protocol.js';
import { closeServer, listenLocal } from './gateway-harness.js';

let dir: string;
let socketPath: string;
let gateway: Server;
const firstLines: string[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ad-bridge-'));
  socketPath = join(dir, 'gw.sock');
  // A fake gateway: records the token line, then echoes everything after it in upper case.
  gateway = createServer((socket) => {
    let buffered = '';
    let seenLine = false;
    socket.on('data', (chunk: Buffer) => {
      if (seenLine) return void socket.write(chunk.toString().toUpperCase());
      buffered += chunk.toString();
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      seenLine = true;
      firstLines.push(buffered.slice(0, newline + 1));
      const rest = buffered.slice(newline + 1);
      if (rest) socket.write(rest.toUpperCase());
    });
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => gateway.listen(socketPath, resolve));
});

afterAll(async () => {
  await closeServer(gateway);
  rmSync(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = createServer();
  const port = await listenLocal(server);
  await closeServer(server);
  return port;
}

function runBridge(childScript: string, env: Record<string, string | undefined>): Promise<{ code: number | null; stdout: string; stderr: string; pid: number }> {
  const [cmd, ...args] = bridgeCommand([process.execPath, '-e', childScript]);
  expect(cmd).toBe('node');
  const child = spawn(process.execPath, args, { env: { PATH: process.env.PATH, ...env } as NodeJS.ProcessEnv });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr, pid: child.pid! })));
}

const AGENT = `
const net = require('net');
const port = Number(process.env.AGENT_DISPATCH_BRIDGE_PORT);
const env = { socket: process.env.${BRIDGE_ENV.socket} ?? null, token: process.env.${BRIDGE_ENV.token} ?? null, other: process.env.KEEP_ME ?? null };
const c = net.connect(port, '127.0.0.1', () => c.end('hello through the bridge'));
let got = '';
c.on('data', (d) => (got += d));
c.on('close', () => { process.stdout.write(JSON.stringify({ env, got })); process.exit(7); });
`;

describe('BRIDGE_SCRIPT', () => {
  it('bridgeCommand wraps the command after --', () => {
    expect(bridgeCommand(['claude', '-p', 'hi'])).toEqual(['node', '-e', BRIDGE_SCRIPT, '--', 'claude', '-p', 'hi']);
  });

  it('pipes TCP to the socket after the token line, hides the env, propagates the exit code', async () => {
    const port = await freePort();
    const result = await runBridge(AGENT, {
      [BRIDGE_ENV.socket]: socketPath,
      [BRIDGE_ENV.token]: 'tok-bridge-1',
      AGENT_DISPATCH_BRIDGE_PORT: String(port),
      KEEP_ME: 'yes',
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(7);
    expect(JSON.parse(result.stdout)).toEqual({ env: { socket: null, token: null, other: 'yes' }, got: 'HELLO THROUGH THE BRIDGE' });
    expect(firstLines).toContain(`${TOKEN_PREFIX}tok-bridge-1\n`);
  });

  it('forwards SIGTERM to the command and exits 128+15 when it dies of it', async () => {
    const port = await freePort();
    const [, ...args] = bridgeCommand([process.execPath, '-e', "process.stdout.write('up'); setInterval(() => {}, 1000)"]);
    const child = spawn(process.execPath, args, {
      env: { PATH: process.env.PATH, [BRIDGE_ENV.socket]: socketPath, [BRIDGE_ENV.token]: 't', AGENT_DISPATCH_BRIDGE_PORT: String(port) },
    });
    await new Promise((resolve) => child.stdout.once('data', resolve));
    child.kill('SIGTERM');
    const code = await new Promise((resolve) => child.on('close', (c) => resolve(c)));
    expect(code).toBe(143);
  });

  it('exits 125 with a clear message when its env is missing', async () => {
    const result = await runBridge('process.exit(0)', { [BRIDGE_ENV.token]: 't' });
    expect(result.code).toBe(125);
    expect(result.stderr).toContain(`agent-dispatch bridge: ${BRIDGE_ENV.socket} and ${BRIDGE_ENV.token} must be set`);
  });

  it('exits 125 when it cannot listen', async () => {
    const busy = createServer();
    const port = await listenLocal(busy);
    try {
      const result = await runBridge('process.exit(0)', { [BRIDGE_ENV.socket]: socketPath, [BRIDGE_ENV.token]: 't', AGENT_DISPATCH_BRIDGE_PORT: String(port) });
      expect(result.code).toBe(125);
      expect(result.stderr).toContain(`cannot listen on 127.0.0.1:${port}`);
    } finally {
      await closeServer(busy);
    }
  });
});
