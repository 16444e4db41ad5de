import { AppError } from '../errors.js';
import { runGit, withScratchRepo } from './overlay-git.js';
import { quoteGitPath } from './overlay-paths.js';
import { readFully, withFile, type FileState, type OverlayChange } from './overlay-upper.js';

/**
 * The binary git patch of a list of changes, built on the host in a scratch repository: the old and new
 * versions go into two commits through `git fast-import` (content read here, never by a git that follows a
 * link), and `git diff-tree --binary` between them prints the patch. Nothing of the agent's (config,
 * attributes, hooks, a diff driver) is in reach of that git.
 */
export async function buildPatch(changes: OverlayChange[]): Promise<Buffer> {
  if (changes.length === 0) return Buffer.alloc(0);
  return withScratchRepo(async (gitDir, env) => {
    const imported = await runGit(['fast-import', '--quiet', '--done', '--date-format=raw'], { cwd: gitDir, env, input: (write) => writeStream(changes, write) });
    if (imported.code !== 0) throw new AppError('SANDBOX_FAILED', `Could not build the overlay patch (git fast-import): ${imported.stderr.trim().slice(0, 500)}`);
    const diff = await runGit(
      ['diff-tree', '-r', '-p', '--binary', '--full-index', '--no-renames', '--no-ext-diff', '--no-textconv', '--no-color', '--src-prefix=a/', '--dst-prefix=b/', 'refs/heads/before', 'refs/heads/after'],
      { cwd: gitDir, env },
    );
    if (diff.code !== 0) throw new AppError('SANDBOX_FAILED', `Could not build the overlay patch (git diff-tree): ${diff.stderr.trim().slice(0, 500)}`);
    return diff.stdout;
  });
}

const COMMITTER = 'committer agent-dispatch <agent-dispatch@localhost> 0 +0000\n';

async function writeStream(changes: OverlayChange[], write: (chunk: Buffer) => Promise<void>): Promise<void> {
  const marks = new Map<FileState, number>();
  let next = 1;
  for (const change of changes) {
    for (const state of [change.before, change.after]) {
      if (!state) continue;
      const mark = next++;
      marks.set(state, mark);
      await writeBlob(state, mark, write);
    }
  }
  const line = (op: string, path: string) => Buffer.concat([Buffer.from(op), Buffer.from(quoteFastImport(path), 'latin1'), Buffer.from('\n')]);
  const before: Buffer[] = [];
  const after: Buffer[] = [];
  for (const change of changes) {
    if (change.before) before.push(line(`M ${modeOf(change.before)} :${marks.get(change.before)} `, change.path));
    if (change.after) after.push(line(`M ${modeOf(change.after)} :${marks.get(change.after)} `, change.path));
    else after.push(line('D ', change.path));
  }
  // Deletions first: a path that turned from a file into a directory (or back) is removed before its replacement lands.
  after.sort((a, b) => Number(b[0] === 0x44) - Number(a[0] === 0x44));
  await write(Buffer.from(`commit refs/heads/before\n${COMMITTER}data 0\n`));
  for (const b of before) await write(b);
  await write(Buffer.from(`\ncommit refs/heads/after\n${COMMITTER}data 0\nfrom refs/heads/before\n`));
  for (const a of after) await write(a);
  await write(Buffer.from('\ndone\n'));
}

function modeOf(state: FileState): string {
  return state.kind === 'symlink' ? '120000' : state.mode;
}

async function writeBlob(state: FileState, mark: number, write: (chunk: Buffer) => Promise<void>): Promise<void> {
  const size = state.kind === 'symlink' ? state.target.length : state.size;
  await write(Buffer.from(`blob\nmark :${mark}\ndata ${size}\n`));
  if (state.kind === 'symlink') await write(state.target);
  else await streamFile(state.source, state.size, write);
  await write(Buffer.from('\n'));
}

async function streamFile(path: string, size: number, write: (chunk: Buffer) => Promise<void>): Promise<void> {
  for (let at = 0; at < size; at += CHUNK) {
    const buffer = Buffer.alloc(Math.min(CHUNK, size - at));
    withFile(path, size, (fd) => readFully(fd, buffer, buffer.length, at));
    await write(buffer);
  }
}

const CHUNK = 1024 * 1024;

/** fast-import takes a C-quoted path (needed when it starts with a quote or holds a newline); plain ones stay as they are. */
function quoteFastImport(path: string): string {
  return quoteGitPath(Buffer.from(path, 'utf8'));
}
