/**
 * runDispatch with `repo: overlay` against a FAKE sandbox and a fake overlay engine: the container gets the
 * per-dispatch overlay mount instead of a copy, claude runs unwrapped, the patch is built on the host from
 * what the "agent" left in the upper dir, the per-dispatch dirs are removed on every path, and every way the
 * overlay cannot be had is a sandbox error with the hint that says what it needs. No Docker.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig, requireConfig } from '../../src/config/load.js';
import { runDispatch, type DispatchRequest } from '../../src/dispatch/dispatcher.js';
import { OVERLAY_ENGINE_HINT, type OverlayEngine } from '../../src/dispatch/overlay.js';
import { AppError } from '../../src/errors.js';
import type { SandboxOutcome } from '../../src/sandbox/runner.js';
import { openNetworkPolicy } from '../../src/selftest/open-policy.js';
import { FakeOverlayEngine, FakeSandbox, INIT_LINE, outcome, overlayDirsOf, overlayEdits, resultLine, succeeds, type Script } from '../helpers/fake-sandbox.js';

const PREFIX = ['claude', '-p', '--output-format', 'stream-json', '--verbose'];

let root: string;
let configDir: string;
let repo: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-overlay-'));
  configDir = join(root, 'config');
  repo = join(root, 'projects', 'api');
  mkdirSync(join(configDir, 'policies'), { recursive: true });
  mkdirSync(repo, { recursive: true });
  writeFileSync(join(repo, 'README.md'), '# api\r\n');
  writeFileSync(join(repo, 'notes.txt'), 'notes\n');
  writeFileSync(join(configDir, 'policies', 'ov.yaml'), stringify(openNetworkPolicy('agent-dispatch/agent:unit', { repo: 'overlay' })));
  writeFileSync(join(configDir, 'agents.yaml'), stringify({ agents: { ov: { directory: repo, policy: 'ov' } }, groups: {}, settings: { warm_pool: 2 } }));
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fake sandbox with the given overlay engine (or none). */
class OverlaySandbox extends FakeSandbox {
  constructor(engine: OverlayEngine | undefined, ...scripts: Script[]) {
    super(...scripts);
    this.overlay = engine;
  }
}

const agentWrites = (files: Record<string, string>, extra: Partial<SandboxOutcome> = {}) => overlayEdits(files, undefined, extra);
const dirsOf = overlayDirsOf;

const deps = (sandbox: FakeSandbox, job = 'ab'.repeat(16)) => ({ config: requireConfig(loadConfig(join(configDir, 'agents.yaml'))), configDir, env: { PATH: process.env['PATH'] }, sandbox, job });
const req = (fields: Partial<DispatchRequest> = {}): DispatchRequest => ({ agent: 'ov', task: 'Edit the README', ...fields });
const overlayDirsLeft = () => (existsSync(join(configDir, 'overlays')) ? readdirSync(join(configDir, 'overlays')) : []);

