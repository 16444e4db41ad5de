import { chmodSync, closeSync, constants, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { AppError } from '../errors.js';
import { isGitDirName, patchPathProblem } from './overlay-paths.js';

/**
 * Turn the upper dir of a finished overlay into the list of changed paths, reading it as hostile input: every
 * entry is lstat'ed (a symlink is a change of its own, never followed), only regular files, symlinks and
 * whiteouts (char device 0/0) count, and sizes, counts and depth are bounded. The lower dir is the host repo.
 *
 * An upper directory that also exists in the lower dir is either merged with it or opaque (the agent removed
 * the directory and made a new one: the kernel marks it with a trusted.* xattr the server cannot read without
 * privilege). `merged` answers which names the agent saw in such directories; a lower name it did not see is
 * deleted.
 */

export type FileState =
  | { kind: 'file'; mode: '100644' | '100755'; size: number; source: string }
  | { kind: 'symlink'; target: Buffer };

/** One changed path (repo-relative, `/`-separated): absent `before` = added, absent `after` = deleted. */
export interface OverlayChange {
  path: string;
  before?: FileState;
  after?: FileState;
}

export interface UpperLimits {
  /** Upper-dir entries visited (directories included). */
  entries: number;
  /** Bytes of file content the patch would carry (old and new versions together). */
  bytes: number;
  depth: number;
  pathBytes: number;
}

export const UPPER_LIMITS: UpperLimits = { entries: 100_000, bytes: 64 * 1024 * 1024, depth: 128, pathBytes: 4096 };

export interface UpperReport {
  changes: OverlayChange[];
  /** Paths left out of the patch, with why (under .git, a FIFO, a device, a name that is not UTF-8). */
  skipped: { path: string; reason: string }[];
}

export interface ReadUpperOptions {
  lower: string;
  upper: string;
  /** The names the agent saw in these repo-relative directories (see above); called once, only when needed. */
  merged: (dirs: string[]) => Promise<Map<string, string[]>>;
  limits?: UpperLimits;
}

export async function readUpper(options: ReadUpperOptions): Promise<UpperReport> {
  ownerReadable(options.upper, lstatSync(options.upper));
  const reader = new UpperReader(options.lower, options.upper, options.limits ?? UPPER_LIMITS);
  reader.walk('', 0, true);
  if (reader.bothDirs.length > 0) {
    const seen = await options.merged(reader.bothDirs.map((d) => d.path));
    for (const dir of reader.bothDirs) reader.hiddenByOpaque(dir, seen.get(dir.path));
  }
  return { changes: reader.changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)), skipped: reader.skipped };
}

/** The overlay's changes exceed what a patch may carry; the message says which bound. */
export function tooLarge(what: string): AppError {
  return new AppError('SANDBOX_FAILED', `The agent's changes are too large to return as a patch: ${what}.`, {
    hint: 'Nothing was applied to the repo. Ask for a smaller change, or give the agent repo: rw if it must write this much.',
  });
}

class UpperReader {
  readonly changes: OverlayChange[] = [];
  readonly skipped: { path: string; reason: string }[] = [];
  /** Upper directories that are directories in the lower dir too, with the names the upper holds. */
  readonly bothDirs: { path: string; upperNames: Set<string> }[] = [];
  private entries = 0;
  private bytes = 0;

  constructor(
    private readonly lower: string,
    private readonly upper: string,
    private readonly limits: UpperLimits,
  ) {}

  /** Walk the upper directory `rel`; `inLower`: it is a directory in the lower dir too. */
  walk(rel: string, depth: number, inLower: boolean): void {
    if (depth > this.limits.depth) throw tooLarge(`directories nested deeper than ${this.limits.depth}`);
    const upperNames = new Set<string>();
    for (const name of this.names(this.upper, rel, 'upper')) {
      const path = join(rel, name);
      upperNames.add(name);
      if (++this.entries > this.limits.entries) throw tooLarge(`more than ${this.limits.entries} changed entries`);
      if (Buffer.byteLength(path) > this.limits.pathBytes) throw tooLarge(`a path longer than ${this.limits.pathBytes} bytes`);
      if (isGitDirName(name)) {
        this.skip(path, 'under .git (never part of a patch)');
        continue;
      }
      const st = ownerReadable(`${this.upper}/${path}`, lstatSync(`${this.upper}/${path}`));
      const below = inLower ? lstatQuiet(`${this.lower}/${path}`) : undefined;
      if (st.isCharacterDevice() && st.rdev === 0) {
        if (below) this.deleteLower(path, below, depth);
      } else if (st.isDirectory()) {
        const lowerDir = below?.isDirectory() ?? false;
        if (below && !lowerDir) this.deleteLower(path, below, depth);
        this.walk(path, depth + 1, lowerDir);
      } else if (st.isFile() || st.isSymbolicLink()) {
        const after = this.state(this.upper, path, st)!;
        const before = below && !below.isDirectory() ? this.state(this.lower, path, below) : undefined;
        if (below?.isDirectory()) this.deleteLower(path, below, depth);
        if (!before || !sameState(before, after)) this.record({ path, ...(before ? { before } : {}), after });
      } else {
        this.skip(path, `a ${kindOf(st)} (only files and symlinks are part of a patch)`);
      }
    }
    if (inLower && rel !== '') this.bothDirs.push({ path: rel, upperNames });
  }

