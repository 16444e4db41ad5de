/**
 * `agent-dispatch test NAME [TASK]` in process, with the DispatchService replaced by a scripted one (the real
 * dispatch is covered by test/e2e/cli-dispatch.test.ts): what is printed, and that agent text is printed safely.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { diagnosis, terminalSafe } from '../../src/cli/commands/test.js';
import type { DispatchRequest } from '../../src/dispatch/dispatcher.js';
import { makeResult, type DispatchResult } from '../../src/dispatch/types.js';
import { run, setupEnv, type Env } from './cli-harness.js';

const fake = vi.hoisted(() => ({
  result: undefined as unknown as DispatchResult,
  progress: [] as string[],
  requests: [] as DispatchRequest[],
}));

vi.mock('../../src/dispatch/service.js', () => ({
  DispatchService: class {
    async dispatch(_config: unknown, request: DispatchRequest): Promise<DispatchResult> {
      fake.requests.push(request);
      for (const message of fake.progress) request.onProgress?.({ kind: 'text', message });
      return fake.result;
    }
    async shutdown(): Promise<void> {}
  },
}));

let env: Env;

beforeEach(async () => {
  env = setupEnv();
  fake.result = makeResult({ agent: 'api', success: true, result: 'fine', cost_usd: 0.01, num_turns: 1 });
  fake.progress = [];
  fake.requests = [];
  const r = await run('add', 'api', env.project('api'), '-d', 'api agent');
  expect(r.code, r.all).toBe(0);
});

afterEach(() => {
  env.cleanup();
});

const ESC = '\u001b';
const HOSTILE = `before${ESC}]52;c;ZWNobyBwd25lZA==\u0007${ESC}]0;owned title\u0007${ESC}[2J\r\u009b31m\u0000\u007fafter`;

describe('terminalSafe', () => {
  it('removes C0 and C1 control characters and DEL, keeping newlines, tabs and other text', () => {
    expect(terminalSafe(HOSTILE)).toBe('before]52;c;ZWNobyBwd25lZA==]0;owned title[2J31mafter');
    expect(terminalSafe('line 1\n\tline 2 — ünïcödé ✓')).toBe('line 1\n\tline 2 — ünïcödé ✓');
    expect(terminalSafe('a\r\nb')).toBe('a\nb');
  });
});

describe('agent-dispatch test', () => {
  it('prints the answer without escape sequences (also when stdout is not a terminal), exit 0', async () => {
    fake.result = makeResult({ agent: 'api', success: true, result: `answer ${HOSTILE}`, hint: `note ${ESC}]52;c;eA==\u0007`, cost_usd: 0.5, num_turns: 2 });
    const r = await run('test', 'api', 'do it');
    expect(r.code, r.all).toBe(0);
    expect(r.all).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
    expect(r.stdout).toContain('answer before');
    expect(r.stdout).toContain('Note: note ]52;c;eA==');
    expect(r.stdout).toContain('--- Cost: $0.5000 | Turns: 2');
  });

  it('behind the gateway: one egress line, the refused hosts stripped like the answer', async () => {
    fake.result = makeResult({ agent: 'api', success: true, result: 'ok', egress: { allowed: 3, denied: 1, denied_hosts: [`evil${ESC}[2J.example:443`] } });
    const r = await run('test', 'api', 'do it');
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toContain('--- Egress: 3 allowed, 1 refused by policy (evil[2J.example:443)');
    expect(r.all).not.toContain(ESC);
    fake.result = makeResult({ agent: 'api', success: false, result: '', error: 'x', error_type: 'cli_error', egress: { allowed: 0, denied: 0, denied_hosts: [], unavailable: true } });
    const failed = await run('test', 'api', 'do it');
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('--- Egress: the gateway could not report its decisions');
  });

  it('--stream progress is stripped too', async () => {
    fake.progress = [`Using tool: Bash ${ESC}]0;title\u0007`];
    const r = await run('test', 'api', 'do it', '--stream');
    expect(r.code, r.all).toBe(0);
    expect(r.stderr).toContain('  -> Using tool: Bash ]0;title');
    expect(r.all).not.toContain(ESC);
  });

  it('a failure prints the error, a one-word diagnosis and only the policy-aware hint, exit 1', async () => {
    fake.result = makeResult({
      agent: 'api',
      success: false,
      result: '',
      error: `Permission denied for Bash ${ESC}[31m`,
      error_type: 'permission',
      hint: "Bash is denied by the agent's sandbox policy 'default' (tools.deny): edit the policy file to allow it.",
    });
    const r = await run('test', 'api', 'do it');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('Error: Permission denied for Bash [31m');
    expect(r.stdout).toContain('Diagnosis: permission\n');
    expect(r.stdout).toContain("  Bash is denied by the agent's sandbox policy 'default'");
    // nothing the policy could undo
    expect(r.stdout).not.toMatch(/bypassPermissions|--allowed-tools|--timeout 600|--max-budget-usd|--model/);
    expect(r.all).not.toContain(ESC);
  });

  it.each([
    ['timeout', "Agent 'api' timed out after 10s. This is the cap of the agent's sandbox policy (resources.timeout)."],
    ['budget', undefined],
  ] as const)('a %s failure: Diagnosis line, no canned advice', async (errorType, error) => {
    fake.result = makeResult({ agent: 'api', success: false, result: '', error: error ?? 'spend cap reached', error_type: errorType });
    const r = await run('test', 'api', 'do it');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`Diagnosis: ${errorType}`);
    expect(r.stdout).not.toMatch(/agent-dispatch (update|test) api/);
  });

  it('diagnosis(): the error type and the hint, nothing else', () => {
    expect(diagnosis(makeResult({ agent: 'a', success: false, result: '', error: 'x', error_type: 'sandbox', hint: 'Use network.mode: open.' }))).toEqual([
      'Diagnosis: sandbox',
      '  Use network.mode: open.',
    ]);
    expect(diagnosis(makeResult({ agent: 'a', success: false, result: '', error: 'x', error_type: 'cli_error' }))).toEqual(['Diagnosis: cli_error']);
  });

  it.each(['-1', '1.5', 'ten'])('--timeout %s is a usage error that says 0 is allowed; nothing is dispatched', async (value) => {
    const r = await run('test', 'api', 'do it', '--timeout', value);
    expect(r.code).toBe(2);
    expect(r.all).toContain("--timeout must be a whole number of seconds >= 0 (0 = the agent's default)");
    expect(fake.requests).toEqual([]);
  });

  it('--timeout 0 means the agent default and is passed through', async () => {
    const r = await run('test', 'api', 'do it', '--timeout', '0');
    expect(r.code, r.all).toBe(0);
    expect(fake.requests[0]).toMatchObject({ agent: 'api', task: 'do it', timeoutSeconds: 0 });
  });
});
