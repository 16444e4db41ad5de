/**
 * Every error the tool reports to a user carries a stable `code`. Callers branch on `code`,
 * never on `message`; the message always says what to do next.
 */
export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_UNREADABLE'
  | 'CONFIG_WRITE_FAILED'
  | 'CONFIG_LOCKED'
  | 'POLICY_INVALID'
  | 'POLICY_NOT_FOUND'
  | 'POLICY_CHANGE_REFUSED'
  | 'AGENT_NOT_FOUND'
  | 'AGENT_EXISTS'
  | 'GROUP_NOT_FOUND'
  | 'GROUP_EXISTS'
  | 'INVALID_INPUT'
  | 'NOTHING_TO_UPDATE'
  | 'DOCKER_UNAVAILABLE'
  | 'IMAGE_NOT_FOUND'
  | 'IMAGE_BUILD_FAILED'
  | 'SANDBOX_FAILED'
  | 'SANDBOX_CANCELLED'
  | 'CLAUDE_NOT_FOUND'
  | 'JOB_IO'
  | 'JOB_NOT_FOUND'
  | 'FORBIDDEN'
  | 'LIMIT_REACHED'
  | 'INTERNAL';

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.hint = options.hint;
  }
}

export function isAppError(value: unknown): value is AppError {
  return value instanceof AppError;
}

/** A short, single-line description of any thrown value, for messages that must not carry a stack. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
