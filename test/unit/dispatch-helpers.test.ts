import { describe, expect, it } from 'vitest';
import {
  applyBudget,
  classifyError,
  currentDepth,
  errorResult,
  extractDeniedTools,
  parseStructuredResponse,
  permissionHint,
  recursionResult,
} from '../../src/dispatch/result.js';
import { denialHint, policyNote, type PolicyBounds } from '../../src/dispatch/classify.js';
import { formatG, truncate } from '../../src/dispatch/text.js';
import { makeResult, type DispatchResult } from '../../src/dispatch/types.js';

describe('recursion protection (TestRecursionProtection)', () => {
  it('depth is 0 by default', () => {
    expect(currentDepth({})).toBe(0);
  });

  it('reads the depth from the environment', () => {
    expect(currentDepth({ AGENT_DISPATCH_DEPTH: '2' })).toBe(2);
  });

  it('accepts what Python int() accepts', () => {
    expect(currentDepth({ AGENT_DISPATCH_DEPTH: ' 3\n' })).toBe(3);
    expect(currentDepth({ AGENT_DISPATCH_DEPTH: '+4' })).toBe(4);
    expect(currentDepth({ AGENT_DISPATCH_DEPTH: '1_0' })).toBe(10);
  });

  it.each(['', 'abc', '1.5', '2x', '0x10', '1e3', '_1', '1__0', 'NaN', 'Infinity'])('non-integer %j → 0', (raw) => {
    expect(currentDepth({ AGENT_DISPATCH_DEPTH: raw })).toBe(0);
  });

  it('a negative depth counts as 0', () => {
    expect(currentDepth({ AGENT_DISPATCH_DEPTH: '-5' })).toBe(0);
  });

  it('the refusal names the depth and the max', () => {
    expect(recursionResult('api', 3, 3)).toEqual({
      agent: 'api',
      success: false,
      result: '',
      error:
        'Dispatch depth 3 >= max 3. An agent is trying to dispatch to another agent that dispatches back. ' +
        'Increase settings.max_dispatch_depth if this is intentional.',
      error_type: 'recursion',
    });
  });
});

describe('classifyError (TestErrorClassification)', () => {
  it.each([
    'Permission denied: cannot write',
    'tool_use is not allowed in this mode',
    'The tool is not available',
    'Operation not permitted',
    'Unauthorized',
    'Bash is a disallowed tool',
    'blocked by permission mode',
    'you do not have permission',
    'that is NOT ALLOWED',
  ])('%j → permission', (text) => {
    expect(classifyError(text)).toBe('permission');
  });

  it.each(['Connection refused', 'Invalid API key · Fix external API key', 'Something went wrong', 'API Error: 500'])(
    '%j → cli_error',
    (text) => {
      expect(classifyError(text)).toBe('cli_error');
    },
  );

  it('never throws on odd input', () => {
    expect(classifyError(null)).toBe('cli_error');
    expect(classifyError(undefined)).toBe('cli_error');
    expect(classifyError('')).toBe('cli_error');
    expect(classifyError({ code: 1 })).toBe('cli_error');
    expect(classifyError(42)).toBe('cli_error');
    expect(classifyError([])).toBe('cli_error');
    const cyclic: Record<string, unknown> = {};
    cyclic['self'] = cyclic;
    expect(classifyError(cyclic)).toBe('cli_error');
    expect(classifyError(Symbol('x'))).toBe('cli_error');
  });

  it('classifies the text of an object', () => {
    expect(classifyError({ message: 'Permission denied' })).toBe('permission');
  });

  it('the permission hint names the agent and real CLI flags, exactly', () => {
    expect(permissionHint('api')).toBe(
      "\n\nHint: Agent 'api' was denied a tool or action. To fix, configure permissions in agents.yaml:\n" +
        '  agent-dispatch update api --permission-mode bypassPermissions\n' +
        '  agent-dispatch update api --allowed-tools Bash,Read,Edit,Write,Glob,Grep',
    );
  });
});

