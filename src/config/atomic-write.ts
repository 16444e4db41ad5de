import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, realpathSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

/**
 * Write `text` to `path` so that a crash leaves either the old or the new file, never a truncated one.
 * The file is owner-only (0600) before it becomes visible; its directory is created 0700.
 * A symlinked target keeps its link: the real file is replaced, next to itself (same filesystem).
 */
export function writeFileAtomic(path: string, text: string | Uint8Array): void {
  ensurePrivateDir(dirname(path));
  const target = resolveLink(path);
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(8).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temp, 'wx', 0o600);
    const data = typeof text === 'string' ? Buffer.from(text) : text;
    // writeSync may write less than asked for; loop until every byte is in.
    for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    chmodSync(temp, 0o600);
    renameSync(temp, target);
  } catch (error) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {
      // the temp file was never created, or is already gone
    }
    throw error;
  }
}

/**
 * Create `dir` owner-only. An existing directory is tightened to 0700 only when it is ours and not a shared
 * (sticky, e.g. /tmp) directory: pointing the config at a shared place must not change it for everyone.
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    const st = statSync(dir);
    const ours = typeof process.getuid !== 'function' || st.uid === process.getuid();
    const shared = (st.mode & 0o1000) !== 0;
    if (ours && !shared && (st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  } catch {
    // best effort: a directory we cannot inspect keeps its mode
  }
}

function resolveLink(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
