import { readFileSync, statSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { initCommand } from '../../src/cli/commands/init.js';
import { capture, fakeAgentDispatch, fakeClaude, originalServer, oursServer, run, setupEnv, SOURCE_CLI, type Env, type FakeClaude, type FakeServer } from './cli-harness.js';
import { ORIGINAL_DEFAULT_SETTINGS } from '../helpers/fixtures.js';

let env: Env;

beforeEach(() => {
  env = setupEnv();
});

afterEach(() => {
  env.cleanup();
});

const addJsonCall = (claude: FakeClaude) => claude.calls().find((c) => c[1] === 'add-json');

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
    // First what is registered already (get, then list for other names), then the registration.
    expect(calls.map((c) => c.slice(0, 2))).toEqual([['mcp', 'get'], ['mcp', 'list'], ['mcp', 'add-json']]);
    const add = calls[2]!;
    expect(add.slice(0, 3)).toEqual(['mcp', 'add-json', 'agent-dispatch']);
    expect(add.slice(4)).toEqual(['--scope', 'user']);
    expect(JSON.parse(add[3]!)).toMatchObject({ type: 'stdio', command: process.execPath, args: ['--max-semi-space-size=4', expect.stringMatching(/cli\.js$/), 'serve'] });
    expect(r.stdout).toContain('Registered MCP server with Claude Code (user scope).');
    expect(r.stdout).toContain('Next steps:');
    // `agent-dispatch` on PATH is another program here: the next steps name this one.
    expect(r.stdout).toMatch(/\n {2}\S*node\S* \S+cli\.js add <name> <directory>\n/);
    expect(r.stdout).not.toContain('  agent-dispatch add');
    expect(claude.servers()).toEqual([oursServer('user')]);
  });

  it('without agent-dispatch on PATH, registers node with the server flags + the CLI script', async () => {
    const claude = fakeClaude(env.binDir);
    const r = await run('init');
    expect(r.code).toBe(0);
    const spec = JSON.parse(addJsonCall(claude)![3]!) as { type: string; command: string; args: string[] };
    expect(spec.type).toBe('stdio');
    expect(spec.command).toBe(process.execPath);
    expect(spec.args).toEqual(['--max-semi-space-size=4', expect.stringMatching(/cli\.js$/), 'serve']);
  });

  it('a failed registration prints claude’s error and the manual command, exit 0', async () => {
    const claude = fakeClaude(env.binDir, { exitCode: 1, stderr: 'boom\n' });
    fakeAgentDispatch(env.binDir);
    const r = await run('init');
    expect(r.code).toBe(0);
    expect(addJsonCall(claude)).toBeDefined();
    expect(r.stdout).toContain('Failed to register MCP server: boom');
    expect(r.stdout).toContain("  claude mcp add-json agent-dispatch '");
    expect(r.stdout).not.toContain('Registered MCP server');
  });

  it('this program already registered (user scope): says so, changes nothing, exit 0', async () => {
    const claude = fakeClaude(env.binDir, { servers: [oursServer('user')] });
    fakeAgentDispatch(env.binDir);
    const r = await run('init');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('agent-dispatch is already registered with Claude Code (user scope).');
    expect(r.stdout).not.toContain('Failed to register');
    expect(r.stdout).toContain('Next steps:');
    expect(addJsonCall(claude)).toBeUndefined();
    expect(claude.servers()).toEqual([oursServer('user')]);
  });

  it('this program registered only in the local scope: also registered in the user scope', async () => {
    const claude = fakeClaude(env.binDir, { servers: [oursServer('local')] });
    const r = await run('init');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Registered MCP server with Claude Code (user scope).');
    expect(claude.servers()).toEqual([oursServer('local'), oursServer('user')]);
  });

  it('add-json says "already exists" for a user registration a nearer scope hides (this program in both): already registered', async () => {
    const claude = fakeClaude(env.binDir, { servers: [oursServer('local'), oursServer('user')] });
    const r = await run('init');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('agent-dispatch is already registered with Claude Code (user scope).');
    expect(claude.servers()).toHaveLength(2);
  });
});