  /** Lower entries of a both-dir the agent did not see: the directory is opaque, they are deleted. */
  hiddenByOpaque(dir: { path: string; upperNames: Set<string> }, seen: string[] | undefined): void {
    if (!seen) throw new AppError('SANDBOX_FAILED', `The overlay's view of ${dir.path} could not be read back; no patch was built.`);
    const visible = new Set(seen);
    for (const name of this.names(this.lower, dir.path, 'lower')) {
      if (dir.upperNames.has(name) || visible.has(name) || isGitDirName(name)) continue;
      const path = join(dir.path, name);
      const below = lstatQuiet(`${this.lower}/${path}`);
      if (below) this.deleteLower(path, below, dir.path.split('/').length);
    }
  }

  /** Every file and symlink at or under a lower path is deleted. */
  private deleteLower(path: string, st: Stats, depth: number): void {
    if (depth > this.limits.depth) throw tooLarge(`directories nested deeper than ${this.limits.depth}`);
    if (st.isDirectory()) {
      for (const name of this.names(this.lower, path, 'lower')) {
        if (isGitDirName(name)) continue;
        const child = lstatQuiet(`${this.lower}/${path}/${name}`);
        if (child) this.deleteLower(join(path, name), child, depth + 1);
      }
      return;
    }
    const before = this.state(this.lower, path, st);
    if (before) this.record({ path, before });
  }

  private record(change: OverlayChange): void {
    const problem = patchPathProblem(change.path);
    if (problem) {
      this.skip(change.path, problem);
      return;
    }
    for (const s of [change.before, change.after]) {
      if (s?.kind === 'file') this.bytes += s.size;
      if (s?.kind === 'symlink') this.bytes += s.target.length;
    }
    if (this.bytes > this.limits.bytes) throw tooLarge(`more than ${Math.round(this.limits.bytes / 1024 / 1024)} MiB of changed file content`);
    this.changes.push(change);
  }

  /** A file or symlink's state; undefined (and reported) for anything else. */
  private state(root: string, path: string, st: Stats): FileState | undefined {
    if (st.isSymbolicLink()) return { kind: 'symlink', target: readlinkSync(`${root}/${path}`, { encoding: 'buffer' }) };
    if (st.isFile()) return { kind: 'file', mode: (st.mode & 0o100) !== 0 ? '100755' : '100644', size: st.size, source: `${root}/${path}` };
    this.skip(path, `a ${kindOf(st)} in the repo (only files and symlinks are part of a patch)`);
    return undefined;
  }

  /** A directory's entry names; names that are not valid UTF-8 are reported and left out. */
  private names(root: string, rel: string, which: string): string[] {
    const raw = readdirSync(rel === '' ? root : `${root}/${rel}`, { encoding: 'buffer' });
    const names: string[] = [];
    for (const name of raw) {
      const text = name.toString('utf8');
      if (Buffer.from(text, 'utf8').equals(name)) names.push(text);
      else this.skip(join(rel, text), `a name that is not UTF-8 (${which} dir)`);
    }
    return names;
  }

  private skip(path: string, reason: string): void {
    if (this.skipped.length < 1000) this.skipped.push({ path, reason });
  }
}

/**
 * An upper-dir file or directory the agent made unreadable (mode 000) to its owner: when that owner is this
 * server (the container ran as the server's uid), give the owner read (and search) back, so the patch can be
 * built. Only ever the upper dir, which is this dispatch's scratch space; never the repo.
 */
function ownerReadable(path: string, st: Stats): Stats {
  const uid = process.getuid?.();
  if (uid === undefined || uid === 0 || st.uid !== uid || st.isSymbolicLink()) return st;
  const wanted = st.isDirectory() ? 0o500 : st.isFile() ? 0o400 : 0;
  if ((st.mode & wanted) === wanted) return st;
  chmodSync(path, (st.mode & 0o7777) | wanted);
  return lstatSync(path);
}

function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

function lstatQuiet(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'special file';
}

function sameState(a: FileState, b: FileState): boolean {
  if (a.kind === 'symlink') return b.kind === 'symlink' && a.target.equals(b.target);
  return b.kind === 'file' && a.mode === b.mode && a.size === b.size && sameContent(a.source, b.source, a.size);
}

const CHUNK = 1024 * 1024;

function sameContent(a: string, b: string, size: number): boolean {
  return withFile(a, size, (fa) =>
    withFile(b, size, (fb) => {
      const ba = Buffer.alloc(Math.min(CHUNK, size));
      const bb = Buffer.alloc(ba.length);
      for (let at = 0; at < size; at += ba.length) {
        const n = Math.min(ba.length, size - at);
        readFully(fa, ba, n, at);
        readFully(fb, bb, n, at);
        if (!ba.subarray(0, n).equals(bb.subarray(0, n))) return false;
      }
      return true;
    }),
  );
}

/**
 * Open a regular file without following a symlink or blocking on a FIFO swapped in, and check it is still
 * the size it was listed with.
 */
export function withFile<T>(path: string, size: number, use: (fd: number) => T): T {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size !== size) throw new AppError('SANDBOX_FAILED', `${path} changed while the patch was built; no patch was built.`);
    return use(fd);
  } finally {
    closeSync(fd);
  }
}

export function readFully(fd: number, buffer: Buffer, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buffer, done, length - done, position + done);
    if (n === 0) throw new AppError('SANDBOX_FAILED', 'A file shrank while the patch was built; no patch was built.');
    done += n;
  }
}
