import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { doctorCommand } from '../../src/cli/commands/doctor.js';
import { GATEWAY_PROTOCOL } from '../../src/gateway/protocol.js';
import { createEngine, type Engine } from '../../src/sandbox/engine.js';
import { dockerAvailable } from '../helpers/docker.js';
import { doctorEnvEach, fakeEngine } from '../helpers/fake-engine.js';
import { capture, cp1251Config, fakeAgentDispatch, fakeClaude, originalServer, oursServer, run, SOURCE_CLI, STACK_LINE, type FakeClaudeOptions } from './cli-harness.js';

/** Claude Code with this program registered (user scope). */
const REGISTERED: FakeClaudeOptions = { servers: [oursServer('user')] };

const envOf = doctorEnvEach();

function doctor(engine: Engine = fakeEngine()) {
  return capture(() => doctorCommand([], engine));
}

/** claude (registered) and agent-dispatch on PATH, one healthy agent: the all-green starting point. */
function healthy(extra: Record<string, unknown> = {}): string {
  fakeClaude(envOf().binDir, REGISTERED);
  fakeAgentDispatch(envOf().binDir);
  const dir = envOf().project('api', { 'CLAUDE.md': '# api\n', '.mcp.json': '{"mcpServers": {}}' });
  envOf().writeConfig({ agents: { api: { directory: dir } }, ...extra });
  return dir;
}

