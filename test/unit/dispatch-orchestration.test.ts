/**
 * runDispatch and DispatchService against a FAKE sandbox: pre-flight order, what the sandbox is asked to run
 * (argv, stdin prompt, container env, timeout, managed settings), how each kind of outcome or sandbox failure
 * becomes a DispatchResult, the old-CLI retry, live progress, and the concurrency bound (repo: overlay: dispatch-overlay.test.ts). No Docker,
 * no network.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig, requireConfig } from '../../src/config/load.js';
import type { DispatchConfig } from '../../src/config/schema.js';
import { runDispatch, type DispatchDeps, type DispatchRequest, type Sandbox } from '../../src/dispatch/dispatcher.js';
import { KILLED_AFTER_RESULT } from '../../src/dispatch/result.js';
import { DispatchService } from '../../src/dispatch/service.js';
import type { ProgressEvent } from '../../src/dispatch/stream-events.js';
import { AppError, type ErrorCode } from '../../src/errors.js';
import type { SandboxRun } from '../../src/sandbox/runner.js';
import { openNetworkPolicy } from '../../src/selftest/open-policy.js';
import { ASSISTANT_LINE, FakeSandbox, INIT_LINE, outcome, resultLine, succeeds, type Script } from '../helpers/fake-sandbox.js';

const IMAGE = 'agent-dispatch/agent:unit';
const SECRET = 'server-secret-never-in-a-container';
const API_KEY = 'sk-unit-test-key';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const PREFIX = ['claude', '-p', '--output-format', 'stream-json', '--verbose'];

/** The open-network policy (src/selftest/open-policy.ts) with a passed env var and a 600 s timeout cap. */
function openPolicy(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const { resources } = openNetworkPolicy(IMAGE) as { resources: Record<string, unknown> };
  return openNetworkPolicy(IMAGE, {
    env: { pass: ['PASSED_VAR'], set: { CLAUDE_CODE_MAX_RETRIES: '0' } },
    resources: { ...resources, timeout: 600 },
    ...overrides,
  });
}

/** A sandbox run that throws an AppError, as the real sandbox does when it cannot run the container. */
const throws =
  (code: ErrorCode, message: string, hint?: string): Script =>
  () => {
    throw new AppError(code, message, hint === undefined ? {} : { hint });
  };

// ---------------------------------------------------------------------------------------------------------------
// A temp installation: config dir with agents.yaml and policies/, a project directory

interface Install {
  root: string;
  configDir: string;
  configPath: string;
  project: string;
  env: Record<string, string | undefined>;
  config: () => DispatchConfig;
  deps: (sandbox: Sandbox, extra?: Partial<DispatchDeps>) => DispatchDeps;
}

let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-orch-'));
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function install(
  agents: Record<string, Record<string, unknown>> = {},
  settings: Record<string, unknown> = {},
  envExtra: Record<string, string | undefined> = {},
): Install {
  const configDir = join(root, 'config');
  mkdirSync(join(configDir, 'policies'), { recursive: true });
  writeFileSync(join(configDir, 'policies', 'open.yaml'), stringify(openPolicy()));
  const project = join(root, 'projects', 'api');
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, 'README.md'), '# api\n');
  const configPath = join(configDir, 'agents.yaml');
  const allAgents = { api: { directory: project, policy: 'open', description: 'the API' }, ...agents };
  writeFileSync(configPath, stringify({ agents: allAgents, groups: {}, settings }), { mode: 0o600 });
  const env = {
    PATH: process.env['PATH'],
    HOME: root,
    AGENT_DISPATCH_CONFIG: configPath,
    ANTHROPIC_API_KEY: API_KEY,
    PASSED_VAR: 'passed-value',
    AGENT_DISPATCH_UNIT_SECRET: SECRET,
    ...envExtra,
  };
  const config = () => requireConfig(loadConfig(configPath));
  return {
    root,
    configDir,
    configPath,
    project,
    env,
    config,
    deps: (sandbox, extra = {}) => ({ config: config(), configDir, env, sandbox, ...extra }),
  };
}

function policyFile(inst: Install, name: string, body: Record<string, unknown> | string): void {
  writeFileSync(join(inst.configDir, 'policies', `${name}.yaml`), typeof body === 'string' ? body : stringify(body));
}

function req(fields: Partial<DispatchRequest> = {}): DispatchRequest {
  return { agent: 'api', task: 'Summarise the repo', ...fields };
}

function flagValue(cmd: string[], flag: string): string | undefined {
  const i = cmd.indexOf(flag);
  return i === -1 ? undefined : cmd[i + 1];
}

