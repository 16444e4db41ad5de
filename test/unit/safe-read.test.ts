import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_REPO_FILE_BYTES, readRegularFile, readRepoFile, repoEntryKind } from '../../src/project/safe-read.js';
import { useIsolatedSrc } from './isolated-src.js';

const SECRET = '-----BEGIN OPENSSH PRIVATE KEY----- not for the MCP caller';

let root: string;
let repo: string;
let outside: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-safe-read-'));
  repo = join(root, 'repo');
  outside = join(root, 'home', '.ssh');
  mkdirSync(repo);
  mkdirSync(outside, { recursive: true });
  writeFileSync(join(outside, 'id_ed25519'), SECRET);
  writeFileSync(join(outside, 'settings.local.json'), SECRET);
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const text = (r: ReturnType<typeof readRepoFile>) => (r.ok ? r.bytes.toString('utf8') : undefined);

describe('readRepoFile', () => {
  it('reads a regular file inside the repo, at the top level or below it', () => {
    writeFileSync(join(repo, 'README.md'), 'hello\n');
    mkdirSync(join(repo, '.claude'));
    writeFileSync(join(repo, '.claude', 'settings.local.json'), '{}');
    expect(readRepoFile(repo, 'README.md')).toEqual({ ok: true, bytes: Buffer.from('hello\n'), truncated: false });
    expect(text(readRepoFile(repo, '.claude/settings.local.json'))).toBe('{}');
  });

  it('the repo path itself may be a link (only what is below it must not be)', () => {
    writeFileSync(join(repo, 'README.md'), 'via a linked root');
    symlinkSync(repo, join(root, 'repo-link'));
    expect(text(readRepoFile(join(root, 'repo-link'), 'README.md'))).toBe('via a linked root');
  });

  it('a link to a file outside the repo is refused; its content is never returned', () => {
    symlinkSync('../home/.ssh/id_ed25519', join(repo, 'README.md'));
    symlinkSync(join(outside, 'id_ed25519'), join(repo, 'CLAUDE.md'));
    expect(readRepoFile(repo, 'README.md')).toEqual({ ok: false, reason: 'a symbolic link' });
    expect(readRepoFile(repo, 'CLAUDE.md')).toEqual({ ok: false, reason: 'a symbolic link' });
  });

  it('a link is refused even when it stays inside the repo: no link below the repo is followed', () => {
    writeFileSync(join(repo, 'real.md'), 'inside');
    symlinkSync('real.md', join(repo, 'README.md'));
    expect(readRepoFile(repo, 'README.md')).toEqual({ ok: false, reason: 'a symbolic link' });
  });

  it('a file under a linked directory is refused, whether the directory leads out of the repo or not', () => {
    symlinkSync(outside, join(repo, '.claude'));
    expect(readRepoFile(repo, '.claude/settings.local.json')).toEqual({ ok: false, reason: 'a symbolic link' });
    mkdirSync(join(repo, 'real'));
    writeFileSync(join(repo, 'real', 'settings.local.json'), 'inside');
    rmSync(join(repo, '.claude'));
    symlinkSync('real', join(repo, '.claude'));
    expect(readRepoFile(repo, '.claude/settings.local.json')).toEqual({ ok: false, reason: 'a symbolic link' });
  });

  it.each(['../home/.ssh/id_ed25519', 'a/../../home/.ssh/id_ed25519', '..', '.', '', './README.md', 'a//b', '/home/user/.ssh/id_ed25519', '/etc/passwd', '..\\x'])(
    'a path with .., ., an empty component or a leading / is refused: %j',
    (path) => {
      mkdirSync(join(repo, 'a'));
      writeFileSync(join(repo, 'README.md'), 'x');
      expect(readRepoFile(repo, path)).toEqual({ ok: false, reason: 'not a plain path inside the repository' });
    },
  );

  it('.mcp.json -> /dev/zero is refused at once, without reading', () => {
    symlinkSync('/dev/zero', join(repo, '.mcp.json'));
    const started = Date.now();
    expect(readRepoFile(repo, '.mcp.json')).toEqual({ ok: false, reason: 'a symbolic link' });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('a directory, a socket or a missing file is not read', () => {
    mkdirSync(join(repo, 'README.md'));
    expect(readRepoFile(repo, 'README.md')).toEqual({ ok: false, reason: 'not a regular file' });
    expect(readRepoFile(repo, 'missing.md')).toEqual({ ok: false, reason: 'not found' });
    writeFileSync(join(repo, 'file'), 'x');
    expect(readRepoFile(repo, 'file/below')).toEqual({ ok: false, reason: 'not found' });
    expect(readRepoFile(join(root, 'no-repo'), 'README.md')).toEqual({ ok: false, reason: 'the repository is unreadable (ENOENT)' });
  });

  // mknod needs CAP_MKNOD: where the tests do not run as root, this case cannot be set up.
  const canMknod = spawnSync('mknod', [join(tmpdir(), `ad-mknod-probe-${process.pid}`), 'c', '1', '5']).status === 0;
  rmSync(join(tmpdir(), `ad-mknod-probe-${process.pid}`), { force: true });
  it.skipIf(!canMknod)('a character device inside the repo (a copy of /dev/zero) is refused before it is opened', () => {
    expect(spawnSync('mknod', [join(repo, '.mcp.json'), 'c', '1', '5']).status).toBe(0);
    expect(readRepoFile(repo, '.mcp.json')).toEqual({ ok: false, reason: 'not a regular file' });
  });

  it(`a file longer than the bound is truncated to it and says so (default bound ${MAX_REPO_FILE_BYTES} bytes)`, () => {
    writeFileSync(join(repo, 'small-bound'), 'abcdefghij');
    expect(readRepoFile(repo, 'small-bound', 4)).toEqual({ ok: true, bytes: Buffer.from('abcd'), truncated: true });
    expect(readRepoFile(repo, 'small-bound', 10)).toEqual({ ok: true, bytes: Buffer.from('abcdefghij'), truncated: false });
    writeFileSync(join(repo, 'README.md'), Buffer.alloc(3 * MAX_REPO_FILE_BYTES, 'a'));
    const big = readRepoFile(repo, 'README.md');
    expect(big.ok && big.bytes.length).toBe(MAX_REPO_FILE_BYTES);
    expect(big.ok && big.truncated).toBe(true);
    expect(MAX_REPO_FILE_BYTES).toBe(1024 * 1024);
  });

  it('never returns a file outside the repo while the agent swaps a directory for a link to it (race)', async () => {
    // The walk checks each component, then opens: a directory replaced by a link in between would be followed
    // by the open. A child process swaps `sub` between a real directory and a link out as fast as it can.
    mkdirSync(join(repo, 'dir'));
    writeFileSync(join(repo, 'dir', 'settings.local.json'), 'inside');
    symlinkSync(outside, join(repo, 'link'));
    const swapper = spawn(process.execPath, [
      '-e',
      `const fs = require('node:fs'); const [d, l, s] = process.argv.slice(1);
       for (;;) { for (const x of [d, l]) { try { fs.renameSync(x, s); fs.renameSync(s, x); } catch {} } }`,
      join(repo, 'dir'),
      join(repo, 'link'),
      join(repo, 'sub'),
    ]);
    try {
      await new Promise((r) => setTimeout(r, 100));
      const seen = new Map<string, number>();
      const until = Date.now() + 3000;
      while (Date.now() < until) {
        const r = readRepoFile(repo, 'sub/settings.local.json');
        const key = r.ok ? r.bytes.toString('utf8') : r.reason;
        seen.set(key, (seen.get(key) ?? 0) + 1);
      }
      expect(seen.get('inside') ?? 0).toBeGreaterThan(0);
      expect(seen.has(SECRET)).toBe(false);
    } finally {
      swapper.kill('SIGKILL');
    }
  });
});

describe('repoEntryKind (top-level detection, nothing read)', () => {
  it('a regular file or directory is itself; a link counts as its target only inside the repo', () => {
    writeFileSync(join(repo, 'Dockerfile'), '');
    mkdirSync(join(repo, 'prisma-real'));
    symlinkSync('prisma-real', join(repo, 'prisma'));
    symlinkSync('Dockerfile', join(repo, 'Containerfile'));
    symlinkSync(outside, join(repo, 'migrations'));
    symlinkSync(join(outside, 'id_ed25519'), join(repo, 'go.mod'));
    symlinkSync('/dev/zero', join(repo, '.mcp.json'));
    symlinkSync(join(repo, 'nowhere'), join(repo, 'Cargo.toml'));
    symlinkSync('loop', join(repo, 'loop'));
    expect(repoEntryKind(repo, 'Dockerfile')).toBe('file');
    expect(repoEntryKind(repo, 'prisma-real')).toBe('dir');
    expect(repoEntryKind(repo, 'prisma')).toBe('dir');
    expect(repoEntryKind(repo, 'Containerfile')).toBe('file');
    for (const name of ['migrations', 'go.mod', '.mcp.json', 'Cargo.toml', 'loop', 'missing', '..', '.', '', 'prisma-real/x']) {
      expect(repoEntryKind(repo, name), name).toBeUndefined();
    }
  });

  it('a FIFO is neither a file nor a directory', () => {
    spawnSync('mkfifo', [join(repo, 'README.md')]);
    expect(repoEntryKind(repo, 'README.md')).toBeUndefined();
  });
});

describe('readRegularFile (a path the user named, such as a policy file)', () => {
  it('reads a regular file, through links', () => {
    writeFileSync(join(root, 'policy.yaml'), 'network: {}\n');
    symlinkSync(join(root, 'policy.yaml'), join(root, 'linked.yaml'));
    expect(readRegularFile(join(root, 'linked.yaml')).toString()).toBe('network: {}\n');
  });

  it('refuses a device, a directory and a file over the bound, with a reason', () => {
    expect(() => readRegularFile('/dev/zero')).toThrow('it is not a regular file');
    expect(() => readRegularFile(root)).toThrow('it is not a regular file');
    writeFileSync(join(root, 'big.yaml'), 'x'.repeat(100));
    expect(() => readRegularFile(join(root, 'big.yaml'), 10)).toThrow('it is larger than 10 bytes');
  });
});

describe('a FIFO never blocks the reader (run in a child process under a timeout)', () => {
  const src = useIsolatedSrc();

  it('readRepoFile and readRegularFile on a FIFO return within 1 s', () => {
    spawnSync('mkfifo', [join(repo, 'README.md')]);
    const run = src().run(
      `import { readRegularFile, readRepoFile } from '@src/project/safe-read.js';
       const started = Date.now();
       const repoRead = readRepoFile(${JSON.stringify(repo)}, 'README.md');
       let named; try { readRegularFile(${JSON.stringify(join(repo, 'README.md'))}); } catch (e) { named = e.message; }
       console.log(JSON.stringify({ repoRead, named, ms: Date.now() - started }));`,
      10_000,
    );
    expect(run.timedOut, run.stderr).toBe(false);
    expect(JSON.parse(run.stdout)).toEqual({ repoRead: { ok: false, reason: 'not a regular file' }, named: 'it is not a regular file', ms: expect.any(Number) });
    expect(JSON.parse(run.stdout).ms).toBeLessThan(1000);
  });

  it('a policy file swapped for a FIFO (say in a repo the agent writes) is an invalid policy, within 1 s', () => {
    const policy = join(repo, 'agent-policy.yaml');
    spawnSync('mkfifo', [policy]);
    const run = src().run(
      `import { loadPolicy } from '@src/policy/load.js';
       const started = Date.now();
       const load = loadPolicy(${JSON.stringify(policy)}, ${JSON.stringify(root)});
       console.log(JSON.stringify({ kind: load.kind, detail: load.detail, ms: Date.now() - started }));`,
      10_000,
    );
    expect(run.timedOut, run.stderr).toBe(false);
    expect(JSON.parse(run.stdout)).toEqual({ kind: 'invalid', detail: 'could not be read: it is not a regular file', ms: expect.any(Number) });
    expect(JSON.parse(run.stdout).ms).toBeLessThan(1000);
  });
});
