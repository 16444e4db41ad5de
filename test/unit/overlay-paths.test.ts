/**
 * Patch-path validation and what `agent-dispatch apply` reads from a patch: paths that leave the repo or name
 * a git dir, symlink traversal (in the repo or added by the patch), symlinks pointing out, headers that do
 * not parse or disagree; plus the engine-side pieces that need no engine (mount options, rootless refusal,
 * the merged listing's parser).
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkPatch, parsePatch, patchProblems } from '../../src/dispatch/overlay-apply.js';
import { isGitDirName, patchPathProblem, quoteGitPath, symlinkTargetInRepo, unquoteGitPath } from '../../src/dispatch/overlay-paths.js';
import { OverlayVolumes, overlayMount, parseListing } from '../../src/sandbox/overlay-volume.js';

let repo: string;

beforeEach(() => {
  repo = mkdtempSync(join(tmpdir(), 'ad-paths-'));
});

afterEach(() => {
  rmSync(repo, { recursive: true, force: true });
});

describe('patchPathProblem', () => {
  it.each([
    ['src/a.ts', undefined],
    ['a b/c"d', undefined],
    ['.gitignore', undefined],
    ['.github/workflows/x.yml', undefined],
    ['', 'an empty path'],
    ['/etc/passwd', 'an absolute path'],
    ['../outside', "a '..' component (outside the repo)"],
    ['a/../../b', "a '..' component (outside the repo)"],
    ['a//b', 'an empty path component (// or a trailing /)'],
    ['./a', "a '.' component"],
    ['.git/config', 'a path in a .git directory (git on the host would run the config and hooks it finds there)'],
    ['sub/.GIT/hooks/pre-commit', 'a path in a .git directory (git on the host would run the config and hooks it finds there)'],
    ['sub/.git./x', 'a path in a .git directory (git on the host would run the config and hooks it finds there)'],
    ['GIT~1/config', 'a path in a .git directory (git on the host would run the config and hooks it finds there)'],
    ['a\0b', 'a NUL byte in the path'],
  ])('%j → %s', (path, problem) => {
    expect(patchPathProblem(path)).toBe(problem);
  });

  it('.git spellings other file systems fold', () => {
    expect(['.git', '.GIT', '.Git ', '.git...', 'git~1'].every(isGitDirName)).toBe(true);
    expect(['.gitignore', 'git', '.github', 'x.git'].some(isGitDirName)).toBe(false);
  });

  it('symlink targets: inside the repo or not', () => {
    expect(symlinkTargetInRepo('a/link', '../b')).toBe('b');
    expect(symlinkTargetInRepo('a/link', '../../b')).toBeUndefined();
    expect(symlinkTargetInRepo('link', '/etc/passwd')).toBeUndefined();
    expect(symlinkTargetInRepo('link', '')).toBeUndefined();
  });

  it('C quoting round-trips every byte', () => {
    const raw = Buffer.from([0x61, 0x22, 0x5c, 0x0a, 0x09, 0xc3, 0xa9, 0x01, 0x7f]);
    const quoted = quoteGitPath(raw);
    expect(quoted).toBe('"a\\"\\\\\\n\\t\\303\\251\\001\\177"');
    expect(unquoteGitPath(`${quoted} rest`)).toEqual({ path: raw, rest: ' rest' });
    expect(quoteGitPath(Buffer.from('plain name'))).toBe('plain name');
    expect(unquoteGitPath('"unterminated')).toBeUndefined();
  });
});

const header = (path: string) => `diff --git a/${path} b/${path}\n`;
const added = (path: string, body = 'x') => `${header(path)}new file mode 100644\nindex 0000000..1111111\n--- /dev/null\n+++ b/${path}\n@@ -0,0 +1 @@\n+${body}\n`;
const link = (path: string, target: string) => `${header(path)}new file mode 120000\nindex 0000000..1111111\n--- /dev/null\n+++ b/${path}\n@@ -0,0 +1 @@\n+${target}\n\\ No newline at end of file\n`;

describe('parsePatch and patchProblems', () => {
  it('summarises added, modified, deleted, binary and symlinks', () => {
    const patch = [
      added('new.txt'),
      `${header('old.txt')}index 1111111..2222222 100644\n--- a/old.txt\n+++ b/old.txt\n@@ -1 +1 @@\n-a\n+b\n`,
      `${header('gone.txt')}deleted file mode 100644\nindex 1111111..0000000\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n`,
      `${header('img.bin')}new file mode 100644\nindex 0000000..3333333\nGIT binary patch\nliteral 3\nKcmZQzWMT jk\n\nliteral 0\nHcmV?d00001\n\n`,
      link('ln', '../x'),
      `diff --git "a/sp ace\\n" "b/sp ace\\n"\nnew file mode 100644\n--- /dev/null\n+++ "b/sp ace\\n"\n@@ -0,0 +1 @@\n+y\n`,
    ].join('');
    expect(parsePatch(Buffer.from(patch))).toEqual([
      { path: 'new.txt', change: 'added', binary: false },
      { path: 'old.txt', change: 'modified', binary: false },
      { path: 'gone.txt', change: 'deleted', binary: false },
      { path: 'img.bin', change: 'added', binary: true },
      { path: 'ln', change: 'added', binary: false, symlinkTarget: '../x' },
      { path: 'sp ace\n', change: 'added', binary: false },
    ]);
  });

  it('refuses renames, copies, mismatched headers and text before the first diff', () => {
    expect(() => parsePatch(Buffer.from(`${header('a')}similarity index 100%\nrename from a\nrename to b\n`))).toThrow(/a rename or copy/);
    expect(() => parsePatch(Buffer.from('diff --git a/x b/y\n'))).toThrow(/two different paths/);
    expect(() => parsePatch(Buffer.from(`${header('x')}--- a/x\n+++ b/../../etc/passwd\n`))).toThrow(/does not match its header/);
    expect(() => parsePatch(Buffer.from(`junk\n${added('x')}`))).toThrow(/before the first/);
  });

  it('every escape is named: .git, .., absolute, through a symlink in the repo or one the patch adds, links out', () => {
    mkdirSync(join(repo, 'real'));
    symlinkSync('/etc', join(repo, 'etc-link'));
    const entries = parsePatch(
      Buffer.from(
        [
          added('.git/hooks/pre-commit'),
          added('etc-link/cron.d/evil'),
          link('newlink', 'real'),
          added('newlink/x'),
          link('pw', '/etc/passwd'),
          link('up', '../../outside'),
          link('gitlink', '.git/config'),
          added('real/fine.txt'),
        ].join(''),
      ),
    );
    expect(patchProblems(entries, repo)).toEqual([
      '.git/hooks/pre-commit: a path in a .git directory (git on the host would run the config and hooks it finds there)',
      'etc-link/cron.d/evil: goes through etc-link, a symlink in the repo',
      'newlink/x: goes through newlink, a symlink the patch adds',
      'pw: a symlink to /etc/passwd, outside the repo',
      'up: a symlink to ../../outside, outside the repo',
      'gitlink: a symlink into .git (.git/config)',
    ]);
  });

  it('checkPatch: git must read the same paths; an escaping path is refused before anything is applied', async () => {
    await expect(checkPatch(Buffer.from(added('../escape.txt')), repo)).rejects.toThrow(/escape|outside|\.\./);
    await expect(checkPatch(Buffer.from(added('ok.txt')), repo)).resolves.toEqual([{ path: 'ok.txt', change: 'added', binary: false }]);
    await expect(checkPatch(Buffer.from(''), repo)).rejects.toThrow(/changes nothing/);
  });
});

describe('overlay volume (no engine)', () => {
  const dirs = { lower: '/repo', upper: '/state/overlays/j/upper', work: '/state/overlays/j/work' };

  it('an anonymous local-driver volume with pinned overlay options; a read-only one is asked of the kernel', () => {
    const mount = overlayMount('/repo', dirs, { 'agent-dispatch.agent': 'a' });
    expect(mount).toEqual({
      Type: 'volume',
      Target: '/repo',
      ReadOnly: false,
      VolumeOptions: {
        NoCopy: true,
        Labels: { 'agent-dispatch.agent': 'a', 'agent-dispatch.role': 'overlay' },
        DriverConfig: { Name: 'local', Options: { type: 'overlay', device: 'overlay', o: 'lowerdir=/repo,upperdir=/state/overlays/j/upper,workdir=/state/overlays/j/work,redirect_dir=off,metacopy=off,index=off,xino=off' } },
      },
    });
    expect(overlayMount('/m', dirs, {}, true).VolumeOptions?.DriverConfig?.Options['o']).toMatch(/^ro,lowerdir=/);
  });

  it('a path the mount options cannot carry is refused with a way out', () => {
    expect(() => overlayMount('/r', { ...dirs, lower: '/code/a,b' }, {})).toThrow(/',' or ':'/);
  });

  it('a rootless or non-Linux engine is refused with a hint; a rootful one passes (and is asked once)', async () => {
    let asked = 0;
    const engine = (info: Record<string, unknown>) => ({ info: async () => (asked++, info) }) as unknown as Docker;
    await expect(new OverlayVolumes(engine({ SecurityOptions: ['name=seccomp,profile=default', 'name=rootless'] }), {}).check()).rejects.toMatchObject({
      message: expect.stringMatching(/rootful Docker engine/),
      hint: expect.stringMatching(/repo: ro/),
    });
    await expect(new OverlayVolumes(engine({ OSType: 'windows' }), {}).check()).rejects.toThrow(/Linux engine/);
    asked = 0;
    const rootful = new OverlayVolumes(engine({ SecurityOptions: ['name=seccomp,profile=default'], OSType: 'linux' }), {});
    await rootful.check();
    await rootful.check();
    expect(asked).toBe(1);
  });

  it('the merged listing: one group per directory, a child named like the next directory is still a child', () => {
    const out = Buffer.from(['./a', './a/b', './a/x', '', './a/b', './a/b/c', '', ''].join('\0'));
    expect(parseListing(out, ['a', 'a/b'])).toEqual(
      new Map([
        ['a', ['b', 'x']],
        ['a/b', ['c']],
      ]),
    );
    expect(() => parseListing(Buffer.from('./a\0./zzz/q\0\0'), ['a'])).toThrow(/malformed/);
    expect(() => parseListing(Buffer.from(''), ['a'])).toThrow(/missing/);
  });
});
