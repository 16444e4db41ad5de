import { describe, expect, it } from 'vitest';
import { hasResultEvent, KILLED_AFTER_RESULT, resultFromRun, type ResultContext, type RunOutcome } from '../../src/dispatch/result.js';

const SID = '0b6a3f0e-8a51-4c59-9d6e-3c1f6a2b7d10';
const CLI_SID = '367475b8-1f2e-4d3c-9b8a-7a6b5c4d3e2f';

const ctx = (extra: Partial<ResultContext> = {}): ResultContext => ({
  agent: 'api',
  sessionFallback: SID,
  timeoutSeconds: 300,
  resumed: false,
  ...extra,
});

const run = (stdoutLines: string[], extra: Partial<RunOutcome> = {}): RunOutcome => ({
  exitCode: 0,
  stdoutLines,
  stderr: '',
  timedOut: false,
  ...extra,
});

const line = (value: unknown): string => JSON.stringify(value);
const resultLine = (fields: Record<string, unknown>): string => line({ type: 'result', ...fields });

/** The lines a real stream-json run prints before its result (claude-cli.md §4c), trimmed. */
const PREAMBLE = [
  line({ type: 'system', subtype: 'init', cwd: '/work', session_id: CLI_SID, tools: ['Read'], mcp_servers: [], model: 'claude' }),
  line({ type: 'assistant', message: { role: 'assistant', content: [{ type: 'text', text: 'Working' }] }, session_id: CLI_SID }),
];

/** Real result shapes from claude-cli.md §4a (the stream's last line is the same object). */
const SHAPES = {
  success: {
    type: 'result',
    subtype: 'success',
    is_error: false,
    result: 'Hello from mock',
    session_id: CLI_SID,
    num_turns: 1,
    duration_ms: 291,
    duration_api_ms: 57,
    stop_reason: 'end_turn',
    terminal_reason: 'completed',
    total_cost_usd: 0.00054,
    usage: { input_tokens: 100, output_tokens: 7 },
    modelUsage: { 'claude-opus-5-5': { costUSD: 0.00054 } },
    permission_denials: [],
    api_error_status: null,
  },
  apiUnreachable: {
    type: 'result',
    subtype: 'success',
    is_error: true,
    api_error: 'connection_failed',
    api_error_status: null,
    terminal_reason: 'api_error',
    result: "API Error: Can't reach the API server — check your internet or DNS (ENOTFOUND)",
    session_id: CLI_SID,
    num_turns: 1,
    duration_ms: 19_600,
    total_cost_usd: 0,
    permission_denials: [],
  },
  invalidKey: {
    type: 'result',
    subtype: 'success',
    is_error: true,
    api_error_status: 401,
    api_error_type: 'authentication_error',
    result: 'Invalid API key · Fix external API key',
    session_id: CLI_SID,
    total_cost_usd: 0,
  },
  maxTurns: {
    type: 'result',
    subtype: 'error_max_turns',
    is_error: true,
    terminal_reason: 'max_turns',
    errors: ['Reached maximum number of turns (2)'],
    session_id: CLI_SID,
    num_turns: 3,
    total_cost_usd: 0.012,
  },
  maxBudget: {
    type: 'result',
    subtype: 'error_max_budget_usd',
    is_error: true,
    terminal_reason: 'budget_exhausted',
    errors: ['Reached maximum budget ($0.25)'],
    session_id: CLI_SID,
    num_turns: 4,
    total_cost_usd: 0.2612,
  },
  toolDenied: {
    type: 'result',
    subtype: 'success',
    is_error: false,
    result: 'I could not run the tests: I need permission to use Bash.',
    session_id: CLI_SID,
    num_turns: 2,
    total_cost_usd: 0.002,
    permission_denials: [{ tool_name: 'Bash', tool_use_id: 'toolu_1', tool_input: { command: 'npm test' } }],
  },
} as const;

