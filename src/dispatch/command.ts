import { AppError, isAppError } from '../errors.js';
import { checked } from '../policy/claude-args.js';
import { wordProblem } from '../policy/flag-value.js';

/**
 * The argv for every run (dispatch, session and stream alike). The prompt is not in it: the runner writes it to
 * stdin, so a huge prompt cannot hit MAX_ARG_STRLEN and a prompt that looks like a flag cannot be parsed as one.
 * stream-json needs --verbose on current CLIs (the original's 0.6.0 lesson). `flags` come from claudeFlags(),
 * already checked. A resume id wins over a fresh session id; the two are never both passed.
 */
export function claudeCommand(options: { flags: string[]; resume?: string; sessionId?: string }): string[] {
  const argv = ['claude', '-p', '--output-format', 'stream-json', '--verbose'];
  if (options.resume) argv.push('--resume', checkedSessionId(options.resume));
  else if (options.sessionId) argv.push('--session-id', checkedSessionId(options.sessionId));
  argv.push(...options.flags);
  return argv;
}

/** A session id is one word (no leading '-', no whitespace): checked() with a hint for a caller-supplied id. */
function checkedSessionId(value: string): string {
  try {
    return checked('session_id', value, wordProblem);
  } catch (error) {
    if (!isAppError(error)) throw error;
    throw new AppError(error.code, error.message, {
      hint: 'Pass the session_id returned by an earlier dispatch, or leave it empty to start a new session.',
      cause: error,
    });
  }
}

const REJECTION_MARKERS = ['unknown option', 'unrecognized option', 'unknown argument', 'unexpected argument'];

/**
 * True when an old claude CLI refused `--session-id` while parsing options (original §4.5 self-heal): the caller
 * retries once without the flag. The other conditions (first attempt, fresh session, no result) are the caller's.
 */
export function isSessionFlagRejection(stderr: string): boolean {
  const lower = stderr.toLowerCase();
  return lower.includes('--session-id') && REJECTION_MARKERS.some((marker) => lower.includes(marker));
}
