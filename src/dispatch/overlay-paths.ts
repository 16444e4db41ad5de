import { posix } from 'node:path';

/**
 * The paths an overlay patch may name: relative to the repo, inside it, and never in a git dir. Both the patch
 * builder (names from the agent's upper dir) and `agent-dispatch apply` (a patch file read back) check every
 * path with this; the reason is the message the refusal shows.
 */
export function patchPathProblem(path: string): string | undefined {
  if (path === '') return 'an empty path';
  if (path.includes('\0')) return 'a NUL byte in the path';
  if (path.startsWith('/')) return 'an absolute path';
  const parts = path.split('/');
  if (parts.some((p) => p === '')) return 'an empty path component (// or a trailing /)';
  if (parts.some((p) => p === '..')) return "a '..' component (outside the repo)";
  if (parts.some((p) => p === '.')) return "a '.' component";
  if (parts.some(isGitDirName)) return 'a path in a .git directory (git on the host would run the config and hooks it finds there)';
  return undefined;
}

/**
 * `.git` as git itself refuses it in a path: any case, and the spellings other file systems fold to it
 * (trailing dots and spaces on NTFS, the 8.3 name `git~1`).
 */
export function isGitDirName(name: string): boolean {
  const folded = name.toLowerCase().replace(/[. ]+$/, '');
  return folded === '.git' || folded === 'git~1';
}

/** Where a symlink at `linkPath` (repo-relative) with this target points, or undefined when it leaves the repo. */
export function symlinkTargetInRepo(linkPath: string, target: string): string | undefined {
  if (target === '' || target.startsWith('/')) return undefined;
  const joined = posix.normalize(posix.join(posix.dirname(linkPath), target));
  if (joined === '..' || joined.startsWith('../')) return undefined;
  return joined;
}

/** A path as git writes it in a patch header: C-quoted when it has a quote, backslash, control or non-ASCII byte. */
export function quoteGitPath(path: Buffer): string {
  let plain = true;
  for (const byte of path) if (byte < 0x20 || byte >= 0x7f || byte === 0x22 || byte === 0x5c) plain = false;
  if (plain) return path.toString('latin1');
  let out = '"';
  for (const byte of path) {
    const escaped = C_ESCAPES[byte];
    if (escaped) out += escaped;
    else if (byte < 0x20 || byte >= 0x7f) out += `\\${byte.toString(8).padStart(3, '0')}`;
    else out += String.fromCharCode(byte);
  }
  return `${out}"`;
}

const C_ESCAPES: Record<number, string> = { 0x07: '\\a', 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0b: '\\v', 0x0c: '\\f', 0x0d: '\\r', 0x22: '\\"', 0x5c: '\\\\' };
const C_UNESCAPES: Record<string, number> = { a: 0x07, b: 0x08, t: 0x09, n: 0x0a, v: 0x0b, f: 0x0c, r: 0x0d, '"': 0x22, '\\': 0x5c };

/**
 * Read one git path token at the start of `text` (a patch header): a C-quoted string, or, unquoted, up to the
 * end. Returns the raw bytes and the rest of the text, or undefined for a malformed quote.
 */
export function unquoteGitPath(text: string): { path: Buffer; rest: string } | undefined {
  if (!text.startsWith('"')) return { path: Buffer.from(text, 'latin1'), rest: '' };
  const bytes: number[] = [];
  for (let i = 1; i < text.length; i += 1) {
    const ch = text[i]!;
    if (ch === '"') return { path: Buffer.from(bytes), rest: text.slice(i + 1) };
    if (ch !== '\\') {
      bytes.push(text.charCodeAt(i) & 0xff);
      continue;
    }
    const next = text[i + 1];
    if (next === undefined) return undefined;
    const octal = /^[0-7]{3}/.exec(text.slice(i + 1, i + 4));
    if (octal) {
      bytes.push(parseInt(octal[0], 8) & 0xff);
      i += 3;
    } else if (next in C_UNESCAPES) {
      bytes.push(C_UNESCAPES[next]!);
      i += 1;
    } else return undefined;
  }
  return undefined;
}