describe('real result shapes (claude-cli.md §4a)', () => {
  it('success: result, session, cost, duration and turns', () => {
    expect(resultFromRun(run([...PREAMBLE, line(SHAPES.success)]), ctx())).toEqual({
      agent: 'api',
      success: true,
      result: 'Hello from mock',
      session_id: CLI_SID,
      cost_usd: 0.00054,
      duration_ms: 291,
      num_turns: 1,
    });
  });

  it('API unreachable (subtype success, is_error true, exit 1) is a failure with the API text', () => {
    const result = resultFromRun(run([line(SHAPES.apiUnreachable)], { exitCode: 1 }), ctx());
    expect(result).toEqual({
      agent: 'api',
      success: false,
      result: SHAPES.apiUnreachable.result,
      session_id: CLI_SID,
      cost_usd: 0,
      duration_ms: 19_600,
      num_turns: 1,
      error: SHAPES.apiUnreachable.result,
      error_type: 'cli_error',
    });
  });

  it('invalid key: cli_error carrying the CLI text, zero cost kept', () => {
    const result = resultFromRun(run([line(SHAPES.invalidKey)], { exitCode: 1 }), ctx());
    expect(result).toMatchObject({ success: false, error: 'Invalid API key · Fix external API key', error_type: 'cli_error', cost_usd: 0 });
    expect(result).not.toHaveProperty('hint');
  });

  it('max turns: details come from `errors`', () => {
    const result = resultFromRun(run([line(SHAPES.maxTurns)], { exitCode: 1 }), ctx());
    expect(result).toMatchObject({
      success: false,
      result: '',
      error: "Agent 'api' failed: Reached maximum number of turns (2)",
      error_type: 'cli_error',
      session_id: CLI_SID,
      num_turns: 3,
      cost_usd: 0.012,
    });
  });

  it('max budget: a budget stop, flagged, resumable, naming the cap and the real reason', () => {
    const result = resultFromRun(run([line(SHAPES.maxBudget)], { exitCode: 1 }), ctx({ budget: 0.25 }));
    expect(result).toEqual({
      agent: 'api',
      success: false,
      result: '',
      session_id: CLI_SID,
      cost_usd: 0.2612,
      num_turns: 4,
      error:
        "Agent 'api' failed: Reached maximum budget ($0.25)" +
        '\n\nHint: the dispatch was stopped by the spend cap $0.25 (passed to claude as --max-budget-usd), so this answer is incomplete. ' +
        'Raise it (agent-dispatch update api --max-budget-usd <amount>), use a cheaper model, or split the task into smaller dispatches. ' +
        `Partial work may be resumable: dispatch_session(agent='api', task='Continue where you left off', session_id='${CLI_SID}').`,
      error_type: 'budget',
      budget_exceeded: true,
    });
  });

  it('tool denied with exit 0: success, with denied_tools and a soft hint', () => {
    const result = resultFromRun(run([line(SHAPES.toolDenied)]), ctx());
    expect(result).toMatchObject({ success: true, denied_tools: ['Bash'], result: SHAPES.toolDenied.result });
    expect(result).not.toHaveProperty('error');
    expect(result.hint).toBe(
      '1 tool call(s) were denied by permissions: Bash. The result may be incomplete — the agent could not use these tools. ' +
        "To grant access: update_agent(name='api', allowed_tools='Bash') or permission_mode='bypassPermissions' " +
        '(CLI: agent-dispatch update api --allowed-tools ...).',
    );
  });
});

describe('finding the result event', () => {
  it('the last result line wins', () => {
    const lines = [resultLine({ result: 'first', is_error: false }), ...PREAMBLE, resultLine({ result: 'second', is_error: false })];
    expect(resultFromRun(run(lines), ctx()).result).toBe('second');
  });

  it('skips blank, non-JSON, non-object and non-result lines, and lines that are not strings', () => {
    const lines = [
      '',
      '   ',
      'Warning: something on stdout',
      '[1,2,3]',
      '"result"',
      'null',
      '{"type":"result"',
      resultLine({ result: 'answer' }),
      line({ type: 'user', message: { content: [] } }),
      line({ type: 'results', result: 'nope' }),
      42 as unknown as string,
      null as unknown as string,
      '{not json}',
    ];
    expect(resultFromRun(run(lines), ctx())).toMatchObject({ success: true, result: 'answer' });
  });

  it('hasResultEvent agrees with resultFromRun', () => {
    expect(hasResultEvent([...PREAMBLE, '  ' + line(SHAPES.success)])).toBe(true);
    expect(hasResultEvent([' {"is_error":false, "type" : "result"}'])).toBe(true);
    expect(hasResultEvent(PREAMBLE)).toBe(false);
    expect(hasResultEvent(['"type":"result"', '[{"type":"result"}]', ''])).toBe(false);
  });

  it('tolerates CRLF, surrounding whitespace and a BOM', () => {
    expect(resultFromRun(run(['\uFEFF  ' + resultLine({ result: 'ok' }) + '\r']), ctx()).result).toBe('ok');
  });

  it('never throws on hostile input', () => {
    const hostile = [
      line({ type: 'result', is_error: { nested: true }, result: { a: [1, 2] }, session_id: { x: 1 }, errors: 'nope', subtype: 7 }),
      line({ type: 'result', __proto__: { is_error: true } }),
    ];
    for (const l of hostile) expect(() => resultFromRun(run([l]), ctx())).not.toThrow();
    expect(() => resultFromRun({ exitCode: null, stdoutLines: undefined as never, stderr: undefined as never, timedOut: false }, ctx())).not.toThrow();
  });

  it('a `__proto__` key in the payload is data, not a prototype', () => {
    const result = resultFromRun(run(['{"type":"result","__proto__":{"is_error":true},"result":"fine"}']), ctx());
    expect(result).toMatchObject({ success: true, result: 'fine' });
  });
});

