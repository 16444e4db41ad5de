import { applyBudget, budgetStopHint, resumableSentence } from './budget.js';
import { classifyError, cliErrorDetails, denialHint, extractDeniedTools, permissionHint, type PolicyBounds } from './classify.js';
import { parseStructuredResponse } from './structured.js';
import { capText, finiteNumber, own, parseJsonObject, pyTruthy, toText } from './text.js';
import { errorResult, makeResult, type DispatchResult } from './types.js';

export { applyBudget } from './budget.js';
export { classifyError, extractDeniedTools, permissionHint, type PolicyBounds } from './classify.js';
export { currentDepth, recursionResult } from './recursion.js';
export { parseStructuredResponse } from './structured.js';
export { errorResult } from './types.js';

/** What the result of one run is judged against. */
export interface ResultContext {
  agent: string;
  /** The id passed as --session-id (fresh) or --resume; the result falls back to it when claude reports none. */
  sessionFallback?: string;
  /** The effective spend cap (effectiveBudget()), for the budget hints and the post-hoc check. */
  budget?: number;
  responseFormat?: string;
  timeoutSeconds: number;
  /** The policy's resources.timeout cut the requested timeout: only the policy can allow a longer run. */
  timeoutCappedByPolicy?: boolean;
  /** The run continued an earlier session: claude's reported cost is then cumulative over the whole session. */
  resumed: boolean;
  /** The agent's sandbox policy: permission hints say when it, not agents.yaml, is what bounds the tools/mode. */
  policy?: PolicyBounds;
}

/** What the runner observed: claude's stdout lines, its stderr, and how it ended. */
export interface RunOutcome {
  exitCode: number | null;
  stdoutLines: string[];
  stderr: string;
  timedOut: boolean;
  /** The run was cancelled (its container killed) — after the result, when there is one. */
  cancelled?: boolean;
}

export const KILLED_AFTER_RESULT =
  'The agent produced its final result but the process had not exited by the timeout and was killed. ' +
  'The result is complete — only cleanup was cut short.';

const CUMULATIVE_COST_NOTE =
  "This run resumed a session, and claude reports the session's cumulative cost, earlier runs included.";

const BUDGET_SUBTYPE = 'error_max_budget_usd';
const BUDGET_TERMINAL_REASON = 'budget_exhausted';
/** Longer ids are not claude's: fall back to the one we assigned. */
const MAX_SESSION_ID_CHARS = 200;

/**
 * Turns one finished run into the DispatchResult. Success is a `result` event with `is_error` false AND exit 0
 * (claude-cli.md §4a) — except that a result which arrived before the deadline or a cancel beats the kill that
 * followed it (the answer was paid for and is complete). A non-zero exit after a success event is a failure that
 * keeps the text. Without a result event, a timeout is a resumable `timeout`, and anything else — exit 0 too —
 * is a failure explained by stderr, stray stdout text, or the exit code.
 */
export function resultFromRun(outcome: RunOutcome, ctx: ResultContext): DispatchResult {
  const event = lastResultEvent(outcome.stdoutLines);
  if (event) {
    // A kill after the result (timeout, cancel) is not claude failing: its exit code says nothing about the answer.
    const killedAfterResult = outcome.timedOut || outcome.cancelled === true;
    const exit = outcome.exitCode;
    let result: DispatchResult;
    if (pyTruthy(own(event, 'is_error'))) result = resultFromError(event, ctx, exit);
    else if (!killedAfterResult && typeof exit === 'number' && exit !== 0) result = resultFromFailedExit(event, ctx, exit, outcome.stderr);
    else result = resultFromSuccess(event, ctx, outcome.timedOut);
    return ctx.resumed && result.budget_exceeded && result.error_type !== 'budget'
      ? makeResult({ ...result, hint: `${result.hint ?? ''} ${CUMULATIVE_COST_NOTE}`.trim() })
      : result;
  }
  if (outcome.timedOut) {
    return errorResult(ctx.agent, 'timeout', timeoutMessage(ctx.agent, ctx.timeoutSeconds, ctx.sessionFallback, ctx.timeoutCappedByPolicy === true), {
      session_id: ctx.sessionFallback,
    });
  }
  const text =
    (typeof outcome.stderr === 'string' ? outcome.stderr.trim() : '') ||
    strayStdout(outcome.stdoutLines) ||
    `No result received (exit code ${outcome.exitCode ?? 'unknown'})`;
  const error = capText(text);
  const errorType = classifyError(error);
  return errorResult(ctx.agent, errorType, errorType === 'permission' ? error + permissionHint(ctx.agent, ctx.policy) : error, {
    session_id: ctx.sessionFallback,
  });
}

