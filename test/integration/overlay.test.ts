/**
 * repo: overlay end to end: the real claude in the test agent image edits its repo through a kernel overlay;
 * the host repo stays as it was, the patch is built on the host from the upper dir, and `agent-dispatch apply`
 * puts it into the repo. A hostile agent's attempts to steer the patch (git config, attributes, symlinks out
 * of the repo) only show up as the files they are.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { applyCommand } from '../../src/cli/commands/apply.js';
import { loadConfig, requireConfig } from '../../src/config/load.js';
import { jobsDir } from '../../src/config/paths.js';
import { JobStore } from '../../src/dispatch/job-store.js';
import { parsePatch } from '../../src/dispatch/overlay-apply.js';
import { runDispatch } from '../../src/dispatch/dispatcher.js';
import { OVERLAY_ENGINE_HINT } from '../../src/dispatch/overlay.js';
import { DispatchService } from '../../src/dispatch/service.js';
import type { DispatchResult } from '../../src/dispatch/types.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { createSandboxRunner, type SandboxRun } from '../../src/sandbox/runner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { createFixture, openTestPolicy, TEST_AGENT_IMAGE, tearDown, type Fixture } from '../helpers/dispatch-fixture.js';
import { stringify } from 'yaml';
import { cleanupTestResources, dockerClient, requireLocalImage, skipDocker, TEST_LABEL, testLabels, testRunId } from '../helpers/docker.js';

const TIMEOUT = 120_000;
const BINARY = Buffer.from([0, 1, 2, 255, 254, 0, 10, 13, 128]);

describe.skipIf(skipDocker)('repo: overlay through a kernel overlay, and agent-dispatch apply', () => {
  const docker = dockerClient();
  const runId = testRunId();
  let fx: Fixture;
  let service: DispatchService;
  const agent = `ov-${runId}`;
  const repos: Record<string, string> = {};

  beforeAll(async () => {
    await requireLocalImage(docker, TEST_AGENT_IMAGE);
    fx = await createFixture(docker, runId);
    for (const name of ['clean', 'hostile']) repos[name] = makeRepo(fx, name);
    fx.policy('overlay', openTestPolicy({ repo: 'overlay', tools: { permission_mode: 'acceptEdits', allow: ['Bash', 'Read', 'Edit', 'Write'], deny: [] } }));
    // The hostile agent may run anything (its policy lets claude's own permission checks pass every command).
    fx.policy('overlay-any', openTestPolicy({ repo: 'overlay', tools: { permission_mode: 'bypassPermissions', allow: [], deny: [] } }));
    fx.agents({
      [`${agent}-clean`]: { directory: repos['clean'], policy: 'overlay' },
      [`${agent}-hostile`]: { directory: repos['hostile'], policy: 'overlay-any', permission_mode: 'bypassPermissions' },
    });
    service = new DispatchService(fx.env);
  }, TIMEOUT);

  afterAll(() => tearDown({ service, docker, runId, fx }), TIMEOUT);

  const dispatch = (name: string, script: string): Promise<DispatchResult> =>
    service.dispatch(requireConfig(loadConfig(fx.configPath)), { agent: `${agent}-${name}`, task: DIRECTIVE.bash(script) });
  const refOf = async (name: string, result: DispatchResult) => (await new JobStore(jobsDir(fx.env)).createCompleted({ agent: `${agent}-${name}`, task: 't', result })).id;
  const apply = (argv: string[]) => applyCommand(argv, fx.env);

  async function leftovers(): Promise<{ containers: number; volumes: number; overlayDirs: string[] }> {
    const containers = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`, LABELS.job] } });
    const { Volumes } = await docker.listVolumes({ filters: JSON.stringify({ label: [`${TEST_LABEL}=${runId}`, 'agent-dispatch.role=overlay'] }) });
    const dir = join(fx.configDir, 'overlays');
    return { containers: containers.length, volumes: (Volumes ?? []).length, overlayDirs: existsSync(dir) ? readdirSync(dir) : [] };
  }

  it('modify, add, delete, a binary file and a directory replaced: the host is untouched, the patch holds exactly those, apply applies it once', async () => {
    const repo = repos['clean']!;
    const before = snapshot(repo);
    const script = [
      'echo changed-by-agent >> notes.txt',
      'echo fresh > added.txt',
      'rm doomed.txt',
      "printf '\\000\\001\\002\\377\\376\\000\\n\\r\\200' > new.bin",
      "printf '\\377' >> img.bin",
      // The directory is removed and made again: the kernel makes it opaque, its old files are gone.
      'rm -rf sub/dir && mkdir sub/dir && echo fresh > sub/dir/fresh.txt',
      'echo edited',
    ].join(' && ');
    const result = await dispatch('clean', script);
    expect(result.success, JSON.stringify(result)).toBe(true);
    expect(snapshot(repo)).toEqual(before);
    expect(await leftovers()).toEqual({ containers: 0, volumes: 0, overlayDirs: [] });

    const entries = parsePatch(readFileSync(result.patch_file!));
    expect(entries.map((e) => `${e.change[0]} ${e.path}${e.binary ? ' bin' : ''}`)).toEqual([
      'a added.txt',
      'd doomed.txt',
      'm img.bin bin',
      'a new.bin bin',
      'm notes.txt',
      'a sub/dir/fresh.txt',
      'd sub/dir/gone.txt',
      'd sub/dir/keep.txt',
    ]);
    expect(result.patch).toContain('+changed-by-agent');

    const ref = await refOf('clean', result);
    let printed = '';
    const log = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => Boolean((printed += String(chunk))));
    try {
      expect(await apply([ref, '--check'])).toBe(0);
      expect(snapshot(repo)).toEqual(before);
      expect(await apply([ref])).toBe(0);
    } finally {
      log.mockRestore();
    }
    expect(printed).toContain('A new.bin (binary)');
    expect(printed).toContain('3 added, 2 modified, 3 deleted (2 binary)');
    expect(readFileSync(join(repo, 'notes.txt'), 'utf8')).toBe('hello from the repo\nchanged-by-agent\n');
    expect(readFileSync(join(repo, 'new.bin'))).toEqual(BINARY);
    expect(readFileSync(join(repo, 'img.bin'))).toEqual(Buffer.concat([BINARY, Buffer.from([255])]));
    expect(existsSync(join(repo, 'doomed.txt'))).toBe(false);
    expect(readdirSync(join(repo, 'sub', 'dir'))).toEqual(['fresh.txt']);
    // The repo's git sees exactly the agent's changes.
    const status = spawnSync('git', ['-c', 'safe.directory=*', 'status', '--porcelain'], { cwd: repo, encoding: 'utf8' }).stdout.split('\n').filter(Boolean).sort();
    expect(status).toEqual([' D doomed.txt', ' D sub/dir/gone.txt', ' D sub/dir/keep.txt', ' M img.bin', ' M notes.txt', '?? added.txt', '?? new.bin', '?? sub/dir/fresh.txt']);

    const silenced = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await expect(apply([ref, '--check'])).rejects.toThrow(/does not apply/);
    } finally {
      silenced.mockRestore();
    }
  }, TIMEOUT);

  it('forging: .git/config (diff.external, textconv), attributes, symlinks to /etc/passwd and ../outside are reported as the files they are; apply refuses', async () => {
    const repo = repos['hostile']!;
    const before = snapshot(repo);
    const marker = `/tmp/agent-dispatch-pwned-${runId}`;
    const script = [
      `printf '[diff]\\n\\texternal = touch ${marker}\\n[diff "evil"]\\n\\ttextconv = touch ${marker}\\n[core]\\n\\tattributesFile = /repo-attrs\\n' >> .git/config`,
      "mkdir -p .git/info && echo '* diff=evil' > .git/info/attributes",
      "echo '* diff=evil' > .gitattributes",
      'ln -s /etc/passwd pw',
      'ln -s ../outside out',
      'echo changed >> notes.txt',
      'mkfifo pipe',
      'echo forged',
    ].join(' && ');
    const result = await dispatch('hostile', script);
    expect(result.success, JSON.stringify(result)).toBe(true);
    expect(snapshot(repo)).toEqual(before);
    expect(existsSync(marker)).toBe(false);
    expect(result.patch_file, JSON.stringify(result)).toBeDefined();

    const patch = readFileSync(result.patch_file!, 'utf8');
    expect(parsePatch(Buffer.from(patch)).map((e) => `${e.change[0]} ${e.path}${e.symlinkTarget !== undefined ? ` -> ${e.symlinkTarget}` : ''}`)).toEqual([
      'a .gitattributes',
      'm notes.txt',
      'a out -> ../outside',
      'a pw -> /etc/passwd',
    ]);
    expect(patch).toContain('new file mode 120000');
    expect(patch).not.toMatch(/root:x:0:0|\.git\/|forged/);
    expect(result.hint).toMatch(/\.git \(under \.git/);
    expect(result.hint).toMatch(/pipe \(a FIFO/);

    const ref = await refOf('hostile', result);
    const log = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await expect(apply([ref, '--check'])).rejects.toThrow(/out: a symlink to \.\.\/outside, outside the repo\n\s*pw: a symlink to \/etc\/passwd, outside the repo/);
    } finally {
      log.mockRestore();
    }
    expect(snapshot(repo)).toEqual(before);
  }, TIMEOUT);

  it('the engine cannot mount the overlay: a sandbox error with the overlay hint; no container, volume or overlay dir is left', async () => {
    const runner = createSandboxRunner({ runDir: join(fx.root, 'run'), extraLabels: testLabels(runId) }, fx.env);
    // As an engine on another machine would see it: the upper dir the options name does not exist there.
    const elsewhere = (spec: SandboxRun['spec']): SandboxRun['spec'] => ({
      ...spec,
      HostConfig: {
        ...spec.HostConfig,
        Mounts: spec.HostConfig.Mounts.map((m) => {
          const options = m.VolumeOptions?.DriverConfig?.Options;
          if (!options?.['o']) return m;
          return { ...m, VolumeOptions: { ...m.VolumeOptions, DriverConfig: { Name: 'local', Options: { ...options, o: options['o'].replace(/upperdir=[^,]*/, 'upperdir=/nonexistent/upper') } } } };
        }),
      },
    });
    const sandbox = { run: (r: SandboxRun) => runner.run({ ...r, spec: elsewhere(r.spec) }), overlay: runner.overlay };
    try {
      const config = requireConfig(loadConfig(fx.configPath));
      const result = await runDispatch({ config, configDir: fx.configDir, env: fx.env, sandbox }, { agent: `${agent}-clean`, task: DIRECTIVE.reply('never') });
      expect(result).toMatchObject({ success: false, error_type: 'sandbox', hint: OVERLAY_ENGINE_HINT });
      expect(result.error).toMatch(/mount/i);
      expect(await leftovers()).toEqual({ containers: 0, volumes: 0, overlayDirs: [] });
    } finally {
      await runner.shutdown();
    }
  }, TIMEOUT);
});