describe('success results (§4.5 step 6)', () => {
  it('the CLI-reported session id wins over the generated one', () => {
    expect(resultFromRun(run([resultLine({ result: 'x', session_id: CLI_SID })]), ctx()).session_id).toBe(CLI_SID);
  });

  it('falls back to the generated id when the CLI omits it, or reports a blank, non-string or oversized one', () => {
    for (const session_id of [undefined, '', '   ', 42, { id: 'x' }, null, 'x'.repeat(500)]) {
      expect(resultFromRun(run([resultLine({ result: 'x', session_id })]), ctx()).session_id).toBe(SID);
    }
  });

  it('has no session_id at all when neither is known', () => {
    expect(resultFromRun(run([resultLine({ result: 'x' })]), ctx({ sessionFallback: undefined }))).not.toHaveProperty('session_id');
  });

  it('coerces a non-string result to text', () => {
    expect(resultFromRun(run([resultLine({ result: { answer: 42 } })]), ctx()).result).toBe('{"answer":42}');
    expect(resultFromRun(run([resultLine({ result: 7 })]), ctx()).result).toBe('7');
    expect(resultFromRun(run([resultLine({ result: null })]), ctx()).result).toBe('');
    expect(resultFromRun(run([resultLine({})]), ctx()).result).toBe('');
  });

  it('keeps cost, duration and turns only when they are finite numbers; rounds duration and turns', () => {
    const result = resultFromRun(run([resultLine({ result: 'x', total_cost_usd: '0.5', duration_ms: 12.6, num_turns: 2.4 })]), ctx());
    expect(result).not.toHaveProperty('cost_usd');
    expect(result).toMatchObject({ duration_ms: 13, num_turns: 2 });
    const junk = resultFromRun(run(['{"type":"result","result":"x","total_cost_usd":1e999,"duration_ms":-5,"num_turns":null}']), ctx());
    expect(junk).not.toHaveProperty('cost_usd');
    expect(junk).not.toHaveProperty('duration_ms');
    expect(junk).not.toHaveProperty('num_turns');
  });

  it('a successful result has no error fields', () => {
    const result = resultFromRun(run([line(SHAPES.success)]), ctx());
    expect(result).not.toHaveProperty('error');
    expect(result).not.toHaveProperty('error_type');
    expect(result).not.toHaveProperty('hint');
    expect(result).not.toHaveProperty('denied_tools');
  });


  it('undecodable bytes (already U+FFFD) do not break the run', () => {
    const result = resultFromRun(run(['{"type":"result","is_error":false,"result":"caf\uFFFD ok"}', 'garbage \uFFFD\uFFFD']), ctx());
    expect(result).toMatchObject({ success: true, result: 'caf\uFFFD ok' });
  });
});