describe('permission hints under a sandbox policy (the policy bounds what `update` can grant)', () => {
  const PERMISSION_HINT =
    "\n\nHint: Agent 'api' was denied a tool or action. To fix, configure permissions in agents.yaml:\n" +
    '  agent-dispatch update api --permission-mode bypassPermissions\n' +
    '  agent-dispatch update api --allowed-tools Bash,Read,Edit,Write,Glob,Grep';
  const DENIAL_HINT =
    '1 tool call(s) were denied by permissions: Edit. The result may be incomplete — the agent could not use these tools. ' +
    "To grant access: update_agent(name='api', allowed_tools='Edit') or permission_mode='bypassPermissions' " +
    '(CLI: agent-dispatch update api --allowed-tools ...).';
  const policy = (extra: Partial<PolicyBounds> = {}): PolicyBounds => ({
    name: 'strict',
    toolsAllow: ['Read', 'Grep', 'Glob'],
    toolsDeny: ['WebFetch'],
    modeCap: 'default',
    ...extra,
  });
  const open = policy({ toolsAllow: null, toolsDeny: [], modeCap: 'bypassPermissions' });
  const note = (what: string, agent = 'api', name = 'strict') =>
    `Note: the agent's sandbox policy '${name}' bounds these: ${what} are dropped — widen the policy file, then check with agent-dispatch policy check --agent ${agent}.`;

  it("keeps the original's wording and appends the policy note on its own line", () => {
    expect(permissionHint('api', policy())).toBe(`${PERMISSION_HINT}\n${note("tools outside its tools.allow and modes above 'default'")}`);
  });

  it('without a policy, or under one that bounds nothing, the hint is the original, byte for byte', () => {
    expect(permissionHint('api')).toBe(PERMISSION_HINT);
    expect(permissionHint('api', open)).toBe(PERMISSION_HINT);
    expect(denialHint('api', ['Edit'])).toBe(DENIAL_HINT);
    expect(denialHint('api', ['Edit'], open)).toBe(DENIAL_HINT);
  });

  it('the denial hint gets the note after its last sentence', () => {
    expect(denialHint('api', ['Edit'], policy())).toBe(`${DENIAL_HINT} ${note("tools outside its tools.allow and modes above 'default'")}`);
  });

  it('names only what binds: a mode cap alone when tools.allow covers the tools', () => {
    expect(policyNote('api', policy({ toolsAllow: ['Bash', 'Edit'] }), ['Edit', 'Bash(git diff:*)'])).toBe(note("modes above 'default'"));
    expect(policyNote('api', policy({ modeCap: 'bypassPermissions' }), ['Edit'])).toBe(note('tools outside its tools.allow'));
    expect(policyNote('api', policy({ modeCap: 'bypassPermissions' }), ['Read'])).toBe('');
  });

  it('a denied tool in tools.deny is named, and the permission hint counts the denied tools too', () => {
    const bound = policy({ toolsAllow: null, modeCap: 'bypassPermissions' });
    expect(policyNote('api', bound, ['WebFetch'])).toBe(note('tools in its tools.deny'));
    expect(permissionHint('api', bound)).toBe(PERMISSION_HINT);
    expect(permissionHint('api', bound, ['WebFetch'])).toBe(`${PERMISSION_HINT}\n${note('tools in its tools.deny')}`);
    expect(policyNote('web', policy({ name: './p.yaml' }), ['WebFetch'])).toBe(
      note("tools outside its tools.allow, tools in its tools.deny and modes above 'default'", 'web', './p.yaml'),
    );
  });

  it('an unknown cap counts as bounding', () => {
    expect(policyNote('api', policy({ toolsAllow: null, modeCap: 'weird' }), ['Edit'])).toBe(note("modes above 'weird'"));
  });
});