describe('doctor (TestDoctor)', () => {
  it('all OK: All checks passed, no FAIL, exit 0', async () => {
    const dir = healthy();
    const r = await doctor();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`[OK] claude CLI: ${envOf().binDir}/claude`);
    expect(r.stdout).toContain('[OK] Docker engine reachable: server 27.0.0 (API 1.46)');
    expect(r.stdout).toContain(`[OK] Config: ${envOf().configPath} (1 agent)`);
    expect(r.stdout).toContain(`[OK] agent-dispatch is registered with Claude Code (user scope; this program: ${SOURCE_CLI})`);
    expect(r.stdout).toContain(`[OK] api: ${dir} [CLAUDE.md, .mcp.json]`);
    expect(r.stdout).toContain("[OK] api: policy 'default' valid");
    expect(r.stdout).toContain('[OK] agent-dispatch/agent:latest present');
    expect(r.stdout).toContain('[OK] No groups configured');
    expect(r.stdout).toContain('All checks passed.');
    expect(r.stdout).not.toContain('[FAIL]');
    expect(r.stdout).not.toContain('[WARN]');
  });

  it('asks claude mcp get agent-dispatch and claude mcp list, by the path it found', async () => {
    healthy();
    const claude = fakeClaude(envOf().binDir, REGISTERED);
    await doctor();
    expect(claude.calls()).toEqual([
      ['mcp', 'get', 'agent-dispatch'],
      ['mcp', 'list'],
    ]);
  });

  it('claude missing: FAIL and a non-zero exit', async () => {
    fakeAgentDispatch(envOf().binDir);
    envOf().writeConfig({ agents: { api: { directory: envOf().project('api') } } });
    const r = await doctor();
    expect(r.code).not.toBe(0);
    expect(r.stdout).toContain('[FAIL] claude CLI not found on PATH');
    expect(r.stdout).toContain('[WARN] Skipped (claude CLI missing)');
  });

  it('agent-dispatch not on PATH: WARN only', async () => {
    healthy();
    rmSync(join(envOf().binDir, 'agent-dispatch'));
    const r = await doctor();
    expect(r.stdout).toContain('[WARN] agent-dispatch not on PATH (MCP server still works via absolute path)');
    expect(r.stdout).toContain('0 issues, 1 warning');
    expect(r.code).toBe(0);
  });

  it.each([
    ['a python console script', '#!/usr/bin/python3\n# -*- coding: utf-8 -*-\nimport sys\nfrom agent_dispatch.cli import cli\nsys.exit(cli())\n'],
    ['a wrapper naming its package', '#!/bin/sh\nexec /opt/venv/bin/python -m agent_dispatch "$@"\n'],
  ])('agent-dispatch on PATH is the Python original (%s): FAIL naming it, the hazard and the fix', async (_, script) => {
    healthy();
    const path = join(envOf().binDir, 'agent-dispatch');
    writeFileSync(path, script, { mode: 0o755 });
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`[FAIL] agent-dispatch on PATH is the Python original: ${path}`);
    expect(r.stdout).toContain('its `test` dispatches unsandboxed');
    expect(r.stdout).toMatch(/Fix: uninstall it \(pip uninstall agent-dispatch.*until then run \S*node\S* \S+cli\.js/);
  });

  it('a FIFO named agent-dispatch on PATH: not a program, and doctor does not block on it', async () => {
    healthy();
    const path = join(envOf().binDir, 'agent-dispatch');
    rmSync(path);
    spawnSync('mkfifo', ['-m', '0755', path]);
    const r = await doctor();
    expect(r.stdout).toContain('[WARN] agent-dispatch not on PATH');
    expect(r.code).toBe(0);
  });

  it('config missing: WARN with the init hint, exit 0 when nothing else fails', async () => {
    fakeClaude(envOf().binDir, REGISTERED);
    fakeAgentDispatch(envOf().binDir);
    const r = await doctor();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`[WARN] Config not found: ${envOf().configPath}`);
    // `agent-dispatch` on PATH is not this program here: the hint names one that is.
    expect(r.stdout).toMatch(/Run: \S*node\S* \S+cli\.js init\n/);
    expect(r.stdout).toContain('[WARN] Skipped (no usable config)');
    expect(r.stdout).not.toContain('[FAIL]');
  });

  it.each([
    ['bad YAML', () => 'agents: [unclosed\n', 'Config not valid YAML'],
    ['a bad schema', () => 'agents:\n  api:\n    directory: 123\n', 'Config schema invalid'],
    ['cp1251 bytes', () => cp1251Config('/tmp'), 'Config is not valid UTF-8'],
  ])('%s: FAIL, diagnosed without a crash', async (_label, bytes, title) => {
    fakeClaude(envOf().binDir, REGISTERED);
    fakeAgentDispatch(envOf().binDir);
    envOf().writeConfigText(bytes());
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`[FAIL] ${title}`);
    expect(r.stdout).toContain(`Config at ${envOf().configPath}`);
    expect(r.all).not.toMatch(STACK_LINE);
  });

  it('a non-UTF-8 config says to re-save it as UTF-8', async () => {
    fakeClaude(envOf().binDir, REGISTERED);
    envOf().writeConfigText(cp1251Config('/tmp'));
    const r = await doctor();
    expect(r.stdout).toContain('not valid UTF-8');
    expect(r.stdout).toContain('Re-save the file as UTF-8.');
  });

  it('an unreadable config is diagnosed as such', async () => {
    fakeClaude(envOf().binDir, REGISTERED);
    mkdirSync(envOf().configPath, { recursive: true }); // a directory where the file should be: EISDIR
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[FAIL] Config could not be read');
  });

  it('not registered: WARN with the init hint (this program by node and script: agent-dispatch on PATH is another), exit 0', async () => {
    healthy();
    fakeClaude(envOf().binDir, { servers: [{ name: 'github', scope: 'user', config: { type: 'stdio', command: 'npx', args: ['-y', '@modelcontextprotocol/server-github'] } }] });
    const r = await doctor();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[WARN] agent-dispatch is not registered with Claude Code');
    expect(r.stdout).toContain(`Run: ${process.execPath} ${SOURCE_CLI} init`);
    expect(r.stdout).toContain('0 issues, 1 warning');
  });

  it('agent-dispatch inside another server’s path or name is not a false positive', async () => {
    healthy();
    fakeClaude(envOf().binDir, {
      servers: [
        { name: 'other', scope: 'user', config: { type: 'stdio', command: '/opt/agent-dispatch/bin/other', args: ['serve'] } },
        { name: 'my-agent-dispatch', scope: 'user', config: { type: 'stdio', command: 'x' } },
      ],
    });
    const r = await doctor();
    expect(r.stdout).toContain('[WARN] agent-dispatch is not registered with Claude Code');
    expect(r.stdout).not.toContain('[FAIL]');
  });

  it('the Python original registered as agent-dispatch: FAIL naming what runs and the fix, not OK', async () => {
    healthy();
    const python = join(envOf().binDir, 'agent-dispatch');
    fakeClaude(envOf().binDir, { servers: [originalServer(python)] });
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`[FAIL] agent-dispatch is registered with Claude Code as another program: agent-dispatch (user scope): ${python} serve`);
    expect(r.stdout).toContain('That is the Python original agent-dispatch: it runs every dispatch unsandboxed');
    expect(r.stdout).toContain(`Fix: ${process.execPath} ${SOURCE_CLI} init --replace (or: claude mcp remove agent-dispatch -s user)`);
    expect(r.stdout).not.toContain('[OK] agent-dispatch is registered');
    expect(r.stdout).not.toContain('is not registered');
    expect(r.stdout).toContain('1 issue, 0 warnings');
  });

  it('any other program as agent-dispatch: FAIL', async () => {
    healthy();
    fakeClaude(envOf().binDir, { servers: [{ name: 'agent-dispatch', scope: 'local', config: { type: 'stdio', command: 'node', args: ['/elsewhere/dist/cli.js', 'serve'] } }] });
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[FAIL] agent-dispatch is registered with Claude Code as another program: agent-dispatch (local scope): node /elsewhere/dist/cli.js serve');
    expect(r.stdout).toContain('That is not this program');
  });

  it('this program, but the original hidden behind it in the user scope: OK for it and FAIL for the hidden one', async () => {
    healthy();
    fakeClaude(envOf().binDir, { servers: [originalServer('/home/me/.local/bin/agent-dispatch', 'user'), oursServer('local')] });
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[OK] agent-dispatch is registered with Claude Code (local scope; this program:');
    expect(r.stdout).toContain('[FAIL] agent-dispatch is registered with Claude Code as another program: agent-dispatch (user scope): /home/me/.local/bin/agent-dispatch serve');
  });

  it('the Python original under another name: FAIL, also when agent-dispatch is this program', async () => {
    healthy();
    fakeClaude(envOf().binDir, { servers: [oursServer('user'), { name: 'dispatch-py', scope: 'user', config: { type: 'stdio', command: 'uvx', args: ['agent-dispatch', 'serve'] } }] });
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[OK] agent-dispatch is registered with Claude Code (user scope');
    expect(r.stdout).toContain('[FAIL] MCP server dispatch-py runs the Python original: dispatch-py (user scope): uvx agent-dispatch serve');
    expect(r.stdout).toContain('(or: claude mcp remove dispatch-py -s user)');
  });

  it('a failing claude mcp get: WARN, could not check', async () => {
    healthy();
    fakeClaude(envOf().binDir, { ...REGISTERED, getExit: 1, getStderr: 'Error: boom' });
    const r = await doctor();
    expect(r.stdout).toContain('[WARN] Could not check MCP registration: claude mcp get exited with code 1: Error: boom');
    expect(r.code).toBe(0);
  });

  it('a failing claude mcp list: agent-dispatch still checked, and a WARN that other names were not', async () => {
    healthy();
    fakeClaude(envOf().binDir, { ...REGISTERED, mcpList: '', mcpListExit: 1 });
    const r = await doctor();
    expect(r.stdout).toContain('[OK] agent-dispatch is registered with Claude Code (user scope');
    expect(r.stdout).toContain('[WARN] Could not look for other registrations of the Python original: claude mcp list exited with code 1');
  });

  it('a missing agent directory: FAIL directory missing', async () => {
    healthy();
    const gone = join(envOf().root, 'gone');
    envOf().writeConfig({ agents: { api: { directory: gone } } });
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`[FAIL] api: directory missing - ${gone}`);
  });

  it('an unstatable agent directory: FAIL directory unreadable', async () => {
    healthy();
    envOf().writeConfig({ agents: { api: { directory: envOf().loopPath() } } });
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[FAIL] api: directory unreadable');
  });

  it('no agents: WARN, exit 0', async () => {
    healthy();
    envOf().writeConfig({ agents: {} });
    const r = await doctor();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[WARN] No agents configured. Add one: agent-dispatch add <name> <directory>');
  });

  it('a healthy group passes', async () => {
    healthy({ groups: { product: { members: [{ agent: 'api' }] } } });
    const r = await doctor();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[OK] product: 1 member');
    expect(r.stdout).toContain('All checks passed.');
  });

  it('a dangling group member: FAIL with the recreate command', async () => {
    healthy({ groups: { product: { members: [{ agent: 'api' }, { agent: 'removed_gateway' }] } } });
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[FAIL] product: unknown member(s): removed_gateway');
    expect(r.stdout).toContain(
      'Fix by recreating: agent-dispatch group remove product && agent-dispatch group add product --member ... (or edit agents.yaml)',
    );
  });

  it('an empty group: WARN, "1 warning", exit 0', async () => {
    healthy({ groups: { product: { description: 'nothing yet' } } });
    const r = await doctor();
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('[WARN] product: no members configured');
    expect(r.stdout).toContain('0 issues, 1 warning');
    expect(r.stdout).not.toContain('1 warnings');
  });

  it('summary is singular for one issue and plural for more', async () => {
    healthy({ groups: { product: { members: [{ agent: 'ghost' }] } } });
    const one = await doctor();
    expect(one.stdout).toContain('1 issue, 0 warnings');
    expect(one.stdout).not.toContain('1 issues');

    envOf().writeConfig({ agents: { api: { directory: join(envOf().root, 'gone') } }, groups: { product: { members: [{ agent: 'ghost' }] } } });
    const two = await doctor();
    expect(two.stdout).toContain('2 issues, 0 warnings');
  });

  it('egress gateway: the credential it would add and its image are checked', async () => {
    healthy();
    const ok = await doctor();
    expect(ok.stdout).toContain('[OK] The gateway will add ANTHROPIC_API_KEY from this environment');
    expect(ok.stdout).toContain(`[OK] agent-dispatch/gateway:latest present (protocol ${GATEWAY_PROTOCOL})`);
    vi.stubEnv('ANTHROPIC_API_KEY', '');
    const noKey = await doctor(fakeEngine({ images: ['agent-dispatch/agent:latest'] }));
    expect(noKey.stdout).toContain('[WARN] No Anthropic credential in this environment for the gateway to add (dispatches to api fail without one)');
    expect(noKey.stdout).toContain('[FAIL] agent-dispatch/gateway:latest is not present locally');
    expect(noKey.stdout).toContain('agent-dispatch image build');
    expect(noKey.code).toBe(1);
  });

  it('Docker unreachable: FAIL, images skipped, exit 3', async () => {
    healthy();
    const engine = fakeEngine({ down: true });
    const r = await doctor(engine);
    expect(r.code).toBe(3);
    expect(r.stdout).toContain('[FAIL] Docker engine not reachable: connect ENOENT /var/run/docker.sock');
    expect(r.stdout).toContain('Start the Docker engine (or set DOCKER_HOST)');
    expect(r.stdout).toContain('[WARN] Skipped (Docker engine not reachable)');
    expect(engine.asked).toEqual([]);
  });

  it('exit codes: 0 all OK, 1 any FAIL, 3 engine unreachable whatever else failed', async () => {
    healthy();
    expect((await doctor()).code).toBe(0);
    envOf().writeConfig({ agents: { api: { directory: join(envOf().root, 'gone') } } });
    expect((await doctor()).code).toBe(1);
    expect((await doctor(fakeEngine({ down: true }))).code).toBe(3);
    vi.stubEnv('DOCKER_HOST', `unix://${join(envOf().root, 'no-docker.sock')}`);
    const r = await run('doctor'); // through main, the real engine client pointed at nothing
    expect(r.stdout).toContain('[FAIL] Docker engine not reachable');
    expect(r.code).toBe(3);
  });

  it('an agent image that is not present locally: FAIL', async () => {
    healthy();
    const r = await doctor(fakeEngine({ images: ['agent-dispatch/gateway:latest'] }));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[FAIL] agent-dispatch/agent:latest is not present locally (agent-dispatch never pulls images)');
    expect(r.stdout).toContain('1 issue, 0 warnings');
  });

  it('each distinct image is checked once', async () => {
    healthy();
    envOf().writeConfig({
      agents: {
        a: { directory: envOf().project('a') },
        b: { directory: envOf().project('b'), policy: 'builder' },
        c: { directory: envOf().project('c'), policy: 'readonly-inspector' },
      },
    });
    const engine = fakeEngine();
    const r = await doctor(engine);
    expect(r.code).toBe(0);
    // the agent image once for the three agents, and the gateway image once
    expect(engine.asked).toEqual(['agent-dispatch/agent:latest', 'agent-dispatch/gateway:latest']);
  });

  it('an agent whose policy ref is not a usable policy: FAIL', async () => {
    healthy();
    envOf().writeConfig({ agents: { api: { directory: envOf().project('api'), policy: 'no-such-policy' } } });
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("[FAIL] api: policy 'no-such-policy' unusable");
    expect(r.stdout).toContain("Policy 'no-such-policy' not found");
    expect(r.stdout).toContain('[WARN] No agent with a valid policy, so no image to check');
  });

  it('an agent whose policy has error findings: FAIL naming the codes', async () => {
    healthy();
    mkdirSync(join(envOf().stateDir, 'policies'), { recursive: true });
    writeFileSync(join(envOf().stateDir, 'policies', 'socket.yaml'), 'version: 1\nmounts:\n  - source: /var/run/docker.sock\n');
    envOf().writeConfig({ agents: { api: { directory: envOf().project('api'), policy: 'socket' } } });
    const r = await doctor();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("[FAIL] api: policy 'socket' has 1 error: mount-docker-socket");
    expect(r.stdout).toContain('Run: agent-dispatch policy check --agent api');
  });

  it('an unknown option is a usage error (exit 2)', async () => {
    const r = await run('doctor', '--bogus');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Unknown option '--bogus'");
  });
});

describe.skipIf(!dockerAvailable() && !process.env['CI'])('doctor against the real Docker engine', () => {
  it('reports the engine reachable and checks images for real', async () => {
    fakeClaude(envOf().binDir, REGISTERED);
    fakeAgentDispatch(envOf().binDir);
    mkdirSync(join(envOf().stateDir, 'policies'), { recursive: true });
    const image = 'agent-dispatch-test/never-built:absent';
    writeFileSync(join(envOf().stateDir, 'policies', 'absent.yaml'), `version: 1\nimage: ${image}\n`);
    envOf().writeConfig({ agents: { api: { directory: envOf().project('api'), policy: 'absent' } } });
    const r = await capture(() => doctorCommand([], createEngine()));
    expect(r.stdout).toMatch(/\[OK\] Docker engine reachable: server \S+ \(API \S+\)/);
    expect(r.stdout).toContain(`[FAIL] ${image} is not present locally`);
    expect(r.code).toBe(1);
  });
});