describe('success = exit 0 AND is_error false (claude-cli.md §4a)', () => {
  it('a non-zero exit after a success event is a failure that keeps the text, the session and the metrics', () => {
    const result = resultFromRun(run([...PREAMBLE, line(SHAPES.success)], { exitCode: 1 }), ctx());
    expect(result).toEqual({
      agent: 'api',
      success: false,
      result: 'Hello from mock',
      session_id: CLI_SID,
      cost_usd: 0.00054,
      duration_ms: 291,
      num_turns: 1,
      error: 'claude exited with code 1 after reporting success: Hello from mock',
      error_type: 'cli_error',
      hint:
        'The answer is kept in result but may be incomplete: claude did not exit cleanly after producing it. ' +
        `Partial work may be resumable: dispatch_session(agent='api', task='Continue where you left off', session_id='${CLI_SID}').`,
    });
  });

  it('quotes only the start of the answer and of stderr; the whole answer stays in result', () => {
    const answer = 'A'.repeat(5000);
    const result = resultFromRun(run([resultLine({ is_error: false, result: answer })], { exitCode: 2, stderr: `  ${'s'.repeat(2000)}\n` }), ctx());
    expect(result.result).toBe(answer);
    expect(result.error).toBe(`claude exited with code 2 after reporting success: ${'A'.repeat(300)} … [truncated]\nstderr: ${'s'.repeat(300)} … [truncated]`);
    expect(result.session_id).toBe(SID);
  });

  it('an empty answer says so', () => {
    expect(resultFromRun(run([resultLine({ is_error: false, result: '' })], { exitCode: 1 }), ctx()).error).toBe(
      'claude exited with code 1 after reporting success (with an empty result)',
    );
  });

  it('classified by the text: a permission failure gets the permission hint (with the policy note)', () => {
    const policy = { name: 'strict', toolsAllow: ['Read'], modeCap: 'default' };
    const result = resultFromRun(run([line(SHAPES.success)], { exitCode: 1, stderr: 'Error: permission denied writing ~/.claude.json' }), ctx({ policy }));
    expect(result).toMatchObject({ success: false, error_type: 'permission' });
    expect(result.error).toMatch(/^claude exited with code 1 after reporting success: Hello from mock\nstderr: Error: permission denied writing ~\/\.claude\.json\n\nHint: Agent 'api' was denied/);
    expect(result.error).toContain("Note: the agent's sandbox policy 'strict' bounds these");
  });

  it('denied tools and the post-hoc budget still apply', () => {
    const result = resultFromRun(run([line({ ...SHAPES.toolDenied, total_cost_usd: 2 })], { exitCode: 1 }), ctx({ budget: 1 }));
    expect(result).toMatchObject({ success: false, denied_tools: ['Bash'], budget_exceeded: true });
    expect(result.hint).toContain('exceeded the configured budget $1.00');
  });

  it('a result before the deadline beats the kill: timed out (any exit code) stays a success', () => {
    for (const exitCode of [null, 137]) {
      expect(resultFromRun(run([line(SHAPES.success)], { timedOut: true, exitCode }), ctx())).toMatchObject({ success: true, hint: KILLED_AFTER_RESULT });
    }
  });

  it('a result before a cancel is kept', () => {
    for (const exitCode of [null, 137]) {
      const result = resultFromRun(run([line(SHAPES.success)], { cancelled: true, exitCode }), ctx());
      expect(result).toMatchObject({ success: true, result: 'Hello from mock' });
      expect(result).not.toHaveProperty('error');
    }
  });

  it('an unknown exit code (null, not killed) does not undo the result', () => {
    expect(resultFromRun(run([line(SHAPES.success)], { exitCode: null }), ctx()).success).toBe(true);
  });

  it('an is_error event is judged as before whatever the exit code', () => {
    expect(resultFromRun(run([line(SHAPES.invalidKey)], { exitCode: 0 }), ctx())).toMatchObject({ success: false, error: 'Invalid API key · Fix external API key' });
  });
});

describe('permission hints name the policy when it bounds them', () => {
  const policy = { name: 'strict', toolsAllow: ['Read', 'Grep'], toolsDeny: ['WebFetch'], modeCap: 'default' };
  const NOTE =
    "Note: the agent's sandbox policy 'strict' bounds these: tools outside its tools.allow and modes above 'default' are dropped — " +
    'widen the policy file, then check with agent-dispatch policy check --agent api.';

  it('denied tools on a success: the hint ends with the note', () => {
    const result = resultFromRun(run([line(SHAPES.toolDenied)]), ctx({ policy }));
    expect(result.hint).toMatch(/\(CLI: agent-dispatch update api --allowed-tools \.\.\.\)\. Note: /);
    expect(result.hint!.endsWith(NOTE)).toBe(true);
  });

  it('is_error with denials, and a permission error without a result event, get it too', () => {
    const denied = resultFromRun(run([resultLine({ is_error: true, result: 'x', permission_denials: [{ tool_name: 'WebFetch' }] })], { exitCode: 1 }), ctx({ policy }));
    expect(denied.error).toContain("bounds these: tools outside its tools.allow, tools in its tools.deny and modes above 'default' are dropped");
    const stderr = resultFromRun(run([], { exitCode: 1, stderr: 'Error: permission denied' }), ctx({ policy }));
    expect(stderr.error!.endsWith(`--allowed-tools Bash,Read,Edit,Write,Glob,Grep\n${NOTE}`)).toBe(true);
  });

  it('a policy that bounds nothing adds nothing', () => {
    const open = { name: 'open', toolsAllow: null, modeCap: 'bypassPermissions' };
    expect(resultFromRun(run([line(SHAPES.toolDenied)]), ctx({ policy: open })).hint).toBe(resultFromRun(run([line(SHAPES.toolDenied)]), ctx()).hint);
    expect(resultFromRun(run([line(SHAPES.toolDenied)]), ctx({ policy: open })).hint).not.toContain('Note:');
  });
});

