import { lstatSync, readFileSync, type Stats } from 'node:fs';
import { AppError } from '../errors.js';
import { runGit, withScratchRepo } from './overlay-git.js';
import { isGitDirName, patchPathProblem, symlinkTargetInRepo, unquoteGitPath } from './overlay-paths.js';

/** One file of a patch, as `agent-dispatch apply` summarises and checks it. */
export interface PatchEntry {
  path: string;
  change: 'added' | 'modified' | 'deleted';
  binary: boolean;
  /** A symlink the patch adds or changes: its new target (never followed). */
  symlinkTarget?: string;
}

/** A patch file larger than this is not one agent-dispatch wrote (the builder caps content at 64 MiB). */
export const MAX_PATCH_BYTES = 256 * 1024 * 1024;

/**
 * The files a git patch touches, from its `diff --git` blocks. Renames and copies are refused (the overlay
 * builder never writes them), as is a header whose two paths differ or do not parse.
 */
export function parsePatch(patch: Buffer): PatchEntry[] {
  const lines = patch.toString('latin1').split('\n');
  const entries: PatchEntry[] = [];
  let current: (PatchEntry & { newMode?: string }) | undefined;
  let inHunk = false;
  for (const line of lines) {
    if (line.startsWith('diff --git ')) {
      current = { path: headerPath(line.slice('diff --git '.length)), change: 'modified', binary: false };
      entries.push(current);
      inHunk = false;
      continue;
    }
    if (!current) {
      if (line.trim() !== '') throw malformed(`text before the first 'diff --git' line`);
      continue;
    }
    if (inHunk) {
      if (current.newMode === '120000' && line.startsWith('+') && current.symlinkTarget === undefined) current.symlinkTarget = utf8(line.slice(1));
      continue;
    }
    if (line.startsWith('new file mode ')) {
      current.change = 'added';
      current.newMode = line.slice('new file mode '.length);
    } else if (line.startsWith('deleted file mode ')) current.change = 'deleted';
    else if (line.startsWith('new mode ')) current.newMode = line.slice('new mode '.length);
    else if (line.startsWith('index ')) {
      const mode = line.split(' ')[2];
      if (mode) current.newMode ??= mode;
    } else if (/^(rename|copy) (from|to) |^(similarity|dissimilarity) index /.test(line)) throw malformed(`a rename or copy (${current.path})`);
    else if (line.startsWith('--- ') || line.startsWith('+++ ')) checkSide(line, current.path);
    else if (line === 'GIT binary patch' || line.startsWith('Binary files ')) {
      current.binary = true;
      inHunk = true;
    } else if (line.startsWith('@@')) inHunk = true;
  }
  return entries.map(({ path, change, binary, symlinkTarget }) => ({ path, change, binary, ...(symlinkTarget !== undefined ? { symlinkTarget } : {}) }));
}

/** `a/P b/P`, each side quoted or not; both sides must name the same path. */
function headerPath(rest: string): string {
  if (rest.startsWith('"')) {
    const a = unquoteGitPath(rest);
    const b = a?.rest.startsWith(' "') ? unquoteGitPath(a.rest.slice(1)) : undefined;
    if (!a || !b || b.rest !== '') throw malformed(`an unreadable header: diff --git ${rest.slice(0, 200)}`);
    return samePath(a.path, b.path, rest);
  }
  const n = (rest.length - 5) / 2;
  const a = rest.slice(0, 2 + n);
  if (!Number.isInteger(n) || n <= 0 || !a.startsWith('a/') || rest.slice(2 + n) !== ` b/${a.slice(2)}`) throw malformed(`a header naming two different paths: diff --git ${rest.slice(0, 200)}`);
  return utf8(a.slice(2));
}

function samePath(a: Buffer, b: Buffer, rest: string): string {
  const pa = a.toString('latin1');
  const pb = b.toString('latin1');
  if (!pa.startsWith('a/') || !pb.startsWith('b/') || pa.slice(2) !== pb.slice(2)) throw malformed(`a header naming two different paths: diff --git ${rest.slice(0, 200)}`);
  return utf8(pa.slice(2));
}

function checkSide(line: string, path: string): void {
  const value = line.slice(4);
  if (value === '/dev/null') return;
  const parsed = value.startsWith('"') ? unquoteGitPath(value)?.path.toString('latin1') : value;
  if (parsed === undefined || utf8(parsed.slice(2)) !== path) throw malformed(`'${line.slice(0, 200)}' does not match its header (${path})`);
}