/**
 * The usual deployment: the server runs as the repo owner, not root. The kernel leaves a root-owned 000
 * work/work such a server cannot remove (a helper container does), and an agent that makes its own files and
 * directories unreadable (mode 000) must not stop the patch: the server owns them and reads them back.
 * Runs the built dispatcher (dist/) as uid 1000 in the docker group; only where the tests run as root.
 */
const DIST_DISPATCHER = join(import.meta.dirname, '..', '..', 'dist', 'dispatch', 'dispatcher.js');
const canDropRoot = process.getuid?.() === 0 && existsSync(DIST_DISPATCHER) && spawnSync('getent', ['group', 'docker']).status === 0;

describe.skipIf(skipDocker || !canDropRoot)('repo: overlay with a server that is not root', () => {
  const docker = dockerClient();
  const runId = testRunId();
  let root: string;
  let app: string;

  beforeAll(async () => {
    await requireLocalImage(docker, TEST_AGENT_IMAGE);
    root = mkdtempSync(join('/tmp', 'agent-dispatch-nonroot-'));
    app = stageReadableApp();
  }, TIMEOUT);

  afterAll(async () => {
    await cleanupTestResources(docker, runId);
    rmSync(root, { recursive: true, force: true });
    if (app) rmSync(app, { recursive: true, force: true });
  }, TIMEOUT);

  it('the patch is built from 000-mode files and dirs, the root-owned work dir is removed by the helper, nothing is left', async () => {
    const repo = join(root, 'repo');
    mkdirSync(join(repo, 'sub', 'dir'), { recursive: true });
    writeFileSync(join(repo, 'notes.txt'), 'notes\n');
    writeFileSync(join(repo, 'sub', 'dir', 'old.txt'), 'old\n');
    const configDir = join(root, 'config');
    mkdirSync(join(configDir, 'policies'), { recursive: true });
    writeFileSync(join(configDir, 'policies', 'ov.yaml'), stringify(openTestPolicy({ repo: 'overlay' })));
    writeFileSync(join(configDir, 'agents.yaml'), stringify({ agents: { ov: { directory: repo, policy: 'ov' } }, groups: {}, settings: {} }));
    chownTree(root, 1000, 1000);
    const step = [
      'cat >/dev/null',
      'echo more >> notes.txt',
      'echo secret > locked.txt && chmod 000 locked.txt',
      'mkdir hidden && echo in > hidden/f.txt && chmod 000 hidden',
      'rm -rf sub/dir && mkdir sub/dir && echo new > sub/dir/new.txt',
      `echo '${JSON.stringify({ type: 'result', subtype: 'success', is_error: false, result: 'ok', session_id: '00000000-0000-4000-8000-000000000001' })}'`,
    ].join(' && ');
    const script = `
      import { loadConfig, requireConfig } from '${join(app, 'dist', 'config', 'load.js')}';
      import { runDispatch } from '${join(app, 'dist', 'dispatch', 'dispatcher.js')}';
      import { createSandboxRunner } from '${join(app, 'dist', 'sandbox', 'runner.js')}';
      import { readdirSync } from 'node:fs';
      const runner = createSandboxRunner({ runDir: '${join(configDir, 'run')}', extraLabels: ${JSON.stringify(testLabels(runId))} }, process.env);
      const sandbox = { run: (r) => runner.run({ ...r, cmd: ['/bin/sh', '-c', ${JSON.stringify(step)}] }), overlay: runner.overlay };
      const config = requireConfig(loadConfig('${join(configDir, 'agents.yaml')}'));
      const result = await runDispatch({ config, configDir: '${configDir}', env: { PATH: process.env.PATH }, sandbox }, { agent: 'ov', task: 't' });
      await runner.shutdown();
      console.log(JSON.stringify({ uid: process.getuid(), result, left: readdirSync('${join(configDir, 'overlays')}') }));
    `;
    writeFileSync(join(root, 'child.mjs'), script);
    const child = spawnSync('setpriv', ['--reuid', '1000', '--regid', '1000', '--groups', String(dockerGid()), 'node', join(root, 'child.mjs')], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'], HOME: root, ...(process.env['DOCKER_HOST'] ? { DOCKER_HOST: process.env['DOCKER_HOST'] } : {}) },
      timeout: TIMEOUT - 10_000,
    });
    expect(child.status, child.stderr).toBe(0);
    const { uid, result, left } = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as { uid: number; result: DispatchResult; left: string[] };
    expect(uid).toBe(1000);
    expect(result.success, JSON.stringify(result)).toBe(true);
    expect(parsePatch(Buffer.from(result.patch!)).map((e) => `${e.change[0]} ${e.path}`)).toEqual(['a hidden/f.txt', 'a locked.txt', 'm notes.txt', 'a sub/dir/new.txt', 'd sub/dir/old.txt']);
    expect(result.patch).toContain('+secret');
    expect(left).toEqual([]);
    expect(readFileSync(join(repo, 'notes.txt'), 'utf8')).toBe('notes\n');
  }, TIMEOUT);
});

