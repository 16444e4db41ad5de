import { formatG } from './text.js';
import { makeResult, type DispatchResult } from './types.js';

/** Appended to hints and errors when the run's session can be continued. */
export function resumableSentence(agent: string, sessionId: string | undefined): string {
  if (!sessionId) return '';
  return (
    ` Partial work may be resumable: dispatch_session(agent='${agent}', ` +
    `task='Continue where you left off', session_id='${sessionId}').`
  );
}

/** Appended to the error of a run that claude itself stopped at `--max-budget-usd` (original §4.7). */
export function budgetStopHint(agent: string, budget: number | undefined, sessionId: string | undefined): string {
  const cap = budget ? `$${formatG(budget)}` : 'the configured cap';
  return (
    `\n\nHint: the dispatch was stopped by the spend cap ${cap} (passed to claude as --max-budget-usd), ` +
    `so this answer is incomplete. Raise it (agent-dispatch update ${agent} --max-budget-usd <amount>), ` +
    'use a cheaper model, or split the task into smaller dispatches.' +
    resumableSentence(agent, sessionId)
  );
}

/**
 * Post-hoc budget check: a result whose reported cost is above the effective budget gets `budget_exceeded` and a
 * hint (appended after any existing one). Never changes `success` — the money is spent. A result claude already
 * stopped at the cap (`error_type: 'budget'`) carries a better message and is returned unchanged.
 */
export function applyBudget(result: DispatchResult, budget: number | undefined): DispatchResult {
  if (result.error_type === 'budget') return result;
  const cost = result.cost_usd;
  if (!budget || !cost || !(cost > budget)) return result;
  const note =
    `Cost $${cost.toFixed(4)} exceeded the configured budget $${budget.toFixed(2)} for this agent. ` +
    'Consider a cheaper model, a tighter task, or raising max_budget_usd.';
  return makeResult({ ...result, budget_exceeded: true, hint: result.hint ? `${result.hint} ${note}` : note });
}
