/**
 * The upper-dir reader and the patch builder on hand-made lower/upper trees (what the kernel leaves after a
 * run): whiteouts, opaque directories, symlinks never followed, special files left out, .git left out, the
 * bounds, and a patch that git applies back to the lower tree with binary bytes intact.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildPatch } from '../../src/dispatch/overlay-patch.js';
import { readUpper, UPPER_LIMITS, type OverlayChange } from '../../src/dispatch/overlay-upper.js';

const isRoot = process.getuid?.() === 0;
let root: string;
let lower: string;
let upper: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-upper-'));
  lower = join(root, 'lower');
  upper = join(root, 'upper');
  mkdirSync(lower);
  mkdirSync(upper);
  write(lower, 'notes.txt', 'notes\n');
  write(lower, 'doomed.txt', 'bye\n');
  write(lower, 'src/a.ts', 'a\n');
  write(lower, 'src/b.ts', 'b\n');
  write(lower, 'src/deep/c.ts', 'c\n');
  write(lower, '.git/config', '[core]\n');
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function write(base: string, path: string, text: string | Buffer): void {
  mkdirSync(join(base, path, '..'), { recursive: true });
  writeFileSync(join(base, path), text);
}

/** A whiteout as overlayfs makes it: a character device 0/0 (mknod needs root). */
function whiteout(path: string): void {
  mkdirSync(join(upper, path, '..'), { recursive: true });
  const made = spawnSync('mknod', [join(upper, path), 'c', '0', '0']);
  if (made.status !== 0) throw new Error(`mknod failed: ${made.stderr}`);
}