describe('structured output (TestStructuredResponse, result side)', () => {
  it('parses a clean object when json was requested', () => {
    const result = resultFromRun(run([resultLine({ result: '{"users": 3}' })]), ctx({ responseFormat: 'json' }));
    expect(result.parsed_result).toEqual({ users: 3 });
    expect(result.result).toBe('{"users": 3}');
  });

  it('parses a fenced answer', () => {
    expect(resultFromRun(run([resultLine({ result: '```json\n{"a": 1}\n```' })]), ctx({ responseFormat: 'json' })).parsed_result).toEqual({ a: 1 });
    expect(resultFromRun(run([resultLine({ result: '```\n[1, 2]\n```' })]), ctx({ responseFormat: 'json' })).parsed_result).toEqual([1, 2]);
  });

  it('unparseable prose stays a success without parsed_result', () => {
    const result = resultFromRun(run([resultLine({ result: 'There are 3 users.' })]), ctx({ responseFormat: 'json' }));
    expect(result.success).toBe(true);
    expect(result).not.toHaveProperty('parsed_result');
  });

  it('does not parse unless json was requested', () => {
    expect(resultFromRun(run([resultLine({ result: '{"users": 3}' })]), ctx())).not.toHaveProperty('parsed_result');
  });

  it('an agent answering null gets parsed_result: null', () => {
    const result = resultFromRun(run([resultLine({ result: 'null' })]), ctx({ responseFormat: 'json' }));
    expect(result).toHaveProperty('parsed_result', null);
    expect(JSON.stringify(result)).toContain('"parsed_result":null');
  });

  it('a failed run never gets parsed_result', () => {
    expect(resultFromRun(run([resultLine({ is_error: true, result: '{"a":1}' })]), ctx({ responseFormat: 'json' }))).not.toHaveProperty('parsed_result');
  });
});

describe('denied tools (TestDeniedTools, result side)', () => {
  it('no denials → no hint', () => {
    expect(resultFromRun(run([resultLine({ result: 'x', permission_denials: [] })]), ctx())).not.toHaveProperty('hint');
  });

  it('the hint counts and lists de-duplicated tools', () => {
    const result = resultFromRun(
      run([resultLine({ result: 'x', permission_denials: [{ tool_name: 'Bash' }, { tool_name: 'WebFetch' }, { tool_name: 'Bash' }] })]),
      ctx(),
    );
    expect(result.denied_tools).toEqual(['Bash', 'WebFetch']);
    expect(result.hint).toContain('2 tool call(s) were denied by permissions: Bash, WebFetch.');
    expect(result.hint).toContain("allowed_tools='Bash,WebFetch'");
  });

  it('is_error with denials is a permission error even without permission words', () => {
    const result = resultFromRun(run([resultLine({ is_error: true, result: 'Something failed', permission_denials: [{ tool_name: 'Bash' }] })]), ctx());
    expect(result).toMatchObject({ success: false, error_type: 'permission', denied_tools: ['Bash'] });
    expect(result.error).toMatch(/^Something failed\n\nHint: Agent 'api' was denied/);
  });
});

describe('error results (§4.7 _build_error_result)', () => {
  it('is_error with an empty result → "no details" with the exit code', () => {
    const result = resultFromRun(run([resultLine({ is_error: true, result: '' })], { exitCode: 1 }), ctx());
    expect(result).toMatchObject({ success: false, result: '', error: "Agent 'api' reported an error with no details (exit code 1)", error_type: 'cli_error' });
  });

  it('is_error with a null result still has an error, and result ""', () => {
    const result = resultFromRun(run([resultLine({ is_error: true, result: null })], { exitCode: 0 }), ctx());
    expect(result.result).toBe('');
    expect(result.error).toBe("Agent 'api' reported an error with no details (exit code 0)");
  });

  it('no exit code → no suffix', () => {
    expect(resultFromRun(run([resultLine({ is_error: true })], { exitCode: null }), ctx()).error).toBe(
      "Agent 'api' reported an error with no details",
    );
  });

  it('permission text in `result` → permission + hint', () => {
    const result = resultFromRun(run([resultLine({ is_error: true, result: 'Permission denied for Bash' })], { exitCode: 1 }), ctx());
    expect(result.error_type).toBe('permission');
    expect(result.error).toContain('Hint:');
  });

  it('keeps the session id (reported, else fallback) and the metrics', () => {
    const reported = resultFromRun(run([resultLine({ is_error: true, result: 'x', session_id: CLI_SID, total_cost_usd: 0.1, num_turns: 2 })]), ctx());
    expect(reported).toMatchObject({ session_id: CLI_SID, cost_usd: 0.1, num_turns: 2 });
    expect(resultFromRun(run([resultLine({ is_error: true, result: 'x' })]), ctx()).session_id).toBe(SID);
  });

  it('truthiness of is_error follows Python: "false" is true, [] and {} are false', () => {
    expect(resultFromRun(run([resultLine({ is_error: 'false', result: 'x' })]), ctx()).success).toBe(false);
    expect(resultFromRun(run([resultLine({ is_error: [], result: 'x' })]), ctx()).success).toBe(true);
    expect(resultFromRun(run([resultLine({ is_error: {}, result: 'x' })]), ctx()).success).toBe(true);
    expect(resultFromRun(run([resultLine({ is_error: 0, result: 'x' })]), ctx()).success).toBe(true);
  });

  it('caps a huge error text but keeps the full result', () => {
    const big = 'E'.repeat(50_000);
    const result = resultFromRun(run([resultLine({ is_error: true, result: big })]), ctx());
    expect(result.result).toBe(big);
    expect(result.error!.length).toBeLessThan(4100);
    expect(result.error).toContain('[truncated]');
  });

  it('an error event is not turned into the killed-after-result success by a timeout', () => {
    const result = resultFromRun(run([resultLine({ is_error: true, result: 'boom' })], { timedOut: true, exitCode: null }), ctx());
    expect(result).toMatchObject({ success: false, error: 'boom', error_type: 'cli_error' });
    expect(result).not.toHaveProperty('hint');
  });
});