/**
 * The built program where uid 1000 can read it: the checkout may sit under a directory only root can enter
 * (a CI clone in a 0700 temp dir). dist and package.json are copied; node_modules is hard-linked (same
 * filesystem), else copied. Nothing in the checkout changes owner.
 */
function stageReadableApp(): string {
  const checkout = join(import.meta.dirname, '..', '..');
  const app = mkdtempSync(join('/tmp', 'agent-dispatch-nonroot-app-'));
  chmodSync(app, 0o755);
  cpSync(join(checkout, 'dist'), join(app, 'dist'), { recursive: true });
  cpSync(join(checkout, 'package.json'), join(app, 'package.json'));
  if (spawnSync('cp', ['-al', join(checkout, 'node_modules'), join(app, 'node_modules')]).status !== 0) {
    rmSync(join(app, 'node_modules'), { recursive: true, force: true });
    cpSync(join(checkout, 'node_modules'), join(app, 'node_modules'), { recursive: true });
  }
  return app;
}

function dockerGid(): number {
  return Number(spawnSync('getent', ['group', 'docker'], { encoding: 'utf8' }).stdout.split(':')[2]);
}

/** A git repo with text, binary and nested files, owned by the container user when the tests run as root. */
function makeRepo(fx: Fixture, name: string): string {
  const repo = fx.repo(name, { 'README.md': `# ${name}\n`, 'notes.txt': 'hello from the repo\n', 'doomed.txt': 'delete me\n' });
  writeFileSync(join(repo, 'img.bin'), BINARY);
  mkdirSync(join(repo, 'sub', 'dir'), { recursive: true });
  writeFileSync(join(repo, 'sub', 'dir', 'keep.txt'), 'keep\n');
  writeFileSync(join(repo, 'sub', 'dir', 'gone.txt'), 'gone\n');
  writeFileSync(join(repo, 'sub', 'top.txt'), 'top\n');
  const git = (...args: string[]) => {
    const run = spawnSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd: repo, encoding: 'utf8', env: { PATH: process.env['PATH'], HOME: fx.root, GIT_CONFIG_NOSYSTEM: '1' } });
    if (run.status !== 0) throw new Error(run.stderr);
  };
  git('init', '-q');
  git('add', '-A');
  git('commit', '-q', '-m', 'base');
  if (process.getuid?.() === 0) chownTree(repo, 1000, 1000);
  return repo;
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  if (!lstatSync(path).isDirectory()) return;
  for (const name of readdirSync(path)) chownTree(join(path, name), uid, gid);
}

/** Every entry under `root` (the .git dir included) with its type, mode and content hash. */
function snapshot(root: string, rel = ''): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(root, rel))) {
    const path = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(root, path));
    if (st.isDirectory()) Object.assign(out, { [path]: `dir ${st.mode.toString(8)}` }, snapshot(root, path));
    else if (st.isSymbolicLink()) out[path] = `link ${readlinkSync(join(root, path))}`;
    else out[path] = `file ${st.mode.toString(8)} ${createHash('sha256').update(readFileSync(join(root, path))).digest('hex')}`;
  }
  return out;
}