describe('init over an existing registration that is not this program', () => {
  const never = () => Promise.resolve(false);
  const yes = () => Promise.resolve(true);
  const init = (argv: string[], confirm: (question: string) => Promise<boolean> = never) => capture(() => initCommand(argv, confirm));

  it('the Python original as agent-dispatch: names it (command, scope, unsandboxed), changes nothing, exit 1 with the fix', async () => {
    const python = fakeAgentDispatch(env.binDir);
    const claude = fakeClaude(env.binDir, { servers: [originalServer(python)] });
    const r = await init([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('agent-dispatch is registered with Claude Code, but not as this program:');
    expect(r.stderr).toContain(`  agent-dispatch (user scope): ${python} serve`);
    expect(r.stderr).toContain('That is the Python original agent-dispatch: it runs every dispatch unsandboxed');
    // `agent-dispatch` on this PATH is the original, so the fix names this program by node and script.
    expect(r.stderr).toContain(`  ${process.execPath} ${SOURCE_CLI} init --replace`);
    expect(r.stderr).toContain('`agent-dispatch` on your PATH is not this program.');
    expect(r.stderr).toContain('  claude mcp remove agent-dispatch -s user');
    expect(r.stdout).not.toContain('Registered MCP server');
    expect(r.stdout).not.toContain('already registered');
    expect(claude.calls().map((c) => c[1])).toEqual(['get', 'list']);
    expect(claude.servers()).toEqual([originalServer(python)]);
  });

  it('through main (not a terminal): the same refusal, never a prompt', async () => {
    const python = fakeAgentDispatch(env.binDir);
    fakeClaude(env.binDir, { servers: [originalServer(python)] });
    const tty = Object.getOwnPropertyDescriptor(process.stdin, 'isTTY');
    Object.defineProperty(process.stdin, 'isTTY', { value: undefined, configurable: true });
    try {
      const r = await run('init');
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('init --replace');
      expect(r.stderr).not.toContain('[y/N]');
    } finally {
      if (tty) Object.defineProperty(process.stdin, 'isTTY', tty);
      else delete (process.stdin as { isTTY?: boolean }).isTTY;
    }
  });

  it('--replace removes it and registers this program; says what it removed', async () => {
    const python = fakeAgentDispatch(env.binDir);
    const claude = fakeClaude(env.binDir, { servers: [originalServer(python)] });
    const r = await run('init', '--replace');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Removed agent-dispatch (user scope): ${python} serve`);
    expect(r.stdout).toContain('Registered MCP server with Claude Code (user scope).');
    expect(claude.calls().filter((c) => c[1] === 'remove')).toEqual([['mcp', 'remove', 'agent-dispatch', '-s', 'user']]);
    expect(claude.servers()).toEqual([oursServer('user')]);
  });

  it('a "yes" at the prompt is --replace; a "no" is the refusal', async () => {
    const python = fakeAgentDispatch(env.binDir);
    const claude = fakeClaude(env.binDir, { servers: [originalServer(python)] });
    const no = await init([], never);
    expect(no.code).toBe(1);
    expect(claude.servers()).toEqual([originalServer(python)]);
    const questions: string[] = [];
    const r = await init([], (q: string) => {
      questions.push(q);
      return yes();
    });
    expect(questions).toEqual(['Replace with this program?']);
    expect(r.code).toBe(0);
    expect(claude.servers()).toEqual([oursServer('user')]);
  });

  it('in every scope: each named with its scope, and --replace removes them all', async () => {
    const claude = fakeClaude(env.binDir, {
      servers: [originalServer('/home/me/.local/bin/agent-dispatch', 'user'), originalServer('/home/me/.local/bin/agent-dispatch', 'local'), { name: 'agent-dispatch', scope: 'project', config: { type: 'stdio', command: 'uvx', args: ['agent-dispatch', 'serve'] } }],
    });
    const refused = await init([]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('  agent-dispatch (local scope): /home/me/.local/bin/agent-dispatch serve');
    expect(refused.stderr).toContain('  agent-dispatch (user scope): /home/me/.local/bin/agent-dispatch serve');
    expect(refused.stderr).toContain('  agent-dispatch (project scope): uvx agent-dispatch serve');
    for (const scope of ['local', 'user', 'project']) expect(refused.stderr).toContain(`  claude mcp remove agent-dispatch -s ${scope}`);

    const r = await init(['--replace']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Removed agent-dispatch (local scope)');
    expect(r.stdout).toContain('Removed agent-dispatch (user scope)');
    expect(r.stdout).toContain('Removed agent-dispatch (project scope): uvx agent-dispatch serve');
    expect(claude.servers()).toEqual([oursServer('user')]);
  });

  it('in the same scopes with the same command (no conflict to report): removed scope by scope until none is left', async () => {
    const claude = fakeClaude(env.binDir, { servers: [originalServer('/opt/ad/agent-dispatch', 'user'), originalServer('/opt/ad/agent-dispatch', 'local')] });
    const r = await init(['--replace']);
    expect(r.code).toBe(0);
    expect(claude.calls().filter((c) => c[1] === 'remove').map((c) => c[4])).toEqual(['local', 'user']);
    expect(claude.servers()).toEqual([oursServer('user')]);
  });

  it('hidden behind this program in a nearer scope: still found (user scope), and --replace removes only it', async () => {
    const claude = fakeClaude(env.binDir, { servers: [originalServer('/home/me/.local/bin/agent-dispatch', 'user'), oursServer('local')] });
    const refused = await init([]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('  agent-dispatch (user scope): /home/me/.local/bin/agent-dispatch serve');
    expect(refused.stderr).not.toContain('(local scope)');
    const r = await init(['--replace']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Removed agent-dispatch (user scope)');
    expect(claude.servers()).toEqual([oursServer('local'), oursServer('user')]);
  });

  it('something else as agent-dispatch (not the original): named as not this program, replaced only with --replace', async () => {
    const claude = fakeClaude(env.binDir, { servers: [{ name: 'agent-dispatch', scope: 'user', config: { type: 'http', url: 'https://example.com/mcp' } }] });
    const refused = await init([]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('  agent-dispatch (user scope): https://example.com/mcp');
    expect(refused.stderr).toContain('That is not this program: Claude Code runs it as agent-dispatch instead of this sandboxed server.');
    expect((await init(['--replace'])).code).toBe(0);
    expect(claude.servers()).toEqual([oursServer('user')]);
  });

  it('the Python original under another name, next to this program: reported, removed with --replace, this program kept', async () => {
    const old: FakeServer = { name: 'dispatch-old', scope: 'user', config: { type: 'stdio', command: 'python3', args: ['-m', 'agent_dispatch', 'serve'] } };
    const claude = fakeClaude(env.binDir, { servers: [oursServer('user'), old] });
    const refused = await init([]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('Claude Code has the Python original agent-dispatch registered:');
    expect(refused.stderr).toContain('  dispatch-old (user scope): python3 -m agent_dispatch serve');
    expect(refused.stderr).toContain('  claude mcp remove dispatch-old -s user');
    const r = await init(['--replace']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Removed dispatch-old (user scope): python3 -m agent_dispatch serve');
    expect(r.stdout).toContain('agent-dispatch is already registered with Claude Code (user scope).');
    expect(claude.servers()).toEqual([oursServer('user')]);
  });

  it('unrelated servers are left alone', async () => {
    const github: FakeServer = { name: 'github', scope: 'user', config: { type: 'stdio', command: 'npx', args: ['-y', '@modelcontextprotocol/server-github'] } };
    const tools: FakeServer = { name: 'tools', scope: 'user', config: { type: 'stdio', command: '/opt/agent-dispatch/bin/other', args: ['serve'] } };
    const claude = fakeClaude(env.binDir, { servers: [github, tools] });
    const r = await init([]);
    expect(r.code).toBe(0);
    expect(claude.servers()).toEqual([github, tools, oursServer('user')]);
  });

  it('a removal that fails: its error, nothing registered, exit 1', async () => {
    const claude = fakeClaude(env.binDir, { servers: [originalServer('/x/agent-dispatch')], removeExit: 1, removeStderr: 'EACCES: permission denied, open ~/.claude.json' });
    const r = await init(['--replace']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Could not remove agent-dispatch (user scope): /x/agent-dispatch serve: claude mcp remove exited with code 1: EACCES');
    expect(addJsonCall(claude)).toBeUndefined();
  });

  it('claude mcp get failing: says it could not check, registers nothing, exit 1', async () => {
    const claude = fakeClaude(env.binDir, { getExit: 2, getStderr: 'Error: config unreadable' });
    const r = await init(['--replace']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Could not check the existing MCP registrations: claude mcp get exited with code 2: Error: config unreadable');
    expect(addJsonCall(claude)).toBeUndefined();
  });

  it('claude mcp list failing: a warning (other names could not be checked), then agent-dispatch as usual', async () => {
    const claude = fakeClaude(env.binDir, { mcpList: '', mcpListExit: 1 });
    const r = await init([]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Warning: Could not look for other registrations of the Python original: claude mcp list exited with code 1');
    expect(claude.servers()).toEqual([oursServer('user')]);
  });

  it('claude mcp list failing while this program (local) hides a user registration: cannot verify it, exit 1', async () => {
    const claude = fakeClaude(env.binDir, { servers: [oursServer('local'), originalServer('/x/agent-dispatch', 'user')], mcpList: '', mcpListExit: 1 });
    const r = await init([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('agent-dispatch is already registered in the user scope, and what it runs could not be checked.');
    expect(r.stdout).not.toContain('already registered with Claude Code');
    expect(claude.servers()).toHaveLength(2);
  });

  it('--no-register wins over --replace', async () => {
    const claude = fakeClaude(env.binDir, { servers: [originalServer('/x/agent-dispatch')] });
    const r = await init(['--no-register', '--replace']);
    expect(r.code).toBe(0);
    expect(claude.calls()).toEqual([]);
  });
});

describe('init', () => {
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