describe('CLI error details (TestCliErrorDetails)', () => {
  const failed = (fields: Record<string, unknown>) => resultFromRun(run([resultLine({ is_error: true, ...fields })], { exitCode: 0 }), ctx());

  it('surfaces the `errors` list', () => {
    const result = failed({ errors: ['Tool execution failed: ENOENT'] });
    expect(result.error).toBe("Agent 'api' failed: Tool execution failed: ENOENT");
    expect(result.error).not.toContain('no details');
  });

  it('joins several errors with "; "', () => {
    expect(failed({ errors: ['first', 'second'] }).error).toBe("Agent 'api' failed: first; second");
  });

  it('uses the subtype when `errors` is absent', () => {
    expect(failed({ subtype: 'error_during_execution' }).error).toBe("Agent 'api' failed: claude CLI reported 'error_during_execution'");
  });

  it('`result` text still wins over `errors`', () => {
    expect(failed({ result: 'the real reason', errors: ['other'] }).error).toBe('the real reason');
  });

  it('falls back to "no details" with the exit code', () => {
    const error = failed({}).error!;
    expect(error).toContain('no details');
    expect(error).toContain('exit code 0');
  });

  it('classifies the details', () => {
    const result = failed({ errors: ['Permission denied: /etc/shadow'] });
    expect(result.error_type).toBe('permission');
    expect(result.error).toContain('Hint:');
  });

  it('caps untrusted errors (5 × 300)', () => {
    const result = failed({ errors: Array.from({ length: 20 }, () => 'x'.repeat(5000)) });
    expect(result.error!.length).toBeLessThan(2500);
    expect(result.error).toBe(`Agent 'api' failed: ${Array.from({ length: 5 }, () => 'x'.repeat(300)).join('; ')}`);
  });

  it('tolerates non-string entries', () => {
    expect(failed({ errors: [{ code: 1 }, null, 42] }).error).toBe('Agent \'api\' failed: {"code":1}; 42');
  });

  it('blank errors fall through to the subtype; a blank subtype to "no details"', () => {
    expect(failed({ errors: ['', '   ', null], subtype: 'error_max_turns' }).error).toBe("Agent 'api' failed: claude CLI reported 'error_max_turns'");
    expect(failed({ errors: [], subtype: '  ' }).error).toContain('no details');
    expect(failed({ subtype: 'x'.repeat(1000) }).error).toBe(`Agent 'api' failed: claude CLI reported '${'x'.repeat(300)}'`);
  });
});

describe('budget stops (TestBudgetExhausted)', () => {
  const stop = (fields: Record<string, unknown>, extra: Partial<ResultContext> = {}) =>
    resultFromRun(run([resultLine({ is_error: true, ...fields })], { exitCode: 1 }), ctx(extra));

  it('terminal_reason alone is enough', () => {
    expect(stop({ terminal_reason: 'budget_exhausted' })).toMatchObject({ error_type: 'budget', budget_exceeded: true });
  });

  it('subtype alone is enough', () => {
    expect(stop({ subtype: 'error_max_budget_usd' })).toMatchObject({ error_type: 'budget', budget_exceeded: true });
  });

  it('is flagged even when the reported cost is under the cap, with no duplicate post-hoc hint', () => {
    const result = stop({ subtype: 'error_max_budget_usd', total_cost_usd: 0.2 }, { budget: 0.25 });
    expect(result.budget_exceeded).toBe(true);
    expect(result).not.toHaveProperty('hint');
    expect(result.error).not.toContain('exceeded the configured budget');
  });

  it('wins over denied tools, which are still reported', () => {
    const result = stop({ subtype: 'error_max_budget_usd', permission_denials: [{ tool_name: 'Bash' }] });
    expect(result).toMatchObject({ error_type: 'budget', denied_tools: ['Bash'] });
    expect(result.error).not.toContain("was denied a tool");
  });

  it('wins over permission words in the text', () => {
    expect(stop({ subtype: 'error_max_budget_usd', result: 'Permission denied' }).error_type).toBe('budget');
  });

  it('names the cap formatted like %g, or "the configured cap"', () => {
    expect(stop({ subtype: 'error_max_budget_usd' }, { budget: 0.25 }).error).toContain('stopped by the spend cap $0.25 (passed');
    expect(stop({ subtype: 'error_max_budget_usd' }, { budget: 0.5 }).error).toContain('$0.5 (passed');
    expect(stop({ subtype: 'error_max_budget_usd' }, { budget: 2 }).error).toContain('$2 (passed');
    expect(stop({ subtype: 'error_max_budget_usd' }, { budget: undefined }).error).toContain('stopped by the spend cap the configured cap (passed');
  });

  it('without any session id there is no resumable sentence', () => {
    const error = stop({ subtype: 'error_max_budget_usd' }, { sessionFallback: undefined }).error!;
    expect(error).not.toContain('resumable');
    expect(error.endsWith('split the task into smaller dispatches.')).toBe(true);
  });
});

