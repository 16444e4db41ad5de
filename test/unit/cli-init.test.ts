import { readFileSync, statSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fakeAgentDispatch, fakeClaude, run, setupEnv, type Env } from './cli-harness.js';
import { ORIGINAL_DEFAULT_SETTINGS } from '../helpers/fixtures.js';

let env: Env;

beforeEach(() => {
  env = setupEnv();
});

afterEach(() => {
  env.cleanup();
});

describe('init (TestInit)', () => {
  it('creates the config with the full settings block', async () => {
    const r = await run('init', '--no-register');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Created config: ${env.configPath}`);
    expect(env.config()).toEqual({
      agents: {},
      settings: ORIGINAL_DEFAULT_SETTINGS,
    });
    expect(statSync(env.configPath).mode & 0o777).toBe(0o600);
    expect(statSync(env.stateDir).mode & 0o777).toBe(0o700);
  });

  it('leaves an existing config alone', async () => {
    env.writeConfigText('agents:\n  api:\n    directory: /tmp\n# my comment\n');
    const before = readFileSync(env.configPath, 'utf8');
    const r = await run('init', '--no-register');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Config already exists: ${env.configPath}`);
    expect(readFileSync(env.configPath, 'utf8')).toBe(before);
  });

  it('without claude on PATH: warns, prints the manual claude mcp add-json command, exits 0', async () => {
    const r = await run('init');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Warning: claude CLI not found.');
    expect(r.stdout).toMatch(/ {2}claude mcp add-json agent-dispatch '\{"type":"stdio","command":"[^"]+","args":\["--max-semi-space-size=4","[^"]+cli\.js","serve"\]\}' --scope user/);
    expect(env.configExists()).toBe(true);
  });

  it('registers with claude mcp add-json agent-dispatch <json> --scope user — never a different agent-dispatch on PATH', async () => {
    const claude = fakeClaude(env.binDir);
    fakeAgentDispatch(env.binDir); // e.g. the unsandboxed Python original
    const r = await run('init');
    expect(r.code).toBe(0);
    const calls = claude.calls();
    expect(calls).toHaveLength(1);
    expect(calls[0]!.slice(0, 3)).toEqual(['mcp', 'add-json', 'agent-dispatch']);
    expect(calls[0]!.slice(4)).toEqual(['--scope', 'user']);
    expect(JSON.parse(calls[0]![3]!)).toMatchObject({ type: 'stdio', command: process.execPath, args: ['--max-semi-space-size=4', expect.stringMatching(/cli\.js$/), 'serve'] });
    expect(r.stdout).toContain('Registered MCP server with Claude Code (user scope).');
    expect(r.stdout).toContain('Next steps:');
    expect(r.stdout).toContain('  agent-dispatch add <name> <directory>');
  });

  it('without agent-dispatch on PATH, registers node with the server flags + the CLI script', async () => {
    const claude = fakeClaude(env.binDir);
    const r = await run('init');
    expect(r.code).toBe(0);
    const [call] = claude.calls();
    const spec = JSON.parse(call![3]!) as { type: string; command: string; args: string[] };
    expect(spec.type).toBe('stdio');
    expect(spec.command).toBe(process.execPath);
    expect(spec.args).toEqual(['--max-semi-space-size=4', expect.stringMatching(/cli\.js$/), 'serve']);
  });

  it('a failed registration prints claude’s error and the manual command, exit 0', async () => {
    const claude = fakeClaude(env.binDir, { exitCode: 1, stderr: 'boom\n' });
    fakeAgentDispatch(env.binDir);
    const r = await run('init');
    expect(r.code).toBe(0);
    expect(claude.calls()).toHaveLength(1);
    expect(r.stdout).toContain('Failed to register MCP server: boom');
    expect(r.stdout).toContain("  claude mcp add-json agent-dispatch '");
    expect(r.stdout).not.toContain('Registered MCP server');
  });

  it('an existing registration is reported as such, not as a failure', async () => {
    fakeClaude(env.binDir, { exitCode: 1, stderr: 'MCP server agent-dispatch already exists in user config\n' });
    fakeAgentDispatch(env.binDir);
    const r = await run('init');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('agent-dispatch is already registered with Claude Code (user scope).');
    expect(r.stdout).not.toContain('Failed to register');
    expect(r.stdout).toContain('Next steps:');
  });

  it('--no-register never calls claude', async () => {
    const claude = fakeClaude(env.binDir);
    const r = await run('init', '--no-register');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Skipped MCP registration (--no-register).');
    expect(claude.calls()).toEqual([]);
  });

  it('takes no positional arguments', async () => {
    const r = await run('init', 'extra');
    expect(r.code).toBe(2);
    expect(env.configExists()).toBe(false);
  });
});