describe('extractDeniedTools (TestDeniedTools)', () => {
  it('de-duplicates and keeps order', () => {
    const data = { permission_denials: [{ tool_name: 'Bash', tool_input: {} }, { tool_name: 'WebFetch' }, { tool_name: 'Bash' }] };
    expect(extractDeniedTools(data)).toEqual(['Bash', 'WebFetch']);
  });

  it('missing, empty or non-list → undefined', () => {
    expect(extractDeniedTools({})).toBeUndefined();
    expect(extractDeniedTools({ permission_denials: [] })).toBeUndefined();
    expect(extractDeniedTools({ permission_denials: 'weird' })).toBeUndefined();
    expect(extractDeniedTools({ permission_denials: { tool_name: 'Bash' } })).toBeUndefined();
    expect(extractDeniedTools(null)).toBeUndefined();
    expect(extractDeniedTools([{ tool_name: 'Bash' }])).toBeUndefined();
    expect(extractDeniedTools('permission_denials')).toBeUndefined();
  });

  it('handles string entries, the `tool` key and junk', () => {
    expect(extractDeniedTools({ permission_denials: ['Bash', { tool: 'Read' }, { junk: 1 }] })).toEqual(['Bash', 'Read', 'unknown']);
  });

  it('coerces odd names instead of failing', () => {
    expect(extractDeniedTools({ permission_denials: [{ tool_name: 42 }, null, { tool_name: '' , tool: 'Edit' }, 7] })).toEqual([
      '42',
      'unknown',
      'Edit',
      '7',
    ]);
  });

  it('caps the entry count at 10', () => {
    const names = extractDeniedTools({ permission_denials: Array.from({ length: 500 }, (_, i) => ({ tool_name: `Tool${i}` })) });
    expect(names).toHaveLength(10);
    expect(names![0]).toBe('Tool0');
  });

  it('truncates long names to 100 characters', () => {
    expect(extractDeniedTools({ permission_denials: [{ tool_name: 'X'.repeat(5000) }] })![0]).toHaveLength(100);
  });

  it('ignores a permission_denials inherited from the prototype', () => {
    const data = Object.create({ permission_denials: ['Bash'] }) as object;
    expect(extractDeniedTools(data)).toBeUndefined();
  });
});

describe('parseStructuredResponse (TestStructuredResponse)', () => {
  it('parses a clean object', () => {
    expect(parseStructuredResponse('{"users": 3}')).toEqual({ users: 3 });
  });

  it('strips a ```json fence', () => {
    expect(parseStructuredResponse('```json\n{"a": 1}\n```')).toEqual({ a: 1 });
  });

  it('strips a bare fence (array)', () => {
    expect(parseStructuredResponse('```\n[1, 2, 3]\n```')).toEqual([1, 2, 3]);
  });

  it('tolerates surrounding whitespace, CRLF and a missing closing fence', () => {
    expect(parseStructuredResponse('  \r\n```json\r\n{"a": [1]}\r\n```  \n')).toEqual({ a: [1] });
    expect(parseStructuredResponse('```json\n{"a": 1}')).toEqual({ a: 1 });
  });

  it('parses scalars, and null as null (not as a failure)', () => {
    expect(parseStructuredResponse('42')).toBe(42);
    expect(parseStructuredResponse('"hello"')).toBe('hello');
    expect(parseStructuredResponse('true')).toBe(true);
    expect(parseStructuredResponse('null')).toBeNull();
  });

  it('returns undefined on garbage', () => {
    expect(parseStructuredResponse('')).toBeUndefined();
    expect(parseStructuredResponse('Here are the users: 3')).toBeUndefined();
    expect(parseStructuredResponse('```python\nprint(1)\n```')).toBeUndefined();
    expect(parseStructuredResponse('{"a": 1} and some prose')).toBeUndefined();
    expect(parseStructuredResponse('```')).toBeUndefined();
    expect(parseStructuredResponse(undefined as unknown as string)).toBeUndefined();
  });

  it('survives pathologically deep nesting', () => {
    expect(() => parseStructuredResponse('['.repeat(200_000) + ']'.repeat(200_000))).not.toThrow();
  });
});