/** Header text is read as latin1 (byte per char); paths are UTF-8. */
function utf8(latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

function malformed(what: string): AppError {
  return new AppError('INVALID_INPUT', `The patch is not one agent-dispatch would write: ${what}.`, { hint: 'Nothing was applied. Apply only patches a dispatch returned (agent-dispatch apply REF).' });
}

/**
 * Why a patch may not be applied to `repo`: a path that escapes it or names a git dir, a path that goes
 * through a symlink (one in the repo, or one the patch adds), a symlink pointing out of the repo.
 */
export function patchProblems(entries: PatchEntry[], repo: string): string[] {
  const problems: string[] = [];
  const addedLinks = new Set(entries.filter((e) => e.symlinkTarget !== undefined && e.change !== 'deleted').map((e) => e.path));
  for (const entry of entries) {
    const problem = patchPathProblem(entry.path);
    if (problem) {
      problems.push(`${entry.path}: ${problem}`);
      continue;
    }
    const parts = entry.path.split('/');
    for (let i = 1; i < parts.length; i += 1) {
      const prefix = parts.slice(0, i).join('/');
      if (addedLinks.has(prefix)) problems.push(`${entry.path}: goes through ${prefix}, a symlink the patch adds`);
      else if (lstatQuiet(`${repo}/${prefix}`)?.isSymbolicLink()) problems.push(`${entry.path}: goes through ${prefix}, a symlink in the repo`);
    }
    if (entry.symlinkTarget !== undefined && entry.change !== 'deleted') {
      const inside = symlinkTargetInRepo(entry.path, entry.symlinkTarget);
      if (inside === undefined) problems.push(`${entry.path}: a symlink to ${entry.symlinkTarget}, outside the repo`);
      else if (inside.split('/').some(isGitDirName)) problems.push(`${entry.path}: a symlink into .git (${entry.symlinkTarget})`);
    }
  }
  return problems;
}

function lstatQuiet(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/**
 * The paths git itself reads from the patch (`--numstat -z`), checked against ours: a patch the two parsers
 * read differently is refused rather than trusted.
 */
async function gitPaths(patch: Buffer): Promise<string[]> {
  return withScratchRepo(async (gitDir, env) => {
    const run = await runGit(['apply', '--numstat', '-z', '-'], { cwd: gitDir, env, input: patch, maxStdout: 64 * 1024 * 1024 });
    if (run.code !== 0) throw malformed(`git cannot read it (${run.stderr.trim().slice(0, 300)})`);
    return run.stdout
      .toString('utf8')
      .split('\0')
      .filter((r) => r !== '')
      .map((r) => r.split('\t').slice(2).join('\t'));
  });
}

/** Parse and check a patch for `repo`; throws an AppError naming every problem. */
export async function checkPatch(patch: Buffer, repo: string): Promise<PatchEntry[]> {
  const entries = parsePatch(patch);
  if (entries.length === 0) throw new AppError('INVALID_INPUT', 'The patch changes nothing.', { hint: 'Nothing to apply.' });
  const ours = entries.map((e) => e.path).sort();
  const git = (await gitPaths(patch)).sort();
  if (ours.length !== git.length || ours.some((p, i) => p !== git[i])) throw malformed('git reads other paths from it than its headers name');
  const problems = patchProblems(entries, repo);
  if (problems.length > 0) {
    throw new AppError('INVALID_INPUT', `Refusing to apply the patch to ${repo}:\n  ${problems.slice(0, 20).join('\n  ')}${problems.length > 20 ? `\n  … and ${problems.length - 20} more` : ''}`, {
      hint: 'Nothing was applied. The agent changed something it must not; review the patch file by hand.',
    });
  }
  return entries;
}

/**
 * `git apply` (or `--check`) of the patch onto `repo` as a plain directory: the scratch git dir keeps the
 * repo's own config and any enclosing repository out, and patch paths count from `repo` even when it is a
 * subdirectory of a checkout. Throws an AppError with git's reason when it does not apply.
 */
export async function applyToRepo(patch: Buffer, repo: string, check: boolean): Promise<void> {
  await withScratchRepo(async (gitDir, env) => {
    const args = ['apply', ...(check ? ['--check'] : []), '--whitespace=nowarn', '-'];
    const run = await runGit(args, { cwd: repo, env: { ...env, GIT_DIR: gitDir, GIT_WORK_TREE: repo }, input: patch });
    if (run.code !== 0) {
      throw new AppError('INVALID_INPUT', `The patch does not apply to ${repo}: ${run.stderr.trim().slice(0, 1000)}`, {
        hint: 'Nothing was changed. It may be applied already, or the files changed since the dispatch; apply it by hand with git apply --3way, or dispatch again.',
      });
    }
  });
}

/** Read a patch file the server wrote: a regular file (never a link), bounded in size. */
export function readPatchFile(path: string): Buffer {
  const st = lstatQuiet(path);
  if (!st?.isFile()) throw new AppError('JOB_NOT_FOUND', `The patch file ${path} is missing or not a regular file.`, { hint: 'It may have been pruned (patches are kept for the retention period); dispatch again.' });
  if (st.size > MAX_PATCH_BYTES) throw new AppError('INVALID_INPUT', `The patch file ${path} is larger than ${MAX_PATCH_BYTES} bytes.`);
  return readFileSync(path);
}
