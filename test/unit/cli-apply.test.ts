/**
 * `agent-dispatch apply REF [--check]` through main(): a patch built the way an overlay dispatch builds it,
 * stored the way a ref is, summarised and applied to the agent's repo (binary bytes intact, paths counted from
 * the agent directory even inside a bigger checkout); every refusal exits 1 with its reason and leaves the
 * repo as it was. No Docker.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { jobsDir } from '../../src/config/paths.js';
import { JobStore } from '../../src/dispatch/job-store.js';
import { buildPatch } from '../../src/dispatch/overlay-patch.js';
import { readUpper } from '../../src/dispatch/overlay-upper.js';
import type { DispatchResult } from '../../src/dispatch/types.js';
import { run, setupEnv, type Env } from './cli-harness.js';

const BINARY = Buffer.from([0, 1, 2, 255, 254, 0, 10, 13, 128]);
let env: Env;
let repo: string;

beforeEach(() => {
  env = setupEnv();
  vi.stubEnv('PATH', `${env.binDir}:/usr/local/bin:/usr/bin:/bin`);
  repo = env.project('api', { 'notes.txt': 'notes\n', 'doomed.txt': 'bye\n', 'src/a.ts': 'a\n' });
  writeFileSync(join(repo, 'img.bin'), BINARY);
  env.writeConfig({ agents: { api: { directory: repo } }, groups: {}, settings: {} });
});

afterEach(() => {
  env.cleanup();
  vi.unstubAllEnvs();
});

/** The patch an overlay dispatch would return for these upper-dir contents (null = a deletion, via the merged view). */
async function patchFor(files: Record<string, string | Buffer | null>): Promise<Buffer> {
  const upper = join(env.root, `upper-${Math.random().toString(16).slice(2)}`);
  mkdirSync(upper);
  const gone = new Set(Object.entries(files).filter(([, v]) => v === null).map(([k]) => k));
  for (const [path, content] of Object.entries(files)) {
    if (content === null) continue;
    mkdirSync(dirname(join(upper, path)), { recursive: true });
    writeFileSync(join(upper, path), content);
  }
  const { changes } = await readUpper({ lower: repo, upper, merged: async (dirs) => new Map(dirs.map((d) => [d, []])) });
  // Top-level deletions (whiteouts need root to make): add them as the reader would.
  for (const path of gone) changes.push({ path, before: { kind: 'file', mode: '100644', size: readFileSync(join(repo, path)).length, source: join(repo, path) } });
  return buildPatch(changes.sort((a, b) => (a.path < b.path ? -1 : 1)));
}

async function storeRef(fields: Partial<DispatchResult>): Promise<string> {
  const result = { agent: 'api', success: true, result: 'edited', ...fields } as DispatchResult;
  return (await new JobStore(jobsDir(process.env)).createCompleted({ agent: 'api', task: 't', result })).id;
}

async function refWithFile(patch: Buffer | string): Promise<string> {
  const file = join(env.stateDir, 'patches', 'x.patch');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, patch);
  return storeRef({ patch: patch.toString(), patch_file: file });
}

