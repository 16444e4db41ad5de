import { errorResult, type DispatchResult } from './types.js';

export const DEPTH_ENV_VAR = 'AGENT_DISPATCH_DEPTH';

/**
 * How deep in a dispatch chain this process runs, from AGENT_DISPATCH_DEPTH (original §4.1). Accepts what Python's
 * int() accepts (surrounding whitespace, a sign, `_` between digits); anything else, and a negative value, is 0.
 */
export function currentDepth(env: Record<string, string | undefined>): number {
  const raw = env[DEPTH_ENV_VAR];
  if (raw === undefined || !/^\s*[+-]?\d+(?:_\d+)*\s*$/.test(raw)) return 0;
  const depth = Number(raw.trim().replaceAll('_', ''));
  return Number.isFinite(depth) && depth > 0 ? depth : 0;
}

/** The refusal for a dispatch at depth >= settings.max_dispatch_depth. */
export function recursionResult(agent: string, depth: number, max: number): DispatchResult {
  return errorResult(
    agent,
    'recursion',
    `Dispatch depth ${depth} >= max ${max}. ` +
      'An agent is trying to dispatch to another agent that dispatches back. ' +
      'Increase settings.max_dispatch_depth if this is intentional.',
  );
}
