/**
 * What may follow a `claude` flag as its value. The argv is an array (never a shell string), so the one way a
 * value can change the command is to look like a flag itself: claude would read `--model -x` or `--resume
 * --permission-mode` as a new option (the original's 0.5.0 fix). One rule set, used where values enter
 * (add/update over MCP and the CLI) and again where they become flags (claudeFlags, claudeCommand).
 */

/** A value that starts with '-' would be parsed as a new flag. */
export function flagLikeProblem(label: string, value: string): string | undefined {
  if (!value.startsWith('-')) return undefined;
  return `${label} '${value}' starts with '-' and would be interpreted as a command-line flag by the claude CLI`;
}

const SPACE_OR_CONTROL = /[\s\p{Cc}]/u;

/**
 * A one-word value (a model, a permission mode, a session id): no leading '-', and no whitespace or control
 * character, which no model id, mode or session id has and which would only garble logs and audit lines.
 */
export function wordProblem(label: string, value: string): string | undefined {
  const flagLike = flagLikeProblem(label, value);
  if (flagLike) return flagLike;
  if (!SPACE_OR_CONTROL.test(value)) return undefined;
  return `${label} ${JSON.stringify(value)} contains whitespace or a control character; it must be a single word (such as 'sonnet' or 'plan')`;
}