describe('agent-dispatch apply', () => {
  it('summarises, checks, applies once (binary intact); a second --check fails as already applied', async () => {
    const ref = await refWithFile(await patchFor({ 'notes.txt': 'notes\nmore\n', 'added.txt': 'new\n', 'new.bin': BINARY, 'doomed.txt': null }));
    const check = await run('apply', ref, '--check');
    expect(check.code, check.all).toBe(0);
    expect(check.stdout).toContain(`Patch of ${ref} (agent api) for ${repo}:`);
    expect(check.stdout).toContain('  A added.txt\n  D doomed.txt\n  A new.bin (binary)\n  M notes.txt\n');
    expect(check.stdout).toContain('2 added, 1 modified, 1 deleted (1 binary)');
    expect(check.stdout).toContain('applies cleanly');
    expect(readFileSync(join(repo, 'notes.txt'), 'utf8')).toBe('notes\n');

    const applied = await run('apply', ref);
    expect(applied.code, applied.all).toBe(0);
    expect(readFileSync(join(repo, 'notes.txt'), 'utf8')).toBe('notes\nmore\n');
    expect(readFileSync(join(repo, 'new.bin'))).toEqual(BINARY);
    expect(() => readFileSync(join(repo, 'doomed.txt'))).toThrow();

    const again = await run('apply', ref, '--check');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/does not apply/);
    expect(again.stderr).toMatch(/already exists|patch does not apply|does not exist/);
  });

  it('an inline patch (no file) applies; a cut one without its file is refused', async () => {
    const patch = await patchFor({ 'added.txt': 'new\n' });
    expect((await run('apply', await storeRef({ patch: patch.toString() }))).code).toBe(0);
    expect(readFileSync(join(repo, 'added.txt'), 'utf8')).toBe('new\n');
    const cut = await run('apply', await storeRef({ patch: patch.toString().slice(0, 20), patch_truncated: true }));
    expect(cut.code).toBe(1);
    expect(cut.stderr).toMatch(/has no patch/);
  });

  it('paths count from the agent directory when it is a subdirectory of a checkout; the checkout config is not read', async () => {
    const checkout = dirname(dirname(repo));
    const git = (...args: string[]) => spawnSync('git', ['-C', checkout, ...args], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', HOME: env.root } });
    git('init', '-q');
    // A config that would refuse every whitespace change if git apply read it.
    git('config', 'apply.whitespace', 'error');
    const ref = await refWithFile(await patchFor({ 'src/a.ts': 'a   \n' }));
    const applied = await run('apply', ref);
    expect(applied.code, applied.all).toBe(0);
    expect(readFileSync(join(repo, 'src/a.ts'), 'utf8')).toBe('a   \n');
  });

  it.each([
    ['a path in .git', `diff --git a/.git/hooks/pre-commit b/.git/hooks/pre-commit\nnew file mode 100755\n--- /dev/null\n+++ b/.git/hooks/pre-commit\n@@ -0,0 +1 @@\n+evil\n`, /\.git\/hooks\/pre-commit: a path in a \.git directory/],
    ['../', `diff --git a/../evil b/../evil\nnew file mode 100644\n--- /dev/null\n+++ b/../evil\n@@ -0,0 +1 @@\n+evil\n`, /\.\.\/evil: a '\.\.' component/],
    ['a symlink pointing out', `diff --git a/pw b/pw\nnew file mode 120000\n--- /dev/null\n+++ b/pw\n@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n`, /pw: a symlink to \/etc\/passwd, outside the repo/],
    ['a rename', `diff --git a/notes.txt b/moved.txt\nsimilarity index 100%\nrename from notes.txt\nrename to moved.txt\n`, /two different paths|rename/],
  ])('refuses %s: exit 1, the reason, nothing changed', async (_what, patch, reason) => {
    const result = await run('apply', await refWithFile(patch));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(reason);
    expect(result.stderr).toContain('Nothing was applied');
    expect(readFileSync(join(repo, 'notes.txt'), 'utf8')).toBe('notes\n');
  });

  it('refuses a path through a symlink in the repo (the file it points at is not written)', async () => {
    const outside = join(env.root, 'outside');
    mkdirSync(outside);
    symlinkSync(outside, join(repo, 'link'));
    const patch = `diff --git a/link/evil b/link/evil\nnew file mode 100644\n--- /dev/null\n+++ b/link/evil\n@@ -0,0 +1 @@\n+evil\n`;
    const result = await run('apply', await refWithFile(patch));
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/link\/evil: goes through link, a symlink in the repo/);
    expect(() => readFileSync(join(outside, 'evil'))).toThrow();
  });

  it('unknown refs, jobs without a patch, a patch file that is a symlink', async () => {
    expect((await run('apply', 'nope')).stderr).toMatch(/Invalid ref/);
    expect((await run('apply', 'ab'.repeat(16))).stderr).toMatch(/No job or ref/);
    expect((await run('apply', await storeRef({}))).stderr).toMatch(/has no patch/);
    const link = join(env.root, 'link.patch');
    symlinkSync('/etc/passwd', link);
    const linked = await run('apply', await storeRef({ patch_file: link }));
    expect(linked.code).toBe(1);
    expect(linked.stderr).toMatch(/not a regular file/);
  });
});