/** The merged view as the kernel shows it for merged (non-opaque) directories. */
const mergedOf = (opaque: string[] = []) => async (dirs: string[]) =>
  new Map(
    dirs.map((d) => {
      const up = spawnSync('ls', ['-A', join(upper, d)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      const low = opaque.includes(d) ? [] : spawnSync('ls', ['-A', join(lower, d)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
      return [d, [...new Set([...up, ...low])]];
    }),
  );

const summary = (changes: OverlayChange[]) =>
  changes.map((c) => `${c.before ? (c.after ? 'M' : 'D') : 'A'} ${c.path}${c.after?.kind === 'symlink' ? ` -> ${c.after.target.toString()}` : ''}`);

describe('readUpper', () => {
  it('modified, added, unchanged copy-ups and mode changes', async () => {
    write(upper, 'notes.txt', 'notes\nmore\n');
    write(upper, 'added.txt', 'new\n');
    write(upper, 'src/a.ts', 'a\n'); // copied up, same bytes
    write(upper, 'src/b.ts', 'b\n');
    chmodSync(join(upper, 'src/b.ts'), 0o755);
    const report = await readUpper({ lower, upper, merged: mergedOf() });
    expect(summary(report.changes)).toEqual(['A added.txt', 'M notes.txt', 'M src/b.ts']);
    expect(report.changes[2]).toMatchObject({ before: { mode: '100644' }, after: { mode: '100755' } });
  });

  it.skipIf(!isRoot)('a whiteout deletes a lower file, or every file under a lower directory', async () => {
    whiteout('doomed.txt');
    whiteout('src');
    whiteout('never-existed');
    const report = await readUpper({ lower, upper, merged: mergedOf() });
    expect(summary(report.changes)).toEqual(['D doomed.txt', 'D src/a.ts', 'D src/b.ts', 'D src/deep/c.ts']);
  });

  it('an opaque directory (removed and made again): the lower names the merged view does not show are deleted', async () => {
    write(upper, 'src/new.ts', 'new\n');
    mkdirSync(join(upper, 'src/deep'));
    const asked: string[][] = [];
    const report = await readUpper({
      lower,
      upper,
      merged: async (dirs) => {
        asked.push(dirs);
        return mergedOf(['src', 'src/deep'])(dirs);
      },
    });
    expect(asked).toEqual([['src/deep', 'src']]);
    expect(summary(report.changes)).toEqual(['D src/a.ts', 'D src/b.ts', 'D src/deep/c.ts', 'A src/new.ts']);
  });

  it('a merged directory keeps the lower files the agent did not touch; only the root changed: no read-back at all', async () => {
    write(upper, 'src/new.ts', 'new\n');
    expect(summary((await readUpper({ lower, upper, merged: mergedOf() })).changes)).toEqual(['A src/new.ts']);
    rmSync(join(upper, 'src'), { recursive: true });
    write(upper, 'top.txt', 'x\n');
    const report = await readUpper({ lower, upper, merged: () => Promise.reject(new Error('must not be asked')) });
    expect(summary(report.changes)).toEqual(['A top.txt']);
  });

  it('a file replaced by a directory and back', async () => {
    write(upper, 'notes.txt/inner.txt', 'inner\n');
    write(upper, 'src', 'now a file\n');
    const report = await readUpper({ lower, upper, merged: mergedOf() });
    expect(summary(report.changes)).toEqual(['D notes.txt', 'A notes.txt/inner.txt', 'A src', 'D src/a.ts', 'D src/b.ts', 'D src/deep/c.ts']);
  });

  it('symlinks are changes of their own, never followed; FIFOs, sockets and devices are left out and reported', async () => {
    symlinkSync('/etc/passwd', join(upper, 'pw'));
    symlinkSync('../outside', join(upper, 'out'));
    symlinkSync('/etc/shadow', join(upper, 'notes.txt')); // a file replaced by a link to a secret
    spawnSync('mkfifo', [join(upper, 'pipe')]);
    const report = await readUpper({ lower, upper, merged: mergedOf() });
    expect(summary(report.changes)).toEqual(['M notes.txt -> /etc/shadow', 'A out -> ../outside', 'A pw -> /etc/passwd']);
    expect(report.skipped).toEqual([{ path: 'pipe', reason: 'a FIFO (only files and symlinks are part of a patch)' }]);
  });

  it('nothing under .git (any case) is a change; it is reported', async () => {
    write(upper, '.git/config', '[diff]\n\texternal = evil\n');
    write(upper, 'sub/.GIT/hooks/x', 'evil\n');
    const report = await readUpper({ lower, upper, merged: mergedOf() });
    expect(report.changes).toEqual([]);
    expect(report.skipped.map((s) => s.path).sort()).toEqual(['.git', 'sub/.GIT']);
  });

  it('names that are not UTF-8 are left out and reported', async () => {
    const name = Buffer.concat([Buffer.from(upper + '/bad-'), Buffer.from([0xff, 0xfe])]);
    writeFileSync(name, 'x');
    const report = await readUpper({ lower, upper, merged: mergedOf() });
    expect(report.changes).toEqual([]);
    expect(report.skipped[0]?.reason).toMatch(/not UTF-8/);
  });

  it('bounds: entries, content bytes, depth', async () => {
    for (let i = 0; i < 5; i += 1) write(upper, `f${i}.txt`, 'x'.repeat(100));
    await expect(readUpper({ lower, upper, merged: mergedOf(), limits: { ...UPPER_LIMITS, entries: 4 } })).rejects.toThrow(/more than 4 changed entries/);
    await expect(readUpper({ lower, upper, merged: mergedOf(), limits: { ...UPPER_LIMITS, bytes: 300 } })).rejects.toThrow(/too large to return as a patch/);
    write(upper, 'a/b/c/d/e.txt', 'x');
    await expect(readUpper({ lower, upper, merged: mergedOf(), limits: { ...UPPER_LIMITS, depth: 2 } })).rejects.toThrow(/nested deeper than 2/);
  });
});

describe('buildPatch', () => {
  it('git applies the patch to a copy of the lower tree and gets the upper state, binary bytes and symlinks included', async () => {
    const binary = Buffer.from([0, 1, 2, 255, 254, 0, 10, 13, 128]);
    write(lower, 'img.bin', binary);
    write(upper, 'img.bin', Buffer.concat([binary, Buffer.from([7])]));
    write(upper, 'new.bin', binary);
    write(upper, 'notes.txt', 'notes\nmore\n');
    write(upper, 'we ird "name"\n.txt', 'odd\n');
    symlinkSync('notes.txt', join(upper, 'link'));
    const report = await readUpper({ lower, upper, merged: mergedOf() });
    const patch = await buildPatch(report.changes);
    expect(patch.toString()).toContain('GIT binary patch');
    const copy = join(root, 'copy');
    spawnSync('cp', ['-a', lower, copy]);
    rmSync(join(copy, '.git'), { recursive: true });
    writeFileSync(join(root, 'p.patch'), patch);
    const applied = spawnSync('git', ['apply', join(root, 'p.patch')], { cwd: copy, encoding: 'utf8', env: { PATH: process.env['PATH'], HOME: root, GIT_CONFIG_NOSYSTEM: '1' } });
    expect(applied.status, applied.stderr).toBe(0);
    expect(readFileSync(join(copy, 'img.bin'))).toEqual(Buffer.concat([binary, Buffer.from([7])]));
    expect(readFileSync(join(copy, 'new.bin'))).toEqual(binary);
    expect(readFileSync(join(copy, 'we ird "name"\n.txt'), 'utf8')).toBe('odd\n');
    expect(spawnSync('readlink', [join(copy, 'link')], { encoding: 'utf8' }).stdout.trim()).toBe('notes.txt');
  });

  it('ignores the environment git would read: GIT_DIFF_OPTS, GIT_OBJECT_DIRECTORY, GIT_EXTERNAL_DIFF, GIT_CONFIG_PARAMETERS, GIT_DIR', async () => {
    write(lower, 'three.txt', 'one\ntwo\nthree\n');
    write(upper, 'three.txt', 'one\n2\nthree\n');
    const saved = { ...process.env };
    const marker = join(root, 'pwned');
    process.env['GIT_DIFF_OPTS'] = '--unified=0';
    process.env['GIT_OBJECT_DIRECTORY'] = join(root, 'elsewhere');
    process.env['GIT_EXTERNAL_DIFF'] = `touch ${marker}`;
    process.env['GIT_CONFIG_PARAMETERS'] = `'diff.external'='touch ${marker}' 'core.quotepath'='false'`;
    process.env['GIT_DIR'] = join(root, 'nowhere');
    try {
      const patch = await buildPatch((await readUpper({ lower, upper, merged: mergedOf() })).changes);
      expect(patch.toString()).toContain(' one\n-two\n+2\n three\n');
    } finally {
      process.env = saved;
    }
    expect(spawnSync('ls', [marker]).status).not.toBe(0);
  });

  it('no changes: an empty patch', async () => {
    expect((await buildPatch([])).length).toBe(0);
  });
});
