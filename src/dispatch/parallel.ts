import type { DispatchConfig } from '../config/schema.js';
import { requireVisibleAgent, visibleConfig } from '../core/access.js';
import type { Caller } from '../core/caller.js';
import { AppError } from '../errors.js';
import { lengthProblem, LIMITS, type LimitName } from '../limits.js';
import type { DispatchInput } from './core.js';
import { requireGroupMember } from './refs.js';

/** One item of `dispatch_parallel`'s `dispatches` array, validated and coerced. */
export interface ParallelItem extends Required<Omit<DispatchInput, 'signal' | 'by'>> {
  return_ref: boolean;
  /** undefined: the default (500); clamped 0..100000 where it is used. */
  summary_chars: number | undefined;
  group: string;
}

const STRING_FIELDS = ['context', 'caller', 'goal', 'response_format', 'group'] as const;
const FIELD_LIMITS: Record<string, LimitName> = { agent: 'name', task: 'task', context: 'context', caller: 'caller', goal: 'goal', response_format: 'response_format', group: 'name' };

/** The original's bound: enough for a wide fan-out, small enough that one call cannot queue thousands. */
export function maxParallelItems(config: DispatchConfig): number {
  return Math.max(100, config.settings.max_concurrency * 20);
}

/**
 * Validate the whole `dispatches` JSON before anything starts (all or nothing), with the original's messages.
 * Unknown agents, groups and non-members are refused here too, and so are agents and groups `by` may not see.
 */
export function parseDispatches(json: string, loadConfig: () => DispatchConfig, by: Caller): { config: DispatchConfig; items: ParallelItem[] } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch (error) {
    throw invalid(`Invalid JSON in dispatches: ${(error as Error).message}`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0) throw invalid('dispatches must be a non-empty JSON array');
  const config = loadConfig();
  const max = maxParallelItems(config);
  if (parsed.length > max) {
    throw invalid(`Too many dispatches: ${parsed.length} > ${max}. Split into multiple calls or raise settings.max_concurrency.`);
  }
  const items = parsed.map((raw: unknown, i) => parseItem(raw, i, config, by));
  return { config, items };
}

function parseItem(raw: unknown, i: number, config: DispatchConfig, by: Caller): ParallelItem {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(`dispatches[${i}] must be an object, got ${typeName(raw)}`);
  const item = raw as Record<string, unknown>;
  if (!('agent' in item) || !('task' in item)) throw invalid(`dispatches[${i}] must have 'agent' and 'task' keys`);
  if (typeof item['agent'] !== 'string' || typeof item['task'] !== 'string') throw invalid(`dispatches[${i}].agent and .task must be strings`);
  for (const [field, limit] of Object.entries(FIELD_LIMITS)) {
    const value = item[field];
    const problem = typeof value === 'string' ? lengthProblem(`dispatches[${i}].${field}`, value, LIMITS[limit]) : undefined;
    if (problem) throw invalid(problem);
  }
  requireVisibleAgent(config, item['agent'], by);
  const strings: Record<string, string> = {};
  for (const field of STRING_FIELDS) {
    const value = item[field];
    if (value === undefined || value === null) strings[field] = '';
    else if (typeof value === 'string') strings[field] = value;
    else throw invalid(`dispatches[${i}].${field} must be a string, got ${typeName(value)}`);
  }
  if (strings['group']) requireGroupMember(visibleConfig(config, by), strings['group'], item['agent']);
  return {
    agent: item['agent'],
    task: item['task'],
    context: strings['context']!,
    caller: strings['caller']!,
    goal: strings['goal']!,
    response_format: strings['response_format']!,
    group: strings['group']!,
    return_ref: item['return_ref'] === true,
    summary_chars: optionalNumber(item['summary_chars'], `dispatches[${i}].summary_chars`),
    timeout_seconds: optionalNumber(item['timeout_seconds'], `dispatches[${i}].timeout_seconds`) ?? 0,
  };
}

/** null/absent → undefined; numbers and numeric strings (the original's `int("900")`) → a whole number. */
function optionalNumber(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : Number.NaN;
  if (!Number.isFinite(n)) throw invalid(`${name} must be a number, got ${JSON.stringify(value)?.slice(0, 40) ?? typeName(value)}`);
  return Math.trunc(n);
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function invalid(message: string): AppError {
  return new AppError('INVALID_INPUT', message, {
    hint: 'dispatches is a JSON array of objects like {"agent": "api", "task": "..."}; nothing was started. Fix the item and retry.',
  });
}

export const AGGREGATE_TASK =
  'Synthesize the results below into a single coherent answer. Highlight key findings, note any conflicts between agents, and provide actionable conclusions.';

/** The aggregator's context: each item's answer (or its ref's preview, or its error), in input order. */
export function aggregationContext(results: Record<string, unknown>[]): string {
  return results
    .map((r) => {
      const ok = r['success'] === true;
      let status = ok ? 'OK' : 'FAILED';
      let body: unknown = r['result'];
      if (body === undefined && typeof r['summary'] === 'string') {
        body = r['summary'];
        if (ok) status = `OK, preview of ${String(r['size'])} chars`;
      }
      if (!ok && !body) body = r['error'];
      return `## Agent: ${String(r['agent'])} [${status}]\n${String(body ?? '')}`;
    })
    .join('\n\n');
}
