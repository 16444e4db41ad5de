/**
 * One tool rule as Claude Code reads it: a name (`Read`, `mcp__server__tool`, `mcp__server__*`), optionally
 * followed by one parenthesised specifier (`Bash(git diff:*)`, `Bash(git diff *)`).
 *
 * claude splits the values of `--allowedTools` / `--disallowedTools` on commas and spaces outside
 * parentheses, so an entry such as `Read(*) Bash` or `Grep(x),WebFetch` would reach it as two tools and
 * smuggle the second past the policy's allow list. Outside the parentheses only name characters are allowed;
 * the specifier may hold spaces and commas but no parentheses and no control characters. A leading `-`
 * would be parsed as a new flag, so it is refused too.
 */
export const TOOL_PATTERN = /^[A-Za-z0-9_*.][A-Za-z0-9_*.-]*(\([^()\u0000-\u001f\u007f]*\))?$/;

export function isValidToolPattern(entry: string): boolean {
  return TOOL_PATTERN.test(entry);
}

/** Why an entry is not one tool pattern (for messages), or undefined when it is one. */
export function toolPatternProblem(entry: string): string | undefined {
  if (isValidToolPattern(entry)) return undefined;
  if (entry.startsWith('-')) return `'${entry}' starts with '-', so claude would read it as a command-line flag`;
  return (
    `'${entry}' is not a single tool pattern: use one tool name (Read, mcp__server__tool), optionally with one ` +
    `parenthesised specifier (Bash(git diff:*)); claude splits tool lists on commas and spaces, so put each tool in its own list entry`
  );
}
