/**
 * The built bin, end to end: `node dist/cli.js ...` as a user (or CI) runs it. `npm test` builds first;
 * on its own: `npm run build && npx vitest run test/unit/cli-bin.test.ts`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeClaude } from './cli-harness.js';

const REPO = resolve(import.meta.dirname, '..', '..');
const CLI = join(REPO, 'dist', 'cli.js');
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;

let root: string;

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first (npm test does).`);
  root = mkdtempSync(join(tmpdir(), 'ad-bin-'));
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

function bin(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 15_000,
    env: { ...process.env, AGENT_DISPATCH_CONFIG: join(root, 'state', 'agents.yaml'), NO_COLOR: '1', ...env },
  });
  if (result.error) throw result.error;
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function file(name: string, text: string): string {
  const path = join(root, name);
  writeFileSync(path, text);
  return path;
}

describe('node dist/cli.js', () => {
  it('is executable and prints its version', () => {
    expect(statSync(CLI).mode & 0o111).not.toBe(0);
    const r = bin(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`agent-dispatch ${VERSION}`);
  });

  it('policy check on the three shipped presets exits 0', () => {
    const r = bin(['policy', 'check', 'policies/default.yaml', 'policies/readonly-inspector.yaml', 'policies/builder.yaml']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Summary: 3 checked, 0 unusable, 0 error(s), 0 warning(s)');
  });

  it('a policy mounting /var/run/docker.sock exits 1 and names mount-docker-socket', () => {
    const path = file('socket.yaml', 'version: 1\nmounts:\n  - source: /var/run/docker.sock\n');
    const r = bin(['policy', 'check', path]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('mount-docker-socket');
  });

  it('a policy mounting ~ exits 1 and names mount-home', () => {
    const path = file('home.yaml', 'version: 1\nmounts:\n  - source: "~"\n    target: /data\n');
    const r = bin(['policy', 'check', path]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('mount-home');
  });

  it('a path that does not exist exits 2', () => {
    const r = bin(['policy', 'check', join(root, 'does-not-exist.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('UNUSABLE');
  });

  it('--json prints exactly one JSON document with the findings', () => {
    const path = file('socket2.yaml', 'version: 1\nmounts:\n  - source: /var/run/docker.sock\n');
    const r = bin(['policy', 'check', '--json', path, 'policies/default.yaml']);
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as { results: { subject: string; findings: { code: string }[] }[]; summary: Record<string, number> };
    expect(doc.results).toHaveLength(2);
    expect(doc.results[0]!.findings.map((f) => f.code)).toContain('mount-docker-socket');
    expect(doc.results[1]!.findings).toEqual([]);
    expect(doc.summary).toMatchObject({ checked: 2, unusable: 0 });
  });

  it('an unknown option exits 2', () => {
    const r = bin(['list', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Unknown option '--bogus'");
  });

  it('init registers a server command that exists (node + dist/cli.js when agent-dispatch is not on PATH)', () => {
    const binDir = join(root, 'bin');
    mkdirSync(binDir, { recursive: true });
    const claude = fakeClaude(binDir);
    const r = bin(['init'], { PATH: binDir, AGENT_DISPATCH_CONFIG: join(root, 'init', 'agents.yaml') });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Registered MCP server with Claude Code (user scope).');
    const call = claude.calls().find((c) => c[1] === 'add-json');
    expect(call!.slice(0, 3)).toEqual(['mcp', 'add-json', 'agent-dispatch']);
    expect(call!.slice(4)).toEqual(['--scope', 'user']);
    const spec = JSON.parse(call![3]!) as { type: string; command: string; args: string[] };
    expect(spec).toEqual({ type: 'stdio', command: process.execPath, args: ['--max-semi-space-size=4', CLI, 'serve'] });
    expect(existsSync(spec.args[1]!)).toBe(true);
    expect(existsSync(join(root, 'init', 'agents.yaml'))).toBe(true);
  });

  it('init registers this Node and script (with the server flags) also when agent-dispatch on PATH is this program', () => {
    const binDir = join(root, 'bin-linked');
    mkdirSync(binDir, { recursive: true });
    symlinkSync(CLI, join(binDir, 'agent-dispatch'));
    const claude = fakeClaude(binDir);
    const r = bin(['init'], { PATH: binDir, AGENT_DISPATCH_CONFIG: join(root, 'init-linked', 'agents.yaml') });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const spec = JSON.parse(claude.calls().find((c) => c[1] === 'add-json')![3]!) as { command: string; args: string[] };
    expect(spec).toEqual({ type: 'stdio', command: process.execPath, args: ['--max-semi-space-size=4', CLI, 'serve'] });
  });

  it('init: an npm-linked `agent-dispatch serve` registration is this program (already registered)', () => {
    const binDir = join(root, 'bin-linked-registered');
    mkdirSync(binDir, { recursive: true });
    symlinkSync(CLI, join(binDir, 'agent-dispatch'));
    const claude = fakeClaude(binDir, { servers: [{ name: 'agent-dispatch', scope: 'user', config: { type: 'stdio', command: join(binDir, 'agent-dispatch'), args: ['serve'] } }] });
    const r = bin(['init'], { PATH: binDir, AGENT_DISPATCH_CONFIG: join(root, 'init-linked-registered', 'agents.yaml') });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('agent-dispatch is already registered with Claude Code (user scope).');
    expect(claude.calls().map((c) => c[1])).toEqual(['get', 'list']);
  });

  it('init over the Python original, with this program as agent-dispatch on PATH: the fix is `agent-dispatch init --replace`', () => {
    const binDir = join(root, 'bin-linked-original');
    mkdirSync(binDir, { recursive: true });
    symlinkSync(CLI, join(binDir, 'agent-dispatch'));
    fakeClaude(binDir, { servers: [{ name: 'agent-dispatch', scope: 'user', config: { type: 'stdio', command: '/home/me/.local/bin/agent-dispatch', args: ['serve'] } }] });
    const r = bin(['init'], { PATH: binDir, AGENT_DISPATCH_CONFIG: join(root, 'init-linked-original', 'agents.yaml') });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('  agent-dispatch (user scope): /home/me/.local/bin/agent-dispatch serve');
    expect(r.stderr).toContain('\n  agent-dispatch init --replace\n');
    expect(r.stderr).not.toContain('is not this program.');
  });
});
