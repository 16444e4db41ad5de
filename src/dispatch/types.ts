import type { EgressSummary } from './audit.js';

/** The wire shape of every dispatch (original §1.3), plus the rewrite's own `sandbox` and `policy` failure kinds. */
export type DispatchErrorType =
  | 'permission'
  | 'timeout'
  | 'recursion'
  | 'not_found'
  | 'budget'
  | 'cli_error'
  | 'sandbox'
  | 'policy';

export interface DispatchResult {
  agent: string;
  success: boolean;
  /** The agent's raw text, present (possibly empty) even on failure. */
  result: string;
  session_id?: string;
  cost_usd?: number;
  duration_ms?: number;
  num_turns?: number;
  error?: string;
  error_type?: DispatchErrorType;
  /** Only with response_format "json" and a parseable answer; JSON `null` is kept as `null`. */
  parsed_result?: unknown;
  denied_tools?: string[];
  /** Advisory text for a result that succeeded but is degraded (denied tools, over budget, killed after answering). */
  hint?: string;
  budget_exceeded?: boolean;
  /** `repo: overlay` only: the agent's changes to its private copy, as a git patch (`git apply` on the host). */
  patch?: string;
  /** The whole patch, when `patch` had to be cut. */
  patch_file?: string;
  patch_truncated?: boolean;
  /** Gateway mode: how many connections the egress gateway allowed and refused, and the refused destinations. */
  egress?: EgressSummary;
}

/** The original's field order, so serialised results read the same as Pydantic's `model_dump_json`. */
const FIELD_ORDER = [
  'agent',
  'success',
  'result',
  'session_id',
  'cost_usd',
  'duration_ms',
  'num_turns',
  'error',
  'error_type',
  'parsed_result',
  'denied_tools',
  'hint',
  'budget_exceeded',
  'patch',
  'patch_file',
  'patch_truncated',
  'egress',
] as const satisfies readonly (keyof DispatchResult)[];

/**
 * Builds a result with every `undefined` field left out (the original's `exclude_none`), in the original's key order.
 * `null` survives: it is a real `parsed_result` when the agent answered `null`.
 */
export function makeResult(fields: DispatchResult): DispatchResult {
  const out: Record<string, unknown> = {};
  for (const key of FIELD_ORDER) {
    if (fields[key] !== undefined) out[key] = fields[key];
  }
  return out as unknown as DispatchResult;
}

/** A failed result with no agent output: pre-flight refusals, spawn failures, timeouts. */
export function errorResult(
  agent: string,
  errorType: DispatchErrorType,
  error: string,
  extra: { hint?: string; session_id?: string } = {},
): DispatchResult {
  return makeResult({ agent, success: false, result: '', session_id: extra.session_id, error, error_type: errorType, hint: extra.hint });
}
