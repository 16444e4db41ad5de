import type { z } from 'zod';

/** Turn zod issues into one line: `agents.api.allowed_tool: unknown key; did you mean 'allowed_tools'?`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[], knownKeys: (path: PropertyKey[]) => string[]): string {
  return issues.map((issue) => formatIssue(issue, knownKeys)).join('; ');
}

function formatIssue(issue: z.core.$ZodIssue, knownKeys: (path: PropertyKey[]) => string[]): string {
  const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    return issue.keys
      .map((key) => {
        const suggestion = closest(key, knownKeys(issue.path));
        const fix = suggestion ? `did you mean '${suggestion}'?` : `remove it (known keys: ${knownKeys(issue.path).join(', ')})`;
        return `${[...issue.path.map(String), key].join('.')}: unknown key; ${fix}`;
      })
      .join('; ');
  }
  if (issue.code === 'invalid_key') {
    // A record key that failed its own schema (an agent or group name, an env name): say why, not "Invalid key in record".
    return `${where}: ${issue.issues.map((inner) => inner.message).join('; ') || issue.message}`;
  }
  if (issue.code === 'invalid_type') {
    const got = describeInput(issue.input, issue.path.length === 0);
    return `${where}: expected ${issue.expected}, got ${got}`;
  }
  return `${where}: ${issue.message}`;
}

/**
 * What arrived instead, without echoing file contents: a file that is not YAML mappings at all (say a .env or a
 * key pointed at by mistake) parses as one string, and error messages end up in MCP replies and CI logs.
 * Short values of a key are shown; long strings and whole-document scalars only by type and length.
 */
function describeInput(input: unknown, wholeDocument: boolean): string {
  if (input === undefined) return 'nothing (the key is missing)';
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a mapping';
  if (typeof input === 'string' && (wholeDocument || input.length > SHOWN_VALUE_CHARS)) return `a string of ${input.length} characters`;
  if (wholeDocument) return `a ${typeof input}`;
  return `${typeof input} ${JSON.stringify(input)}`;
}

const SHOWN_VALUE_CHARS = 20;

/** Parse options for user files: issues carry their input, so "got string \"abc\"" can be said. */
export const PARSE_OPTIONS = { reportInput: true } as const;

/** The known key within edit distance 3 of `key`, if any. */
export function closest(key: string, candidates: string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const distance = editDistance(key.toLowerCase(), name.toLowerCase());
    if (distance <= 3 && (!best || distance < best.distance)) best = { name, distance };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}
