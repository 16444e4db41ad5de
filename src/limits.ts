import { z } from 'zod';

/**
 * The largest string the server accepts in each field, from an MCP caller, the CLI or agents.yaml: one table so
 * the tool schemas, config validation, the CLI and the README agree. Lengths count UTF-16 code units (what
 * String.length and zod count). A leaf module, so config/ (the lowest layer) can use it too.
 */
export const LIMITS = {
  /** Agent, group and group-member names. */
  name: 64,
  /** An agent's or a group's description. */
  description: 4_000,
  model: 128,
  permission_mode: 32,
  /** One tool pattern in allowed_tools / disallowed_tools (`Bash(git diff *)`, `mcp__server__tool`). */
  tool: 256,
  /** Entries in one tool list or capability list. */
  list_entries: 100,
  /** One capability label. */
  capability: 128,
  /** A comma-separated list argument as a whole (`allowed_tools`, `capabilities`, …). */
  csv: 32_768,
  /** A project directory or a policy file path. */
  path: 4_096,
  /** A policy reference: a preset name or a path. */
  policy: 4_096,
  task: 200_000,
  context: 400_000,
  /** A group's shared_context (folded into the context of its members' dispatches). */
  shared_context: 100_000,
  use_for: 1_000,
  caller: 200,
  goal: 2_000,
  response_format: 32,
  session_id: 128,
  /** dispatch_dialogue's topic. */
  topic: 200_000,
  /** dispatch_parallel's `dispatches` JSON text. */
  dispatches_json: 4_000_000,
  /** A ref / job id (32 hex characters when valid; longer input is refused before it is looked at). */
  job_id: 64,
} as const;

export type LimitName = keyof typeof LIMITS;

/** The one wording for an over-long value: names the field (unless a path already does) and the limit. */
export function tooLongMessage(field: string | undefined, max: number, length?: number): string {
  return `${field ? `${field} ` : ''}must be at most ${max} characters${length === undefined ? '' : ` (got ${length})`}`;
}

/** Why `value` is too long for `field`, or undefined. */
export function lengthProblem(field: string, value: string, max: number): string | undefined {
  return value.length > max ? tooLongMessage(field, max, value.length) : undefined;
}

/**
 * A string schema bounded by LIMITS[limit]. The message names `field` when given (tool input schemas); config
 * issues are prefixed with their path instead. `abort` stops later checks (a name pattern, say) from running on,
 * and echoing, an over-long value.
 */
export function boundedString(limit: LimitName, field?: string, base: z.ZodString = z.string()): z.ZodString {
  const max = LIMITS[limit];
  return base.max(max, {
    abort: true,
    error: (issue) => tooLongMessage(field, max, typeof issue.input === 'string' ? issue.input.length : undefined),
  });
}