/** The timeout error, with how to run longer and, when the session id is known, how to resume. */
export function timeoutMessage(agent: string, timeoutSeconds: number, sessionId: string | undefined, cappedByPolicy = false): string {
  // Every option named here must work: a longer timeout_seconds or agent timeout cannot pass the policy's cap.
  const options = cappedByPolicy
    ? `This is the cap of the agent's sandbox policy (resources.timeout): raise it in the policy file for longer runs (agent-dispatch policy check --agent ${agent} shows the effective value).`
    : `Options: pass timeout_seconds= for a longer one-off run, or raise the agent default (agent-dispatch update ${agent} --timeout ${timeoutSeconds * 2}).`;
  return `Agent '${agent}' timed out after ${timeoutSeconds}s. ${options}${resumableSentence(agent, sessionId)}`;
}

/** True when the lines hold a `result` event, judged exactly as resultFromRun judges it (e.g. before a retry). */
export function hasResultEvent(lines: readonly string[]): boolean {
  return lastResultEvent(lines) !== undefined;
}

function lastResultEvent(lines: readonly unknown[]): Record<string, unknown> | undefined {
  if (!Array.isArray(lines)) return undefined;
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const data = parseJsonObject(lines[i]);
    if (data && own(data, 'type') === 'result') return data;
  }
  return undefined;
}

/** Non-JSON stdout (e.g. a text-mode error message), joined and capped; '' when there is none. */
function strayStdout(lines: readonly unknown[]): string {
  if (!Array.isArray(lines)) return '';
  const kept: string[] = [];
  let size = 0;
  for (const line of lines) {
    if (size > 4000) break;
    if (typeof line !== 'string' || !line.trim() || parseJsonObject(line)) continue;
    kept.push(line.trim());
    size += line.length;
  }
  return kept.join('\n');
}

function sessionIdFrom(event: Record<string, unknown>, fallback: string | undefined): string | undefined {
  const reported = own(event, 'session_id');
  return typeof reported === 'string' && reported.trim() && reported.length <= MAX_SESSION_ID_CHARS ? reported : fallback;
}

function resultText(event: Record<string, unknown>): string {
  const raw = own(event, 'result');
  return pyTruthy(raw) ? toText(raw) : '';
}

function metrics(event: Record<string, unknown>): Pick<DispatchResult, 'cost_usd' | 'duration_ms' | 'num_turns'> {
  const duration = finiteNumber(own(event, 'duration_ms'));
  const turns = finiteNumber(own(event, 'num_turns'));
  return {
    cost_usd: finiteNumber(own(event, 'total_cost_usd')),
    duration_ms: duration === undefined ? undefined : Math.round(duration),
    num_turns: turns === undefined ? undefined : Math.round(turns),
  };
}

function resultFromSuccess(event: Record<string, unknown>, ctx: ResultContext, timedOut: boolean): DispatchResult {
  const text = resultText(event);
  const denied = extractDeniedTools(event);
  const hint = [denied ? denialHint(ctx.agent, denied, ctx.policy) : '', timedOut ? KILLED_AFTER_RESULT : ''].filter(Boolean).join(' ');
  const result = makeResult({
    agent: ctx.agent,
    success: true,
    result: text,
    session_id: sessionIdFrom(event, ctx.sessionFallback),
    ...metrics(event),
    parsed_result: ctx.responseFormat === 'json' ? parseStructuredResponse(text) : undefined,
    denied_tools: denied,
    hint: hint || undefined,
  });
  return applyBudget(result, ctx.budget);
}