describe('repo: overlay', () => {
  it('mounts a per-dispatch kernel overlay of the repo (upper and work in the state dir), runs claude unwrapped, never warm', async () => {
    const sandbox = new OverlaySandbox(new FakeOverlayEngine(), agentWrites({}));
    const job = 'cd'.repeat(16);
    await runDispatch(deps(sandbox, job), req());
    const run = sandbox.last;
    expect(run.cmd.slice(0, 5)).toEqual(PREFIX);
    expect(run.stdin).toBe('Edit the README');
    expect(run.warm).toBeUndefined();
    const { upper, work, mount } = dirsOf(run);
    expect(upper).toBe(join(configDir, 'overlays', job, 'upper'));
    expect(work).toBe(join(configDir, 'overlays', job, 'work'));
    expect(mount).toMatchObject({ Type: 'volume', ReadOnly: false, VolumeOptions: { DriverConfig: { Name: 'local', Options: { type: 'overlay', device: 'overlay' } } } });
    expect(mount.Source).toBeUndefined();
    expect(mount.VolumeOptions!.DriverConfig!.Options['o']).toContain(`lowerdir=${repo},`);
    expect(mount.VolumeOptions!.DriverConfig!.Options['o']).toContain('redirect_dir=off,metacopy=off');
    expect(mount.VolumeOptions!.Labels).toMatchObject({ 'agent-dispatch.agent': 'ov', 'agent-dispatch.job': job, 'agent-dispatch.role': 'overlay' });
    expect(run.spec.HostConfig.Tmpfs).not.toHaveProperty(repo);
    expect(run.spec.Env.join('\n')).not.toContain('OVERLAY');
    expect(statSync(join(configDir, 'overlays')).mode & 0o777).toBe(0o700);
    expect(overlayDirsLeft()).toEqual([]);
  });

  it("the agent's changes come back as a patch built on the host, inline and in a 0600 file; CRs survive; the host repo is untouched", async () => {
    const sandbox = new OverlaySandbox(new FakeOverlayEngine(), agentWrites({ 'README.md': '# API\r\n', 'added.txt': 'new\n' }));
    const job = '12'.repeat(16);
    const result = await runDispatch(deps(sandbox, job), req());
    const file = join(configDir, 'patches', `${job}.patch`);
    expect(result).toMatchObject({ success: true, result: 'edited', patch_file: file });
    expect(result.patch).toContain('diff --git a/README.md b/README.md');
    expect(result.patch).toContain('-# api\r\n+# API\r\n');
    expect(result.patch).toContain('diff --git a/added.txt b/added.txt\nnew file mode 100644');
    expect(readFileSync(file, 'utf8')).toBe(result.patch);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(repo, 'README.md'), 'utf8')).toBe('# api\r\n');
    expect(overlayDirsLeft()).toEqual([]);
  });

  it('no change (or the same bytes written back) → no patch fields', async () => {
    const sandbox = new OverlaySandbox(new FakeOverlayEngine(), agentWrites({ 'notes.txt': 'notes\n' }));
    const result = await runDispatch(deps(sandbox), req());
    expect(result.success).toBe(true);
    expect(result).not.toHaveProperty('patch');
    expect(result).not.toHaveProperty('patch_file');
  });

  it('a patch that cannot be saved is still returned inline, with a note', async () => {
    writeFileSync(join(configDir, 'patches'), 'a file where the patches directory should be');
    const sandbox = new OverlaySandbox(new FakeOverlayEngine(), agentWrites({ 'x.txt': 'x\n' }));
    const result = await runDispatch(deps(sandbox), req());
    expect(result).toMatchObject({ success: true });
    expect(result.patch).toContain('+x');
    expect(result).not.toHaveProperty('patch_file');
    expect(result.hint).toContain('could not be saved');
  });

  it('a non-zero exit after the success event → a failure that still carries the patch', async () => {
    const sandbox = new OverlaySandbox(new FakeOverlayEngine(), agentWrites({ 'x.txt': 'x\n' }, { exitCode: 1 }));
    const result = await runDispatch(deps(sandbox), req());
    expect(result).toMatchObject({ success: false, error_type: 'cli_error', result: 'edited' });
    expect(result.patch).toContain('+x');
    expect(result.error).toBe('claude exited with code 1 after reporting success: edited');
  });

  it('a changed subdirectory is read back through the merged view (an opaque directory hides the lower files)', async () => {
    mkdirSync(join(repo, 'src'));
    writeFileSync(join(repo, 'src', 'old.ts'), 'old\n');
    const engine = new FakeOverlayEngine();
    // The agent removed src/ and made it again: the merged view shows only the new file.
    engine.merged = () => ['new.ts'];
    const sandbox = new OverlaySandbox(engine, agentWrites({ 'src/new.ts': 'new\n' }));
    const result = await runDispatch(deps(sandbox), req());
    expect(engine.calls).toEqual(['check', 'list src']);
    expect(result.patch).toContain('diff --git a/src/new.ts b/src/new.ts\nnew file mode');
    expect(result.patch).toContain('diff --git a/src/old.ts b/src/old.ts\ndeleted file mode');
  });

  it('the old-CLI retry runs in the same overlay, unwrapped', async () => {
    const sandbox = new OverlaySandbox(new FakeOverlayEngine(), () => outcome({ exitCode: 1, stderr: "error: unknown option '--session-id'" }), agentWrites({ 'x.txt': 'x\n' }));
    const result = await runDispatch(deps(sandbox), req());
    expect(sandbox.runs).toHaveLength(2);
    expect(dirsOf(sandbox.runs[0]!).upper).toBe(dirsOf(sandbox.runs[1]!).upper);
    expect(sandbox.last.cmd.slice(0, 5)).toEqual(PREFIX);
    expect(sandbox.last.cmd).not.toContain('--session-id');
    expect(result.patch).toContain('+x');
  });
});

describe('repo: overlay — when there can be no overlay', () => {
  it('a sandbox without an overlay engine: a sandbox error, nothing started', async () => {
    const sandbox = new OverlaySandbox(undefined);
    const result = await runDispatch(deps(sandbox), req());
    expect(result).toMatchObject({ success: false, error_type: 'sandbox', hint: OVERLAY_ENGINE_HINT });
    expect(sandbox.runs).toHaveLength(0);
  });

  it('an engine that cannot (rootless): its reason and hint, nothing started, no dirs left', async () => {
    const refuse = new AppError('SANDBOX_FAILED', 'repo: overlay needs a rootful Docker engine', { hint: 'Use repo: ro' });
    const sandbox = new OverlaySandbox(new FakeOverlayEngine(refuse));
    const result = await runDispatch(deps(sandbox), req());
    expect(result).toMatchObject({ success: false, error_type: 'sandbox', error: 'repo: overlay needs a rootful Docker engine', hint: 'Use repo: ro' });
    expect(sandbox.runs).toHaveLength(0);
    expect(overlayDirsLeft()).toEqual([]);
  });

  it('the engine fails to mount it at start: the overlay hint, no dirs left', async () => {
    const sandbox = new OverlaySandbox(new FakeOverlayEngine(), () => {
      throw new AppError('SANDBOX_FAILED', 'Could not start the container: error while mounting volume: no such file or directory', { hint: 'Run agent-dispatch doctor' });
    });
    const result = await runDispatch(deps(sandbox), req());
    expect(result).toMatchObject({ success: false, error_type: 'sandbox', hint: OVERLAY_ENGINE_HINT });
    expect(overlayDirsLeft()).toEqual([]);
  });

  it('the container ran but the overlay was not mounted from this machine (no work/work): a sandbox error, the answer kept', async () => {
    const sandbox = new OverlaySandbox(new FakeOverlayEngine(), succeeds([INIT_LINE, resultLine({ result: 'edited' })]));
    const result = await runDispatch(deps(sandbox), req());
    expect(result).toMatchObject({ success: false, error_type: 'sandbox', result: 'edited', hint: OVERLAY_ENGINE_HINT });
    expect(result.error).toMatch(/not mounted from this machine/);
    expect(overlayDirsLeft()).toEqual([]);
  });
});
