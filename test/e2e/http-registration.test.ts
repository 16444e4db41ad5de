/**
 * Registration of the HTTP service with the REAL Claude Code (the devDependency) in a throwaway HOME: the built
 * CLI (`npm run build` first) serves `serve --http` on a free loopback port, `token create` prints the
 * `claude mcp add --transport http …` line, that exact line is run, and `claude mcp list` connects to the service
 * with the token (✔ Connected) — while the same URL with a made-up token fails. SIGTERM stops the service.
 * No Docker needed: DOCKER_HOST points at nothing, and the service still answers.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLAUDE_BINARY as CLAUDE, isolatedClaudeEnv } from '../helpers/claude-binary.js';
import { waitFor } from '../helpers/process.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const STEP_MS = 90_000;

let root: string;
let env: NodeJS.ProcessEnv;
let serve: ChildProcess;
let serveLog = '';
let url: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first ('npm test' does it for you).`);
  root = mkdtempSync(join(tmpdir(), 'ad-http-registration-'));
  const bin = join(root, 'bin');
  for (const dir of [bin, join(root, 'home'), join(root, 'project')]) mkdirSync(dir);
  symlinkSync(CLAUDE, join(bin, 'claude'));
  env = isolatedClaudeEnv(root, bin);
  serve = spawn(process.execPath, [CLI, 'serve', '--http', '--listen', '127.0.0.1:0'], { cwd: join(root, 'project'), env, stdio: ['ignore', 'ignore', 'pipe'] });
  serve.stderr!.on('data', (chunk: Buffer) => (serveLog += chunk.toString()));
  await waitFor('serve --http to listen', async () => /at (http:\/\/127\.0\.0\.1:\d+\/mcp)/.test(serveLog), 30_000);
  url = /at (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(serveLog)![1]!;
}, STEP_MS);

afterAll(() => {
  if (serve && serve.exitCode === null) serve.kill('SIGKILL');
  if (root) rmSync(root, { recursive: true, force: true });
});

function runIn(command: string, args: string[]) {
  const r = spawnSync(command, args, { cwd: join(root, 'project'), env, encoding: 'utf8', timeout: STEP_MS, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, all: `${r.stdout}${r.stderr}` };
}
const agentDispatch = (...args: string[]) => runIn(process.execPath, [CLI, ...args]);

describe('serve --http registered with the real claude', () => {
  let line: string;

  it('token create prints the token once and the exact claude mcp add line', () => {
    const r = agentDispatch('token', 'create', 'alice', '--url', url);
    expect(r.code, r.all).toBe(0);
    const token = /^ {2}(adt_[A-Za-z0-9_-]{43})$/m.exec(r.stdout)?.[1];
    expect(token, r.stdout).toBeDefined();
    line = r.stdout.split('\n').find((l) => l.trimStart().startsWith('claude mcp add'))!.trim();
    expect(line).toBe(`claude mcp add --transport http agent-dispatch ${url} --header "Authorization: Bearer ${token}"`);
    expect(readFileSync(join(root, 'config', 'auth', 'tokens.json'), 'utf8')).not.toContain(token!);
  });

  it('running that line registers the service with Claude Code', () => {
    const r = runIn('/bin/sh', ['-c', line]);
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toContain(`Added HTTP MCP server agent-dispatch with URL: ${url}`);
  }, STEP_MS);

  it('claude mcp list connects with the token: ✔ Connected; a made-up token at the same URL fails', () => {
    const bad = runIn('claude', ['mcp', 'add', '--transport', 'http', 'intruder', url, '--header', `Authorization: Bearer adt_${'x'.repeat(43)}`]);
    expect(bad.code, bad.all).toBe(0);
    const r = runIn('claude', ['mcp', 'list']);
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toContain(`agent-dispatch: ${url} (HTTP) - ✔ Connected`);
    expect(r.stdout).toContain(`intruder: ${url} (HTTP) - ✘ Failed to connect`);
  }, STEP_MS);

  it('after token revoke alice, the registration no longer connects (no restart)', () => {
    expect(agentDispatch('token', 'revoke', 'alice').code).toBe(0);
    const r = runIn('claude', ['mcp', 'list']);
    expect(r.stdout).toContain(`agent-dispatch: ${url} (HTTP) - ✘ Failed to connect`);
  }, STEP_MS);

  it('SIGTERM stops the service: exit 143, port closed', async () => {
    const exited = new Promise<number | null>((resolve) => serve.once('exit', (code) => resolve(code)));
    serve.kill('SIGTERM');
    expect(await exited).toBe(143);
    const again = await fetch(url).then(
      () => 'answered',
      () => 'refused',
    );
    expect(again).toBe('refused');
  }, 30_000);
});
