import { readlinkSync, realpathSync } from 'node:fs';
import { basename, dirname, join, posix, resolve } from 'node:path';
import { expandHome } from '../config/paths.js';

/** Resolves symlinks in an existing path; throws (like `fs.realpathSync`) when the path does not exist. */
export type RealpathFn = (path: string) => string;

export interface HostPathOptions {
  /** What `~` means (default: the real home directory). `~user` is looked up in /etc/passwd. */
  home?: string;
  /** Symlink resolver (default: `fs.realpathSync.native`); injectable so tests stay deterministic. */
  realpath?: RealpathFn;
}

export interface HostPathForms {
  /** `~`-expanded and made absolute, with `.`, `..` and repeated or trailing slashes removed (no fs access). */
  resolved: string;
  /** `resolved` with symlinks resolved as far as the path exists: what Docker would actually bind-mount. */
  canonical: string;
}

/**
 * `realpath(3)`, except that a dangling symlink is followed to where it points (Docker would bind whatever
 * appears there later), up to 40 links as the kernel does.
 */
function defaultRealpath(path: string, links = 0): string {
  try {
    return realpathSync.native(path);
  } catch (error) {
    let target: string;
    try {
      target = readlinkSync(path);
    } catch {
      throw error;
    }
    if (links >= 40) throw error;
    return canonicalize(resolve(dirname(path), target), (p) => defaultRealpath(p, links + 1));
  }
}

/** `~` and `~/...` against `home`, then `~user` via the system; throws for an unknown user. */
export function expandTilde(path: string, home?: string): string {
  if (home !== undefined && (path === '~' || path.startsWith('~/'))) return home + path.slice(1);
  return expandHome(path);
}

/**
 * Both forms of a host path. The canonical form resolves symlinks in the longest existing prefix and
 * appends the rest, so `/tmp/link/sub` with `/tmp/link -> /var/run` is `/run/sub` even before `sub` exists.
 */
export function hostPathForms(path: string, options: HostPathOptions = {}): HostPathForms {
  const resolved = resolve(expandTilde(path, options.home));
  return { resolved, canonical: canonicalize(resolved, options.realpath ?? ((p) => defaultRealpath(p))) };
}

function canonicalize(absolute: string, realpath: RealpathFn): string {
  const rest: string[] = [];
  let current = absolute;
  for (;;) {
    try {
      const real = resolve(realpath(current));
      return rest.length === 0 ? real : join(real, ...rest.reverse());
    } catch {
      const parent = dirname(current);
      if (parent === current) return absolute;
      rest.push(basename(current));
      current = parent;
    }
  }
}

/** A path inside the container: absolute, with `.`, `..` and trailing slashes removed. */
export function containerPath(path: string): string {
  return posix.resolve('/', path);
}

/** Is `path` strictly below `dir`? Both must be normalised absolute paths. */
export function isUnder(path: string, dir: string): boolean {
  return path !== dir && path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/** Equal, below, or above: mounting one would hide, expose or re-mount the other. */
export function overlaps(a: string, b: string): boolean {
  return a === b || isUnder(a, b) || isUnder(b, a);
}
