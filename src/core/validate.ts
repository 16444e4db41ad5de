import { AppError } from '../errors.js';
import { KNOWN_PERMISSION_MODES, NAME_PATTERN, nameError } from '../config/schema.js';
import { lengthProblem, LIMITS, type LimitName } from '../limits.js';
import { wordProblem } from '../policy/flag-value.js';

export function validateName(name: string, field = 'name'): void {
  const tooLong = lengthProblem(field, name, LIMITS.name);
  if (tooLong) throw new AppError('INVALID_INPUT', `${tooLong}.`, { hint: 'Use a short name: letters, digits, hyphens and underscores.' });
  if (!NAME_PATTERN.test(name)) {
    throw new AppError('INVALID_INPUT', nameError(name), { hint: "Pick a name such as 'api' or 'billing-db' (it becomes part of container and volume names)." });
  }
}

/** Refuse a string longer than LIMITS[limit], naming the field and the limit (for input no zod schema bounded). */
export function validateLength(field: string, value: string | null | undefined, limit: LimitName): void {
  const problem = value ? lengthProblem(field, value, LIMITS[limit]) : undefined;
  if (problem) throw new AppError('INVALID_INPUT', `${problem}.`, { hint: `Shorten ${field}; the limits are listed in the README (MCP tools, input limits).` });
}

const WORD_HINTS = {
  model: "Use a model alias or id such as 'sonnet', 'opus' or 'claude-sonnet-4-5'; 'none' clears it.",
  permission_mode: `Use one of ${[...KNOWN_PERMISSION_MODES].sort().join(', ')}; 'none' clears it.`,
} as const;

/**
 * A model or permission mode becomes the value of a claude flag: refuse, before anything is saved, what the
 * dispatch would refuse later (policy/flag-value.ts, the rule claudeFlags applies), and anything over its limit.
 */
export function validateFlagWord(field: keyof typeof WORD_HINTS, value: string | null | undefined): void {
  if (!value) return;
  validateLength(field, value, field);
  const problem = wordProblem(field, value);
  if (problem) throw new AppError('INVALID_INPUT', `${problem}.`, { hint: WORD_HINTS[field] });
}

/** Split on commas, trim, drop empties. */
export function parseCsv(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function isClearSentinel(value: string): boolean {
  const v = value.trim().toLowerCase();
  return v === 'none' || v === '';
}

export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

/** A caller's number as a whole number within min..max (the original's `clamp(int(x))`); not a number → fallback. */
export function clampWhole(value: unknown, min: number, max: number, fallback: number): number {
  const n = Math.trunc(Number(value));
  return clamp(Number.isFinite(n) ? n : fallback, min, max);
}