/** How much of the answer and of stderr the error of a failed exit after a success event quotes. */
const FAILED_EXIT_QUOTE_CHARS = 300;

/**
 * A success event (`is_error` false) followed by a non-zero exit: claude failed after answering (e.g. while
 * flushing or shutting down), so the answer may be incomplete. A failure — never cached — whose `result` keeps
 * the text and whose session stays resumable; the error quotes the answer's start and stderr.
 */
function resultFromFailedExit(event: Record<string, unknown>, ctx: ResultContext, exitCode: number, stderr: unknown): DispatchResult {
  const { agent } = ctx;
  const text = resultText(event);
  const stderrText = typeof stderr === 'string' ? stderr.trim() : '';
  let error = `claude exited with code ${exitCode} after reporting success`;
  error += text ? `: ${capText(text, FAILED_EXIT_QUOTE_CHARS)}` : ' (with an empty result)';
  if (stderrText) error += `\nstderr: ${capText(stderrText, FAILED_EXIT_QUOTE_CHARS)}`;
  error = capText(error);
  const errorType = classifyError(error);
  const sessionId = sessionIdFrom(event, ctx.sessionFallback);
  const denied = extractDeniedTools(event);
  if (errorType === 'permission') error += permissionHint(agent, ctx.policy, denied ?? []);
  const hint = `The answer is kept in result but may be incomplete: claude did not exit cleanly after producing it.${resumableSentence(agent, sessionId)}`;
  return failedFromEvent(event, ctx, { result: text, session_id: sessionId, error, error_type: errorType, denied_tools: denied, hint });
}

/** An `is_error` payload (original `_build_error_result`): precedence budget stop > denied tools > text. */
function resultFromError(event: Record<string, unknown>, ctx: ResultContext, exitCode: number | null): DispatchResult {
  const { agent } = ctx;
  const text = resultText(event);
  const detail = cliErrorDetails(event);
  let error: string;
  if (text) error = capText(text);
  else if (detail) error = `Agent '${agent}' failed: ${detail}`;
  else error = `Agent '${agent}' reported an error with no details${typeof exitCode === 'number' ? ` (exit code ${exitCode})` : ''}`;

  const sessionId = sessionIdFrom(event, ctx.sessionFallback);
  const denied = extractDeniedTools(event);
  const budgetStop = own(event, 'subtype') === BUDGET_SUBTYPE || own(event, 'terminal_reason') === BUDGET_TERMINAL_REASON;
  let errorType: DispatchResult['error_type'];
  if (budgetStop) {
    errorType = 'budget';
    error += budgetStopHint(agent, ctx.budget, sessionId);
  } else if (denied) {
    errorType = 'permission';
    error += permissionHint(agent, ctx.policy, denied);
  } else {
    errorType = classifyError(error);
    if (errorType === 'permission') error += permissionHint(agent, ctx.policy);
  }
  // The cap was hit by definition, even when the reported cost rounds to just under it.
  const budgetExceeded = budgetStop ? true : undefined;
  return failedFromEvent(event, ctx, { result: text, session_id: sessionId, error, error_type: errorType, denied_tools: denied, budget_exceeded: budgetExceeded });
}

/** A failed result from a result event: the given fields plus the event's metrics, checked against the budget. */
function failedFromEvent(event: Record<string, unknown>, ctx: ResultContext, fields: Omit<DispatchResult, 'agent' | 'success'>): DispatchResult {
  return applyBudget(makeResult({ agent: ctx.agent, success: false, ...metrics(event), ...fields }), ctx.budget);
}