describe('post-hoc budget through resultFromRun (TestBudget)', () => {
  it('flags an over-budget success', () => {
    const result = resultFromRun(run([resultLine({ result: 'x', total_cost_usd: 0.05 })]), ctx({ budget: 0.01 }));
    expect(result).toMatchObject({ success: true, budget_exceeded: true });
    expect(result.hint).toContain('$0.0500');
    expect(result.hint).toContain('$0.01');
  });

  it('within budget: no flag', () => {
    const result = resultFromRun(run([resultLine({ result: 'x', total_cost_usd: 0.005 })]), ctx({ budget: 0.01 }));
    expect(result).not.toHaveProperty('budget_exceeded');
  });

  it('flags an over-budget failure, which stays failed', () => {
    const result = resultFromRun(run([resultLine({ is_error: true, result: 'boom', total_cost_usd: 2 })]), ctx({ budget: 1 }));
    expect(result).toMatchObject({ success: false, budget_exceeded: true, error_type: 'cli_error' });
  });

  it('the post-hoc note follows the denied-tools hint', () => {
    const result = resultFromRun(
      run([resultLine({ result: 'x', total_cost_usd: 2, permission_denials: ['Bash'] })]),
      ctx({ budget: 1 }),
    );
    expect(result.hint).toMatch(/^1 tool call\(s\) were denied .* Cost \$2\.0000 exceeded the configured budget \$1\.00 /);
  });

  it('on a resumed session, notes that claude reports a cumulative cost', () => {
    const resumed = resultFromRun(run([resultLine({ result: 'x', total_cost_usd: 2 })]), ctx({ budget: 1, resumed: true }));
    expect(resumed.hint).toMatch(/exceeded the configured budget .* cumulative cost, earlier runs included\.$/);
    const fresh = resultFromRun(run([resultLine({ result: 'x', total_cost_usd: 2 })]), ctx({ budget: 1 }));
    expect(fresh.hint).not.toContain('cumulative');
    const under = resultFromRun(run([resultLine({ result: 'x', total_cost_usd: 0.5 })]), ctx({ budget: 1, resumed: true }));
    expect(under).not.toHaveProperty('hint');
  });
});

describe('timeouts (TestResumableTimeout, TestStreamResumableTimeout)', () => {
  it('no result and timed out → a resumable timeout naming dispatch_session and timeout_seconds', () => {
    const result = resultFromRun(run(PREAMBLE, { timedOut: true, exitCode: null }), ctx({ timeoutSeconds: 120 }));
    expect(result).toEqual({
      agent: 'api',
      success: false,
      result: '',
      session_id: SID,
      error:
        "Agent 'api' timed out after 120s. Options: pass timeout_seconds= for a longer one-off run, " +
        'or raise the agent default (agent-dispatch update api --timeout 240). ' +
        `Partial work may be resumable: dispatch_session(agent='api', task='Continue where you left off', session_id='${SID}').`,
      error_type: 'timeout',
    });
  });

  it("a timeout the policy's cap decided names the policy, not options that cannot help", () => {
    const result = resultFromRun(run([], { timedOut: true, exitCode: null }), ctx({ timeoutSeconds: 60, timeoutCappedByPolicy: true }));
    expect(result.error).toContain("This is the cap of the agent's sandbox policy (resources.timeout)");
    expect(result.error).not.toContain('timeout_seconds=');
    expect(result.error).not.toContain('--timeout');
  });

  it('a timeout on resume keeps the original session id', () => {
    const result = resultFromRun(run([], { timedOut: true, exitCode: 137 }), ctx({ sessionFallback: 'orig-session', resumed: true }));
    expect(result.session_id).toBe('orig-session');
    expect(result.error).toContain("session_id='orig-session'");
  });

  it('without a session id the timeout has no resumable sentence', () => {
    const result = resultFromRun(run([], { timedOut: true }), ctx({ sessionFallback: undefined }));
    expect(result).not.toHaveProperty('session_id');
    expect(result.error!.endsWith('--timeout 600).')).toBe(true);
  });

  it('a result received before the deadline beats the timeout (killed-after-result hint)', () => {
    const result = resultFromRun(run([...PREAMBLE, line(SHAPES.success)], { timedOut: true, exitCode: null }), ctx());
    expect(result).toMatchObject({ success: true, result: 'Hello from mock', session_id: CLI_SID, hint: KILLED_AFTER_RESULT });
    expect(KILLED_AFTER_RESULT).toBe(
      'The agent produced its final result but the process had not exited by the timeout and was killed. The result is complete — only cleanup was cut short.',
    );
  });

  it('the killed-after-result hint follows a denied-tools hint', () => {
    const result = resultFromRun(run([line(SHAPES.toolDenied)], { timedOut: true }), ctx());
    expect(result.hint).toMatch(/--allowed-tools \.\.\.\)\. The agent produced its final result/);
  });
});