describe('applyBudget (TestBudget)', () => {
  const ok = (extra: Partial<DispatchResult> = {}): DispatchResult => makeResult({ agent: 'api', success: true, result: 'ok', ...extra });

  it('over budget: flag and hint with the cost (4 places) and the budget (2 places)', () => {
    const result = applyBudget(ok({ cost_usd: 0.05 }), 0.01);
    expect(result.budget_exceeded).toBe(true);
    expect(result.hint).toBe(
      'Cost $0.0500 exceeded the configured budget $0.01 for this agent. Consider a cheaper model, a tighter task, or raising max_budget_usd.',
    );
    expect(result.success).toBe(true);
  });

  it('within budget, at the budget, with no budget or no cost: unchanged', () => {
    for (const [cost, budget] of [
      [0.005, 0.01],
      [0.01, 0.01],
      [0.05, undefined],
      [0.05, 0],
      [undefined, 0.01],
      [0, 0.01],
    ] as const) {
      const input = ok({ cost_usd: cost });
      const result = applyBudget(input, budget);
      expect(result).toEqual(input);
      expect(result).not.toHaveProperty('budget_exceeded');
      expect(result).not.toHaveProperty('hint');
    }
  });

  it('appends after an existing hint', () => {
    const result = applyBudget(ok({ cost_usd: 1, hint: 'Earlier hint.' }), 0.5);
    expect(result.hint).toMatch(/^Earlier hint\. Cost \$1\.0000 exceeded the configured budget \$0\.50 /);
  });

  it('applies to a failed result too, which stays failed', () => {
    const result = applyBudget(makeResult({ agent: 'api', success: false, result: '', error: 'boom', error_type: 'cli_error', cost_usd: 2 }), 1);
    expect(result).toMatchObject({ success: false, budget_exceeded: true, error: 'boom' });
  });

  it('leaves a budget stop alone (it carries a better message)', () => {
    const input = makeResult({ agent: 'api', success: false, result: '', error: 'x', error_type: 'budget', cost_usd: 5, budget_exceeded: true });
    expect(applyBudget(input, 1)).toBe(input);
  });

  it('does not mutate its input', () => {
    const input = ok({ cost_usd: 1 });
    applyBudget(input, 0.5);
    expect(input).not.toHaveProperty('budget_exceeded');
  });
});

describe('result objects', () => {
  it('makeResult omits undefined fields (exclude_none) and keeps the original key order', () => {
    const result = makeResult({
      hint: 'h',
      error: undefined,
      success: true,
      agent: 'api',
      result: 'r',
      session_id: undefined,
      parsed_result: null,
      cost_usd: 0.1,
    });
    expect(Object.keys(result)).toEqual(['agent', 'success', 'result', 'cost_usd', 'parsed_result', 'hint']);
    expect(JSON.stringify(result)).toBe('{"agent":"api","success":true,"result":"r","cost_usd":0.1,"parsed_result":null,"hint":"h"}');
  });

  it('errorResult has no agent text and only the extras given', () => {
    expect(errorResult('api', 'sandbox', 'Docker is not running')).toEqual({
      agent: 'api',
      success: false,
      result: '',
      error: 'Docker is not running',
      error_type: 'sandbox',
    });
    expect(Object.keys(errorResult('api', 'timeout', 'late', { session_id: 's', hint: 'h' }))).toEqual([
      'agent',
      'success',
      'result',
      'session_id',
      'error',
      'error_type',
      'hint',
    ]);
  });
});

describe('text helpers', () => {
  it('formatG behaves like Python %g', () => {
    expect(formatG(0.5)).toBe('0.5');
    expect(formatG(2)).toBe('2');
    expect(formatG(0.25)).toBe('0.25');
    expect(formatG(10)).toBe('10');
    expect(formatG(1.23456789)).toBe('1.23457');
    expect(formatG(0.0001)).toBe('0.0001');
    expect(formatG(0.00001)).toBe('1e-05');
    expect(formatG(1234567)).toBe('1.23457e+06');
    expect(formatG(100000)).toBe('100000');
    expect(formatG(0)).toBe('0');
  });

  it('truncate counts code points and never splits a surrogate pair', () => {
    expect(truncate('😀😀😀', 2)).toBe('😀😀');
    expect(truncate('abc', 5)).toBe('abc');
  });
});
