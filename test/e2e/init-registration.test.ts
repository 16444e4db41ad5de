/**
 * `init` and `doctor` against the REAL Claude Code (the devDependency, 2.1.197) in a throwaway HOME, over a
 * registration the Python original left: the built CLI (`npm run build` first; `npm test` does it) must refuse
 * it, replace it with --replace, and leave Claude Code running this program — which `claude mcp list` proves by
 * starting it over stdio. No Docker needed: DOCKER_HOST points at nothing, and `serve` still answers.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLAUDE_BINARY as CLAUDE, isolatedClaudeEnv } from '../helpers/claude-binary.js';
import { parseMcpGet } from '../../src/cli/mcp-output.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
/** Health checks spawn every registered server; Claude Code waits up to 30 s for one. */
const STEP_MS = 90_000;

let root: string;
let env: NodeJS.ProcessEnv;
/** The Python original's console script, as its `init` registers it: `<abs path> serve`. */
let original: string;

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first ('npm test' does it for you).`);
  root = mkdtempSync(join(tmpdir(), 'ad-init-registration-'));
  const bin = join(root, 'bin');
  mkdirSync(bin);
  mkdirSync(join(root, 'home'));
  mkdirSync(join(root, 'project'));
  symlinkSync(CLAUDE, join(bin, 'claude'));
  original = join(bin, 'agent-dispatch');
  writeFileSync(original, '#!/bin/sh\n# Stand-in for the Python original (pip console script: from agent_dispatch.cli import cli).\nexit 1\n');
  chmodSync(original, 0o755);
  env = isolatedClaudeEnv(root, bin);
});

afterAll(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

function runIn(command: string, args: string[]) {
  const r = spawnSync(command, args, { cwd: join(root, 'project'), env, encoding: 'utf8', timeout: STEP_MS, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, all: `${r.stdout}${r.stderr}` };
}
const claude = (...args: string[]) => runIn(join(root, 'bin', 'claude'), args);
const agentDispatch = (...args: string[]) => runIn(process.execPath, [CLI, ...args]);

describe('init over the Python original’s registration, with the real claude', () => {
  it('the stand-in registration is in place', () => {
    const added = claude('mcp', 'add-json', 'agent-dispatch', JSON.stringify({ type: 'stdio', command: original, args: ['serve'] }), '--scope', 'user');
    expect(added.code, added.all).toBe(0);
    expect(parseMcpGet(claude('mcp', 'get', 'agent-dispatch').stdout)).toMatchObject({ scope: 'user', command: original, args: 'serve' });
  }, STEP_MS);

  it('init refuses it: names command, scope and that it runs unsandboxed, exit 1 with the fix; nothing changed', () => {
    const r = agentDispatch('init');
    expect(r.code, r.all).toBe(1);
    expect(r.stderr).toContain('agent-dispatch is registered with Claude Code, but not as this program:');
    expect(r.stderr).toContain(`  agent-dispatch (user scope): ${original} serve`);
    expect(r.stderr).toContain('it runs every dispatch unsandboxed');
    expect(r.stderr).toContain(`  ${process.execPath} ${CLI} init --replace`);
    expect(r.stderr).toContain('  claude mcp remove agent-dispatch -s user');
    expect(r.stdout).not.toContain('already registered');
    expect(parseMcpGet(claude('mcp', 'get', 'agent-dispatch').stdout)).toMatchObject({ command: original, args: 'serve' });
  }, STEP_MS);

  it('init --replace removes it and registers this program', () => {
    const r = agentDispatch('init', '--replace');
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toContain(`Removed agent-dispatch (user scope): ${original} serve`);
    expect(r.stdout).toContain('Registered MCP server with Claude Code (user scope).');
  }, STEP_MS);

  it('claude mcp get shows this program: node, the server flags, dist/cli.js serve — and it connected', () => {
    const got = parseMcpGet(claude('mcp', 'get', 'agent-dispatch').stdout);
    expect(got).toMatchObject({ scope: 'user', type: 'stdio', command: process.execPath, args: `--max-semi-space-size=4 ${CLI} serve`, status: '✔ Connected' });
  }, STEP_MS);

  it('claude mcp list starts it over stdio (no Docker engine): ✔ Connected', () => {
    const r = claude('mcp', 'list');
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toContain(`agent-dispatch: ${process.execPath} --max-semi-space-size=4 ${CLI} serve - ✔ Connected`);
  }, STEP_MS);

  it('init again: already registered, exit 0', () => {
    const r = agentDispatch('init');
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toContain('agent-dispatch is already registered with Claude Code (user scope).');
  }, STEP_MS);

  it('the original under another name (no "type", local scope): doctor FAILs it; init --replace removes only it', () => {
    const added = claude('mcp', 'add-json', 'dispatch-py', JSON.stringify({ command: 'python3', args: ['-m', 'agent_dispatch', 'serve'] }), '--scope', 'local');
    expect(added.code, added.all).toBe(0);

    const doctor = agentDispatch('doctor');
    expect(doctor.stdout).toContain(`[OK] agent-dispatch is registered with Claude Code (user scope; this program: ${CLI})`);
    expect(doctor.stdout).toContain('[FAIL] MCP server dispatch-py runs the Python original: dispatch-py (local scope): python3 -m agent_dispatch serve');
    expect(doctor.stdout).toContain('[FAIL] Docker engine not reachable');
    expect(doctor.code, doctor.all).toBe(3); // the engine is down: 3, whatever else failed

    const refused = agentDispatch('init');
    expect(refused.code, refused.all).toBe(1);
    expect(refused.stderr).toContain('  claude mcp remove dispatch-py -s local');

    const r = agentDispatch('init', '--replace');
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toContain('Removed dispatch-py (local scope): python3 -m agent_dispatch serve');
    expect(r.stdout).toContain('agent-dispatch is already registered with Claude Code (user scope).');
    expect(claude('mcp', 'get', 'dispatch-py').code).toBe(1);
    expect(parseMcpGet(claude('mcp', 'get', 'agent-dispatch').stdout)).toMatchObject({ command: process.execPath });
  }, STEP_MS * 3);
});