// ---------------------------------------------------------------------------------------------------------------
describe('pre-flight, in order; nothing reaches the sandbox', () => {
  it('an unknown agent throws AGENT_NOT_FOUND (the only throw)', async () => {
    const inst = install();
    const sandbox = new FakeSandbox();
    await expect(runDispatch(inst.deps(sandbox), req({ agent: 'ghost' }))).rejects.toMatchObject({ code: 'AGENT_NOT_FOUND' });
    expect(sandbox.runs).toHaveLength(0);
  });

  it('recursion: AGENT_DISPATCH_DEPTH >= max_dispatch_depth → recursion, before anything else', async () => {
    // The agent is broken in every other way too: missing directory and an invalid policy.
    const inst = install({ broken: { directory: join(root, 'missing'), policy: 'nowhere' } }, { max_dispatch_depth: 2 }, { AGENT_DISPATCH_DEPTH: '2' });
    const sandbox = new FakeSandbox();
    for (const agent of ['api', 'broken']) {
      const result = await runDispatch(inst.deps(sandbox), req({ agent }));
      expect(result).toEqual({
        agent,
        success: false,
        result: '',
        error:
          'Dispatch depth 2 >= max 2. An agent is trying to dispatch to another agent that dispatches back. ' +
          'Increase settings.max_dispatch_depth if this is intentional.',
        error_type: 'recursion',
      });
    }
    expect(sandbox.runs).toHaveLength(0);
  });

  it('a depth below the max dispatches', async () => {
    const inst = install({}, { max_dispatch_depth: 2 }, { AGENT_DISPATCH_DEPTH: '1' });
    const sandbox = new FakeSandbox(succeeds());
    expect((await runDispatch(inst.deps(sandbox), req())).success).toBe(true);
    expect(sandbox.runs).toHaveLength(1);
  });

  it('a missing directory → not_found, checked before the policy', async () => {
    const missing = join(root, 'gone');
    const inst = install({ lost: { directory: missing, policy: 'nowhere' } });
    const sandbox = new FakeSandbox();
    const result = await runDispatch(inst.deps(sandbox), req({ agent: 'lost' }));
    expect(result).toMatchObject({ agent: 'lost', success: false, result: '', error_type: 'not_found', error: `Directory does not exist: ${missing}` });
    // `update` has no directory option: re-adding is the one command that fixes it.
    expect(result.hint).toBe('Re-add it with its directory (agent-dispatch remove lost && agent-dispatch add lost <directory>).');
    expect(sandbox.runs).toHaveLength(0);
  });

  it('a directory that is a file → not_found', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    const inst = install({ filey: { directory: file, policy: 'open' } });
    const sandbox = new FakeSandbox();
    expect(await runDispatch(inst.deps(sandbox), req({ agent: 'filey' }))).toMatchObject({ error_type: 'not_found' });
    expect(sandbox.runs).toHaveLength(0);
  });

  it('an invalid policy file → policy, nothing started', async () => {
    const inst = install({ bad: { directory: join(root, 'projects', 'api'), policy: 'broken' } });
    policyFile(inst, 'broken', 'version: 2\nrepo: sideways\n');
    const sandbox = new FakeSandbox();
    const result = await runDispatch(inst.deps(sandbox), req({ agent: 'bad' }));
    expect(result).toMatchObject({ agent: 'bad', success: false, error_type: 'policy' });
    expect(result.error).toContain("Agent 'bad' has an unusable sandbox policy 'broken'");
    expect(result.error).toContain('policy-invalid');
    expect(result.hint).toContain('Nothing was started');
    expect(result.hint).toContain('agent-dispatch policy check --agent bad');
    // The hint names no particular policy: the user's own is the one to fix or replace.
    expect(result.hint).toContain('point the agent at a working policy (agent-dispatch update bad --policy NAME|PATH)');
    expect(result.hint).not.toContain('--policy default');
    expect(sandbox.runs).toHaveLength(0);
  });

  it('a policy that does not exist → policy', async () => {
    const inst = install({ bad: { directory: join(root, 'projects', 'api'), policy: 'nowhere' } });
    const sandbox = new FakeSandbox();
    expect(await runDispatch(inst.deps(sandbox), req({ agent: 'bad' }))).toMatchObject({ error_type: 'policy' });
    expect(sandbox.runs).toHaveLength(0);
  });

  it('a gateway-mode policy (the default preset): the sandbox gets the allowlist, the result an egress summary', async () => {
    const inst = install({ gated: { directory: join(root, 'projects', 'api') } });
    expect(inst.config().agents['gated']!.policy).toBe('default');
    const decisions = [
      { time: 't', kind: 'api' as const, host: 'api.anthropic.com', port: 443, allowed: true, bytesOut: 10, bytesIn: 20 },
      { time: 't', kind: 'connect' as const, host: 'evil.example', port: 443, allowed: false, reason: 'policy', bytesOut: 0, bytesIn: 0 },
      { time: 't', kind: 'connect' as const, host: 'evil.example', port: 443, allowed: false, reason: 'policy', bytesOut: 0, bytesIn: 0 },
    ];
    const sandbox = new FakeSandbox(() => outcome({ stdoutLines: [resultLine()], egress: decisions }));
    const result = await runDispatch(inst.deps(sandbox), req({ agent: 'gated' }));
    expect(result).toMatchObject({ success: true, egress: { allowed: 1, denied: 2, denied_hosts: ['evil.example:443'] } });
    expect(sandbox.last.egressAllow).toEqual([]);
  });

  it('a user policy in gateway mode hands its parsed allowlist to the sandbox; lost decisions say so', async () => {
    const inst = install({ gated: { directory: join(root, 'projects', 'api'), policy: 'gw' } });
    policyFile(inst, 'gw', openPolicy({ network: { mode: 'gateway', allow: ['registry.npmjs.org', '*.example.com:*'] }, credentials: 'inject' }));
    const sandbox = new FakeSandbox(() => outcome({ stdoutLines: [resultLine()], egress: undefined }));
    const result = await runDispatch(inst.deps(sandbox), req({ agent: 'gated' }));
    expect(sandbox.last.egressAllow).toEqual([
      { host: 'registry.npmjs.org', port: 443 },
      { host: '*.example.com', port: '*' },
    ]);
    expect(result.egress).toEqual({ allowed: 0, denied: 0, denied_hosts: [], unavailable: true });
  });

  it('an open-network policy gives the sandbox no allowlist and the result no egress summary', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ stdoutLines: [resultLine()] }));
    const result = await runDispatch(inst.deps(sandbox), req());
    expect(sandbox.last.egressAllow).toBeUndefined();
    expect(result.egress).toBeUndefined();
  });

  it('a flag-like session id → cli_error, nothing started', async () => {
    const inst = install();
    const sandbox = new FakeSandbox();
    const result = await runDispatch(inst.deps(sandbox), req({ sessionId: '--permission-mode' }));
    expect(result).toMatchObject({ agent: 'api', success: false, error_type: 'cli_error' });
    expect(result.error).toBe(
      "Refusing to dispatch: session_id '--permission-mode' starts with '-' and would be interpreted as a command-line flag by the claude CLI.",
    );
    expect(sandbox.runs).toHaveLength(0);
  });

  it('a flag-like model in agents.yaml → policy (compile refuses it), nothing started', async () => {
    const inst = install({ flaggy: { directory: join(root, 'projects', 'api'), policy: 'open', model: '--dangerously-skip-permissions' } });
    const sandbox = new FakeSandbox();
    const result = await runDispatch(inst.deps(sandbox), req({ agent: 'flaggy' }));
    expect(result).toMatchObject({ success: false, error_type: 'policy' });
    expect(result.error).toContain("model '--dangerously-skip-permissions' starts with '-'");
    expect(sandbox.runs).toHaveLength(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('what the sandbox is asked to run', () => {
  it('a fresh dispatch: stream-json argv with a pre-assigned --session-id, no prompt in argv', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req({ task: 'Summarise the repo' }));
    const { cmd } = sandbox.last;
    expect(cmd.slice(0, 5)).toEqual(PREFIX);
    expect(cmd[5]).toBe('--session-id');
    expect(cmd[6]).toMatch(UUID);
    expect(cmd).not.toContain('--resume');
    expect(cmd).not.toContain('Summarise the repo');
    expect(flagValue(cmd, '--permission-mode')).toBe('default');
    expect(sandbox.last.stdin).toBe('Summarise the repo');
  });

  it('every fresh dispatch gets its own session id', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req());
    await runDispatch(inst.deps(sandbox), req());
    expect(flagValue(sandbox.runs[0]!.cmd, '--session-id')).not.toBe(flagValue(sandbox.runs[1]!.cmd, '--session-id'));
  });

  it('a session dispatch: --resume <id> and no --session-id', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req({ sessionId: 'abc-123' }));
    const { cmd } = sandbox.last;
    expect(cmd.slice(0, 7)).toEqual([...PREFIX, '--resume', 'abc-123']);
    expect(cmd).not.toContain('--session-id');
  });

  it("an empty session id is a fresh session", async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req({ sessionId: '' }));
    expect(flagValue(sandbox.last.cmd, '--session-id')).toMatch(UUID);
    expect(sandbox.last.cmd).not.toContain('--resume');
  });

  it('the prompt follows the original template: context only', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req({ task: 'Fix it', context: 'The build fails', caller: '', goal: '' }));
    expect(sandbox.last.stdin).toBe('Context:\nThe build fails\n\nTask:\nFix it');
  });

  it('the prompt follows the original template: goal, caller, context, task sections', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req({ task: 'Fix it', context: 'The build fails', caller: 'web-agent', goal: 'Ship v2' }));
    expect(sandbox.last.stdin).toBe('## Goal\nShip v2\n\n## Dispatched by\nweb-agent\n\n## Context\nThe build fails\n\n## Task\nFix it');
    for (const part of ['Fix it', 'The build fails', 'web-agent', 'Ship v2']) expect(sandbox.last.cmd).not.toContain(part);
  });

  it('a prompt that looks like a flag stays on stdin', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req({ task: '--dangerously-skip-permissions' }));
    expect(sandbox.last.stdin).toBe('--dangerously-skip-permissions');
    expect(sandbox.last.cmd).not.toContain('--dangerously-skip-permissions');
  });

  it('response_format json appends the footer to the prompt', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req({ task: 'List', responseFormat: 'json' }));
    expect(sandbox.last.stdin.startsWith('List\n\n## Response format\nRespond with a single valid JSON value')).toBe(true);
  });

  it('container env: AGENT_DISPATCH_DEPTH = depth + 1, passed and credential variables, never an unpassed server variable', async () => {
    const inst = install({}, {}, { AGENT_DISPATCH_DEPTH: '1' });
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req());
    const env = sandbox.last.spec.Env;
    expect(env).toContain('AGENT_DISPATCH_DEPTH=2');
    expect(env).toContain('PASSED_VAR=passed-value');
    expect(env).toContain(`ANTHROPIC_API_KEY=${API_KEY}`);
    expect(env).toContain('CLAUDE_CODE_MAX_RETRIES=0');
    expect(env.filter((e) => e.startsWith('AGENT_DISPATCH_UNIT_SECRET='))).toEqual([]);
    expect(env.filter((e) => e.includes(SECRET))).toEqual([]);
    expect(env.filter((e) => e.startsWith('AGENT_DISPATCH_CONFIG='))).toEqual([]);
    expect(env).not.toContain(`PATH=${process.env['PATH']}`);
    expect(env).not.toContain(`HOME=${root}`);
  });

  it('container env: depth 0 (unset) becomes 1', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req());
    expect(sandbox.last.spec.Env).toContain('AGENT_DISPATCH_DEPTH=1');
    expect(sandbox.last.spec.Env.filter((e) => e.startsWith('AGENT_DISPATCH_DEPTH='))).toHaveLength(1);
  });

  it('the container spec is the compiled one: image, working dir, no host secrets in labels', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req());
    const { spec } = sandbox.last;
    expect(spec.Image).toBe(IMAGE);
    expect(spec.WorkingDir).toBe(inst.config().agents['api']!.directory);
    expect(spec.HostConfig.NetworkMode).toBe('bridge');
    expect(spec.HostConfig.CapDrop).toEqual(['ALL']);
    expect(JSON.stringify(spec)).not.toContain(SECRET);
  });

  it('managedSettings carries the deny list, disables bypass mode and makes its rules the only ones', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req());
    expect(sandbox.last.managedSettings).toMatchObject({
      permissions: { deny: ['WebFetch', 'WebSearch'], disableBypassPermissionsMode: 'disable' },
      allowManagedPermissionRulesOnly: true,
      allowManagedHooksOnly: true,
      disableAllHooks: true,
      apiKeyHelper: '',
    });
  });

  it('an agent disallowed tool is denied by the managed settings too', async () => {
    const inst = install({ narrow: { directory: join(root, 'projects', 'api'), policy: 'open', disallowed_tools: ['Bash(rm:*)'] } });
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req({ agent: 'narrow' }));
    const deny = (sandbox.last.managedSettings as { permissions: { deny: string[] } }).permissions.deny;
    expect(deny).toEqual(expect.arrayContaining(['WebFetch', 'WebSearch', 'Bash(rm:*)']));
  });

  it.each([
    [undefined, 300],
    [0, 300],
    [-5, 300],
    [5, 10],
    [10, 10],
    [12.9, 12],
    [100, 100],
    [600, 600],
    [601, 600],
    [99_999, 600],
  ])('timeout_seconds %j → timeoutMs for %i s (agent 300, clamped 10..7200, policy cap 600)', async (override, seconds) => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req({ timeoutSeconds: override }));
    expect(sandbox.last.timeoutMs).toBe(seconds * 1000);
  });

  it('a policy cap above 7200 cannot exist; the override clamp still holds at 7200', async () => {
    const inst = install({ long: { directory: join(root, 'projects', 'api'), policy: 'long', timeout: 60 } });
    policyFile(inst, 'long', openPolicy({ resources: { timeout: 7200 } }));
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox), req({ agent: 'long', timeoutSeconds: 1_000_000 }));
    expect(sandbox.last.timeoutMs).toBe(7200 * 1000);
    await runDispatch(inst.deps(sandbox), req({ agent: 'long' }));
    expect(sandbox.last.timeoutMs).toBe(60 * 1000);
  });

  it('the override does not mutate the shared config', async () => {
    const inst = install();
    const deps = inst.deps(new FakeSandbox(succeeds()));
    await runDispatch(deps, req({ timeoutSeconds: 50 }));
    expect(deps.config.agents['api']!.timeout).toBe(300);
  });

  it('the job id is passed through, or a fresh 32-hex one is made', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    await runDispatch(inst.deps(sandbox, { job: 'ab'.repeat(16) }), req());
    expect(sandbox.last.job).toBe('ab'.repeat(16));
    await runDispatch(inst.deps(sandbox), req());
    expect(sandbox.last.job).toMatch(/^[0-9a-f]{32}$/);
  });

  it('the abort signal is handed to the sandbox; without onProgress there is no line callback', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    const controller = new AbortController();
    await runDispatch(inst.deps(sandbox), req({ signal: controller.signal }));
    expect(sandbox.last.signal).toBe(controller.signal);
    expect(sandbox.last.onStdoutLine).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('outcomes become results', () => {
  it('a clean result line → success with its metrics and session id', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds());
    expect(await runDispatch(inst.deps(sandbox), req())).toEqual({
      agent: 'api',
      success: true,
      result: 'Hello from the agent',
      session_id: '367475b8-0000-4000-8000-000000000001',
      cost_usd: 0.00054,
      duration_ms: 291,
      num_turns: 1,
    });
  });

  it('a result without a session id falls back to the pre-assigned one', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds([resultLine({ session_id: undefined })]));
    const result = await runDispatch(inst.deps(sandbox), req());
    expect(result.session_id).toBe(flagValue(sandbox.last.cmd, '--session-id'));
  });

  it('response_format json → parsed_result', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds([resultLine({ result: '{"ok": true}' })]));
    expect(await runDispatch(inst.deps(sandbox), req({ responseFormat: 'json' }))).toMatchObject({ success: true, parsed_result: { ok: true } });
  });

  it.each([
    ['IMAGE_NOT_FOUND', 'Image agent-dispatch/agent:unit is not there', 'Build it: agent-dispatch image build'],
    ['DOCKER_UNAVAILABLE', 'Cannot reach the Docker engine', 'Start Docker'],
    ['SANDBOX_FAILED', 'The container could not be created', 'See the server log'],
  ] as const)('the sandbox throws AppError(%s) → sandbox with its hint', async (code, message, hint) => {
    const inst = install();
    const sandbox = new FakeSandbox(throws(code, message, hint));
    expect(await runDispatch(inst.deps(sandbox), req())).toEqual({ agent: 'api', success: false, result: '', error: message, error_type: 'sandbox', hint });
    expect(sandbox.runs).toHaveLength(1);
  });

  it('an AppError without a hint gets the doctor hint', async () => {
    const inst = install();
    const result = await runDispatch(inst.deps(new FakeSandbox(throws('DOCKER_UNAVAILABLE', 'down'))), req());
    expect(result).toMatchObject({ error_type: 'sandbox', error: 'down' });
    expect(result.hint).toContain('agent-dispatch doctor');
  });

  it('a non-AppError from the sandbox is a bug and propagates', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => {
      throw new TypeError('unexpected');
    });
    await expect(runDispatch(inst.deps(sandbox), req())).rejects.toThrow('unexpected');
  });

  it('timed out with no result → timeout, resumable with the pre-assigned session id', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 137, stdoutLines: [INIT_LINE, ASSISTANT_LINE], timedOut: true }));
    const result = await runDispatch(inst.deps(sandbox), req({ timeoutSeconds: 20 }));
    const sid = flagValue(sandbox.last.cmd, '--session-id')!;
    expect(result).toMatchObject({ agent: 'api', success: false, result: '', error_type: 'timeout', session_id: sid });
    expect(result.error).toContain("Agent 'api' timed out after 20s.");
    expect(result.error).toContain(sid);
  });

  it('a timed-out session dispatch reports the resumed id', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: null, timedOut: true }));
    expect(await runDispatch(inst.deps(sandbox), req({ sessionId: 'sess-1' }))).toMatchObject({ error_type: 'timeout', session_id: 'sess-1' });
  });

  it("a timed-out dispatch with sessionId '' (not set) still reports the pre-assigned session id", async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: null, timedOut: true }));
    const result = await runDispatch(inst.deps(sandbox), req({ sessionId: '' }));
    expect(result.error_type).toBe('timeout');
    expect(result.session_id).toBe(flagValue(sandbox.last.cmd, '--session-id'));
  });

  it('timed out after the result line → success with the "killed" hint', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 137, stdoutLines: [resultLine({ result: 'done anyway' })], timedOut: true }));
    const result = await runDispatch(inst.deps(sandbox), req());
    expect(result).toMatchObject({ success: true, result: 'done anyway', hint: KILLED_AFTER_RESULT });
    expect(result.error_type).toBeUndefined();
  });

  it('cancelled → cli_error', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 137, cancelled: true }));
    expect(await runDispatch(inst.deps(sandbox), req())).toEqual({
      agent: 'api',
      success: false,
      result: '',
      error: "Dispatch to 'api' was cancelled; its container was killed.",
      error_type: 'cli_error',
    });
  });

  it("exit 127 with tini's exec failure → not_found naming `agent-dispatch image build`", async () => {
    const inst = install();
    const stderr = '[FATAL tini (7)] exec claude failed: No such file or directory\n';
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 127, stderr }));
    const result = await runDispatch(inst.deps(sandbox), req());
    expect(result).toMatchObject({ agent: 'api', success: false, error_type: 'not_found' });
    expect(result.error).toBe(`Claude Code could not be started in the sandbox image ${IMAGE}: [FATAL tini (7)] exec claude failed: No such file or directory`);
    expect(result.hint).toContain(`agent-dispatch image build --tag ${IMAGE}`);
    expect(sandbox.runs).toHaveLength(1);
  });

  it('exit 127 with a result line is judged by the result and the exit code, not as a missing claude', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 127, stdoutLines: [resultLine()], stderr: 'bash: foo: command not found' }));
    const result = await runDispatch(inst.deps(sandbox), req());
    expect(result).toMatchObject({ success: false, error_type: 'cli_error', result: 'Hello from the agent', session_id: '367475b8-0000-4000-8000-000000000001' });
    expect(result.error).toBe('claude exited with code 127 after reporting success: Hello from the agent\nstderr: bash: foo: command not found');
  });

  it('a result that arrived before a cancel is kept', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: null, cancelled: true, stdoutLines: [resultLine({ result: 'in time' })] }));
    expect(await runDispatch(inst.deps(sandbox), req())).toMatchObject({ success: true, result: 'in time' });
  });

  it('a non-zero exit with stderr and no result → a failure explained by stderr', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 1, stderr: 'Error: something exploded\n' }));
    const result = await runDispatch(inst.deps(sandbox), req());
    expect(result).toMatchObject({ success: false, error: 'Error: something exploded', error_type: 'cli_error' });
    expect(result.session_id).toBe(flagValue(sandbox.last.cmd, '--session-id'));
  });

  it("permission hints name the agent's policy when it bounds the suggested commands", async () => {
    // openPolicy(): tools.allow Bash, Read, Glob, Grep; deny WebFetch, WebSearch; permission_mode default.
    const inst = install();
    const denials = [{ tool_name: 'Edit', tool_use_id: 't1', tool_input: {} }];
    const sandbox = new FakeSandbox(succeeds([resultLine({ permission_denials: denials })]));
    const result = await runDispatch(inst.deps(sandbox), req());
    expect(result).toMatchObject({ success: true, denied_tools: ['Edit'] });
    expect(result.hint).toContain("update_agent(name='api', allowed_tools='Edit')");
    expect(result.hint!.endsWith(
      "Note: the agent's sandbox policy 'open' bounds these: tools outside its tools.allow and modes above 'default' are dropped — " +
        'widen the policy file, then check with agent-dispatch policy check --agent api.',
    )).toBe(true);

    const denied = new FakeSandbox(succeeds([resultLine({ is_error: true, result: 'x', permission_denials: [{ tool_name: 'WebSearch' }] })], { exitCode: 1 }));
    const failure = await runDispatch(inst.deps(denied), req());
    expect(failure.error_type).toBe('permission');
    expect(failure.error).toContain("bounds these: tools outside its tools.allow, tools in its tools.deny and modes above 'default' are dropped");
  });

  it('a policy that allows bypassPermissions and any tool adds no note', async () => {
    const inst = install({ wide: { directory: join(root, 'projects', 'api'), policy: 'wide' } });
    policyFile(inst, 'wide', openPolicy({ tools: { permission_mode: 'bypassPermissions', allow: null, deny: [] } }));
    const sandbox = new FakeSandbox(succeeds([resultLine({ permission_denials: [{ tool_name: 'Edit' }] })]));
    const result = await runDispatch(inst.deps(sandbox), req({ agent: 'wide' }));
    expect(result.success).toBe(true);
    expect(result.hint).toContain('1 tool call(s) were denied by permissions: Edit.');
    expect(result.hint).not.toContain('Note:');
  });

  it('an is_error result line → a failure with its text', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds([resultLine({ is_error: true, result: 'Invalid API key · Fix external API key' })], { exitCode: 1 }));
    const result = await runDispatch(inst.deps(sandbox), req());
    expect(result).toMatchObject({ success: false, error: 'Invalid API key · Fix external API key' });
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('an old claude that rejects --session-id', () => {
  const REJECTION = "error: unknown option '--session-id'\n";

  it('is retried exactly once without --session-id, and the retry decides', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 1, stderr: REJECTION }), succeeds([resultLine({ session_id: 'from-old-cli' })]));
    const result = await runDispatch(inst.deps(sandbox, { job: 'ef'.repeat(16) }), req({ task: 'Same prompt' }));
    expect(sandbox.runs).toHaveLength(2);
    const [first, second] = sandbox.runs as [SandboxRun, SandboxRun];
    expect(first.cmd).toContain('--session-id');
    expect(second.cmd.slice(0, 5)).toEqual(PREFIX);
    expect(second.cmd).not.toContain('--session-id');
    expect(second.cmd).not.toContain('--resume');
    expect(second.cmd.slice(5)).toEqual(first.cmd.slice(7));
    expect(second.stdin).toBe('Same prompt');
    expect([first.job, second.job]).toEqual(['ef'.repeat(16), 'ef'.repeat(16)]);
    expect(result).toMatchObject({ success: true, session_id: 'from-old-cli' });
  });

  it('without a job id in deps both attempts still share one generated job id', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 1, stderr: REJECTION }), succeeds());
    await runDispatch(inst.deps(sandbox), req());
    const [first, second] = sandbox.runs as [SandboxRun, SandboxRun];
    expect(first.job).toMatch(/^[0-9a-f]{32}$/);
    expect(second.job).toBe(first.job);
  });

  it('a second rejection is not retried again, and the unused pre-assigned id is not reported', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 1, stderr: REJECTION }));
    const result = await runDispatch(inst.deps(sandbox), req());
    expect(sandbox.runs).toHaveLength(2);
    expect(result.success).toBe(false);
    expect(result).not.toHaveProperty('session_id');
  });

  it('the retry can fail in the sandbox too', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 1, stderr: REJECTION }), throws('DOCKER_UNAVAILABLE', 'engine went away', 'restart it'));
    expect(await runDispatch(inst.deps(sandbox), req())).toMatchObject({ error_type: 'sandbox', error: 'engine went away', hint: 'restart it' });
    expect(sandbox.runs).toHaveLength(2);
  });

  it('behind the gateway, the egress of both attempts is summarised and audited', async () => {
    const inst = install({ gated: { directory: join(root, 'projects', 'api') } });
    const decision = (host: string, allowed: boolean) => ({ time: 't', kind: 'connect' as const, host, port: 443, allowed, bytesOut: 0, bytesIn: 0 });
    const sandbox = new FakeSandbox(
      () => outcome({ exitCode: 1, stderr: REJECTION, egress: [decision('first.example', false)] }),
      () => outcome({ stdoutLines: [resultLine()], egress: [decision('second.example', true)] }),
    );
    const result = await runDispatch(inst.deps(sandbox), req({ agent: 'gated' }));
    expect(result.egress).toEqual({ allowed: 1, denied: 1, denied_hosts: ['first.example:443'] });
    const audit = readFileSync(join(inst.configDir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { egress?: { host: string }[] });
    expect(audit.at(-1)!.egress!.map((d) => d.host)).toEqual(['first.example', 'second.example']);
  });

  it('is not retried when resuming a session', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 1, stderr: REJECTION }));
    await runDispatch(inst.deps(sandbox), req({ sessionId: 'abc' }));
    expect(sandbox.runs).toHaveLength(1);
  });

  it('is not retried when the first run produced a result', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 0, stdoutLines: [resultLine()], stderr: REJECTION }));
    expect((await runDispatch(inst.deps(sandbox), req())).success).toBe(true);
    expect(sandbox.runs).toHaveLength(1);
  });

  it('other stderr is not a rejection', async () => {
    const inst = install();
    const sandbox = new FakeSandbox(() => outcome({ exitCode: 1, stderr: "error: unknown option '--frobnicate'" }));
    await runDispatch(inst.deps(sandbox), req());
    expect(sandbox.runs).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('live progress', () => {
  it("onProgress gets the assistant's text and 'Using tool: Bash' from the lines the sandbox feeds", async () => {
    const inst = install();
    const sandbox = new FakeSandbox(succeeds([INIT_LINE, ASSISTANT_LINE, 'not json at all', resultLine()]));
    const events: ProgressEvent[] = [];
    const result = await runDispatch(inst.deps(sandbox), req({ onProgress: (e) => events.push(e) }));
    expect(result.success).toBe(true);
    expect(sandbox.last.onStdoutLine).toBeTypeOf('function');
    expect(events).toEqual([
      { kind: 'text', message: 'Let me look.' },
      { kind: 'tool', message: 'Using tool: Bash' },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('DispatchService', () => {
  function deferred(): { promise: Promise<void>; resolve: () => void } {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  }

  it('uses the config dir of its own env (not process.env) and the injected sandbox', async () => {
    const inst = install();
    const decoy = join(root, 'decoy');
    mkdirSync(decoy);
    writeFileSync(join(decoy, 'agents.yaml'), 'agents: [decoy\n');
    vi.stubEnv('AGENT_DISPATCH_CONFIG', join(decoy, 'agents.yaml'));
    const sandbox = new FakeSandbox(succeeds());
    const service = new DispatchService(inst.env as NodeJS.ProcessEnv, sandbox);
    await service.startup();
    const result = await service.dispatch(inst.config(), req(), 'cd'.repeat(16));
    expect(result.success).toBe(true);
    expect(sandbox.last.job).toBe('cd'.repeat(16));
    expect(service.inFlight).toBe(0);
    await service.shutdown();
  });

  it('max_concurrency 2: five concurrent dispatches, at most two in the sandbox at once, all finish', async () => {
    const inst = install({}, { max_concurrency: 2 });
    const gates: { resolve: () => void }[] = [];
    let running = 0;
    let peak = 0;
    const sandbox = new FakeSandbox(async (run) => {
      running += 1;
      peak = Math.max(peak, running);
      const gate = deferred();
      gates.push(gate);
      await gate.promise;
      running -= 1;
      return succeeds([resultLine({ result: run.stdin })])(run, 0);
    });
    const service = new DispatchService(inst.env as NodeJS.ProcessEnv, sandbox);
    const config = inst.config();
    const all = [0, 1, 2, 3, 4].map((i) => service.dispatch(config, req({ task: `task ${i}` })));

    await vi.waitFor(() => expect(sandbox.runs).toHaveLength(2));
    // Give the other three every chance to sneak in.
    await new Promise((r) => setTimeout(r, 20));
    expect(sandbox.runs).toHaveLength(2);
    expect(service.inFlight).toBe(2);

    for (let released = 0; released < 5; released += 1) {
      await vi.waitFor(() => expect(gates.length).toBeGreaterThan(released));
      gates[released]!.resolve();
    }
    const results = await Promise.all(all);
    expect(results.map((r) => r.success)).toEqual([true, true, true, true, true]);
    expect(results.map((r) => r.result).sort()).toEqual(['task 0', 'task 1', 'task 2', 'task 3', 'task 4']);
    expect(sandbox.runs).toHaveLength(5);
    expect(peak).toBe(2);
    expect(service.inFlight).toBe(0);
  });

  it('a sandbox that throws a non-AppError still frees its slot', async () => {
    const inst = install({}, { max_concurrency: 1 });
    let calls = 0;
    const sandbox = new FakeSandbox(() => {
      calls += 1;
      if (calls === 1) throw new Error('bug');
      return outcome({ stdoutLines: [resultLine()] });
    });
    const service = new DispatchService(inst.env as NodeJS.ProcessEnv, sandbox);
    const config = inst.config();
    const [first, second] = await Promise.allSettled([service.dispatch(config, req()), service.dispatch(config, req())]);
    expect(first.status).toBe('rejected');
    expect(second).toMatchObject({ status: 'fulfilled', value: { success: true } });
    expect(service.inFlight).toBe(0);
  });

  it('refusals before the sandbox do not hold a slot', async () => {
    const inst = install({}, { max_concurrency: 1, max_dispatch_depth: 1 }, { AGENT_DISPATCH_DEPTH: '1' });
    const service = new DispatchService(inst.env as NodeJS.ProcessEnv, new FakeSandbox());
    const results = await Promise.all([1, 2, 3].map(() => service.dispatch(inst.config(), req())));
    expect(results.map((r) => r.error_type)).toEqual(['recursion', 'recursion', 'recursion']);
    expect(service.inFlight).toBe(0);
  });
});
