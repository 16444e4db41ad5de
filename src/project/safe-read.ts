import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import { join, sep } from 'node:path';
import { readAtMost } from '../read-at-most.js';

/**
 * Reading an agent's repository from the host. The repo is written by the agent (and by whoever wrote the
 * code it holds), so a file in it may be a link to the user's secrets, a FIFO that blocks the reader forever,
 * or a device that never ends. Every read of a repo file goes through `readRepoFile`.
 */

/** At most this many bytes of a file are read (1 MiB); a longer file is returned truncated, and says so. */
export const MAX_REPO_FILE_BYTES = 1024 * 1024;

export type RepoRead = { ok: true; bytes: Buffer; truncated: boolean } | { ok: false; reason: string };

// O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer. O_NOFOLLOW: a link in the last
// component fails (ELOOP) instead of being followed. Neither exists on Windows, where both are 0.
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0) | (constants.O_NOCTTY ?? 0);

/**
 * The first `limit` bytes of `relative` inside `root`, only when it is a regular file reached through no
 * symbolic link below `root` (`root` itself may be one). A relative path with `..`, `.` or an empty
 * component is refused; so is anything that is not a regular file (FIFO, socket, device, directory).
 * Never blocks and never throws; the reason of a refusal names no host path.
 */
export function readRepoFile(root: string, relative: string, limit: number = MAX_REPO_FILE_BYTES): RepoRead {
  const parts = relative.split(/[\\/]/);
  if (relative.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) return refused('not a plain path inside the repository');
  let base: string;
  try {
    base = realpathSync.native(root);
  } catch (error) {
    return refused(`the repository is unreadable (${errorCode(error)})`);
  }
  let path = base;
  for (const [i, part] of parts.entries()) {
    path = join(path, part);
    let entry: Stats;
    try {
      entry = lstatSync(path);
    } catch (error) {
      return refused(errorCode(error) === 'ENOENT' ? 'not found' : `unreadable (${errorCode(error)})`);
    }
    if (entry.isSymbolicLink()) return refused('a symbolic link');
    const last = i === parts.length - 1;
    if (!last && !entry.isDirectory()) return refused('not found');
    // Checked before opening: opening a device can have effects of its own.
    if (last && !entry.isFile()) return refused('not a regular file');
  }
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (error) {
    return refused(errorCode(error) === 'ELOOP' ? 'a symbolic link' : `unreadable (${errorCode(error)})`);
  }
  try {
    const opened = fstatSync(fd);
    if (!opened.isFile()) return refused('not a regular file');
    // The checks above and the open are separate steps, and an agent with a writable repo may be rewriting it
    // meanwhile: a directory swapped for a link between them is followed by the open. So the file actually
    // opened is checked, by the path the kernel has for it.
    if (!isInside(openedPath(fd, path, opened), base)) return refused('outside the repository');
    return { ok: true, bytes: readAtMost(fd, Math.min(limit, opened.size)), truncated: opened.size > limit };
  } catch (error) {
    return refused(`unreadable (${errorCode(error)})`);
  } finally {
    closeSync(fd);
  }
}

/**
 * A file the user named (a policy file, say): links are followed, but only a regular file is read, never
 * blocking on a FIFO, and at most `limit` bytes. Throws with a one-line reason otherwise.
 */
export function readRegularFile(path: string, limit: number = MAX_REPO_FILE_BYTES): Buffer {
  const fd = openSync(path, OPEN_FLAGS & ~(constants.O_NOFOLLOW ?? 0));
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('it is not a regular file');
    if (st.size > limit) throw new Error(`it is larger than ${limit} bytes`);
    return readAtMost(fd, st.size);
  } finally {
    closeSync(fd);
  }
}

export type RepoEntryKind = 'file' | 'dir';

/**
 * What `name` in the repo's top level is, for detection only (nothing is read): a regular file or a
 * directory. A link counts as its target only when the target stays inside the repo; a link out of it,
 * a broken or looping link, a FIFO, socket or device is absent.
 */
export function repoEntryKind(root: string, name: string): RepoEntryKind | undefined {
  if (name === '' || name === '.' || name === '..' || /[\\/]/.test(name)) return undefined;
  try {
    const base = realpathSync.native(root);
    const path = join(base, name);
    let st = lstatSync(path);
    if (st.isSymbolicLink()) {
      if (!isInside(realpathSync.native(path), base)) return undefined;
      st = statSync(path);
    }
    return st.isFile() ? 'file' : st.isDirectory() ? 'dir' : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where the open file is. Linux names it in /proc/self/fd, which no later rename can change. Elsewhere the
 * path is resolved again and must still name the same file: a swap that is undone between the open and this
 * check goes unseen there (only a repo the agent can write while the server reads it is exposed).
 */
function openedPath(fd: number, path: string, opened: Stats): string {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    const real = realpathSync.native(path);
    return sameFile(statSync(real), opened) ? real : '';
  }
}

function isInside(path: string, base: string): boolean {
  return path.startsWith(base.endsWith(sep) ? base : base + sep);
}

function sameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

function refused(reason: string): RepoRead {
  return { ok: false, reason };
}

function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : 'error';
}
