import { closeSync, constants, existsSync, fstatSync, lstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

/**
 * What sits at `<repo>/.git`, as far as protecting it under `repo: rw` needs to know. Git on the host runs
 * commands named in `.git/config` (core.fsmonitor, core.hooksPath, aliases) and `.git/hooks/*`, so the agent
 * must not write them; a `.git` file (a worktree or submodule) names the real git dir in a `gitdir:` line.
 */
export type RepoGit =
  | { kind: 'dir' }
  | { kind: 'absent' }
  | { kind: 'symlink' }
  /**
   * `gitdir` is absolute (resolved against the repo, symlinks resolved when it exists); undefined when the
   * file names none. `missing`: it does not exist (the agent could create it, if it lies inside the repo).
   */
  | { kind: 'file'; gitdir: string | undefined; missing: boolean }
  | { kind: 'other' };

/** A `.git` file is one line; anything larger is not one git wrote. */
const MAX_GITFILE_BYTES = 4096;

/** Reads only what lstat says: never follows a link, never blocks on a FIFO, never reads more than 4 KiB. */
export function inspectRepoGit(repo: string): RepoGit {
  const path = join(repo, '.git');
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return { kind: 'absent' };
  }
  if (st.isSymbolicLink()) return { kind: 'symlink' };
  if (st.isDirectory()) return { kind: 'dir' };
  if (!st.isFile()) return { kind: 'other' };
  const gitdir = gitdirOf(readGitFile(path), repo);
  if (gitdir === undefined || !existsSync(gitdir)) return { kind: 'file', gitdir, missing: gitdir !== undefined };
  return { kind: 'file', gitdir: realpathSync.native(gitdir), missing: false };
}

function readGitFile(path: string): string {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    if (!fstatSync(fd).isFile()) return '';
    const buffer = Buffer.alloc(MAX_GITFILE_BYTES);
    return buffer.subarray(0, readSync(fd, buffer, 0, MAX_GITFILE_BYTES, 0)).toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The `gitdir:` line of a `.git` file, made absolute (git reads a relative one against the file's directory). */
export function gitdirOf(text: string, repo: string): string | undefined {
  const match = /^gitdir:\s*(.+?)\s*$/m.exec(text);
  if (!match) return undefined;
  return isAbsolute(match[1]!) ? resolve(match[1]!) : resolve(repo, match[1]!);
}