describe('no result event (TestDispatchPayloadRobustness, TestStreamPipeHandling)', () => {
  it('exit 0 with no output is a failure, and stays resumable', () => {
    expect(resultFromRun(run([]), ctx())).toEqual({
      agent: 'api',
      success: false,
      result: '',
      session_id: SID,
      error: 'No result received (exit code 0)',
      error_type: 'cli_error',
    });
  });

  it('exit 0 with no output reports stderr', () => {
    expect(resultFromRun(run([], { stderr: '  something broke\n' }), ctx()).error).toBe('something broke');
  });

  it('stderr is reported when no result line arrives', () => {
    const result = resultFromRun(run(PREAMBLE, { exitCode: 1, stderr: 'Error: Invalid session ID. Must be a valid UUID.\n' }), ctx());
    expect(result).toMatchObject({ success: false, error: 'Error: Invalid session ID. Must be a valid UUID.', error_type: 'cli_error', session_id: SID });
  });

  it('a crash mid-stream (JSON lines, no result) stays resumable with the exit code', () => {
    expect(resultFromRun(run(PREAMBLE, { exitCode: 137 }), ctx())).toMatchObject({ error: 'No result received (exit code 137)', session_id: SID });
    expect(resultFromRun(run(PREAMBLE, { exitCode: null }), ctx()).error).toBe('No result received (exit code unknown)');
  });

  it('non-JSON stdout (a bare JSON string too) is a failure carrying the text', () => {
    expect(resultFromRun(run(['"just a bare string"']), ctx())).toMatchObject({ success: false, error: '"just a bare string"' });
    expect(resultFromRun(run(['Invalid API key · Fix external API key'], { exitCode: 1 }), ctx()).error).toBe(
      'Invalid API key · Fix external API key',
    );
  });

  it('stderr wins over stray stdout text', () => {
    expect(resultFromRun(run(['stdout text'], { exitCode: 1, stderr: 'stderr text' }), ctx()).error).toBe('stderr text');
  });

  it('permission words in stderr → permission + hint', () => {
    const result = resultFromRun(run([], { exitCode: 1, stderr: 'Error: permission denied' }), ctx());
    expect(result.error_type).toBe('permission');
    expect(result.error).toBe("Error: permission denied\n\nHint: Agent 'api' was denied a tool or action. To fix, configure permissions in agents.yaml:\n  agent-dispatch update api --permission-mode bypassPermissions\n  agent-dispatch update api --allowed-tools Bash,Read,Edit,Write,Glob,Grep");
  });

  it('other stderr → cli_error without a hint', () => {
    const result = resultFromRun(run([], { exitCode: 1, stderr: 'Error: connection reset' }), ctx());
    expect(result.error_type).toBe('cli_error');
    expect(result.error).not.toContain('Hint');
  });

  it('caps a chatty stderr and stray stdout', () => {
    const result = resultFromRun(run([], { exitCode: 1, stderr: 'e'.repeat(1 << 20) }), ctx());
    expect(result.error!.length).toBeLessThan(4100);
    expect(result.error!.endsWith('[truncated]')).toBe(true);
    const stdout = resultFromRun(run(Array.from({ length: 10_000 }, () => 'x'.repeat(100)), { exitCode: 1 }), ctx());
    expect(stdout.error!.length).toBeLessThan(4100);
  });

  it('the old-CLI session flag rejection is an ordinary failure here (the caller retries)', () => {
    const result = resultFromRun(run([], { exitCode: 1, stderr: "error: unknown option '--session-id'" }), ctx());
    expect(result).toMatchObject({ success: false, error_type: 'cli_error', error: "error: unknown option '--session-id'" });
  });

  it('has no session id when none was known', () => {
    expect(resultFromRun(run([]), ctx({ sessionFallback: undefined }))).not.toHaveProperty('session_id');
  });
});
