/**
 * The sandbox runner against a real engine, with the base node image standing in for the agent image:
 * stdin in, demultiplexed stdout/stderr out, wall-clock kill of the whole tree, cancel, typed errors,
 * the managed-settings mount, the per-uid session volume, and no container left behind on any path.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { agentSchema, settingsSchema } from '../../src/config/schema.js';
import { compileSandbox, layout, loadPolicy, type CompiledSandbox } from '../../src/policy/index.js';
import { LABELS, pidNamespace, serverIdentity } from '../../src/sandbox/owner.js';
import { initCommand } from '../../src/sandbox/agent-init.js';
import { AttachedContainer } from '../../src/sandbox/container-io.js';
import { reapOrphans } from '../../src/sandbox/reaper.js';
import { SandboxRunner, type SandboxRun } from '../../src/sandbox/runner.js';
import { NODE_IMAGE, TEST_LABEL, cleanupTestResources, dockerClient, engineVolumes, skipDocker, testLabels, testRunId } from '../helpers/docker.js';

const TIMEOUT = 60_000;

describe.skipIf(skipDocker)('sandbox runner on a real engine', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const root = mkdtempSync(join('/tmp', 'agent-dispatch-itest-runner-'));
  const runner = new SandboxRunner(docker, { runDir: join(root, 'run'), extraLabels: testLabels(runId) });

  afterAll(async () => {
    await cleanupTestResources(docker, runId);
    rmSync(root, { recursive: true, force: true });
  });

  function compiled(suffix: string, repoOwner?: { uid: number; gid: number }): CompiledSandbox {
    const loaded = loadPolicy('default', join(root, 'no-user-policies'));
    if (loaded.kind !== 'ok') throw new Error('preset default did not load');
    return compileSandbox({
      agentName: `itest-${runId}-${suffix}`,
      agent: agentSchema.parse({ directory: root }),
      settings: settingsSchema.parse({}),
      // The runner itself, without the egress gateway (test/integration/egress-gateway.test.ts covers that path).
      policy: { ...loaded.policy, network: { mode: 'open', allow: [] }, credentials: 'env', ...(repoOwner ? { repo: 'rw' as const } : {}) },
      policyRef: 'default',
      policyHash: loaded.hash,
      hostEnv: {},
      depth: 0,
      ...(repoOwner ? { repoOwner } : {}),
    });
  }

  function request(cmd: string[], overrides: Partial<SandboxRun> = {}, suffix = 'run'): SandboxRun {
    const c = compiled(suffix);
    return { spec: { ...c.container, Image: NODE_IMAGE }, cmd, stdin: '', managedSettings: c.managedSettings, job: `job-${suffix}`, timeoutMs: 30_000, ...overrides };
  }

  async function containersOf(job: string): Promise<number> {
    const list = await docker.listContainers({ all: true, filters: { label: [`${LABELS.job}=${job}`, `${TEST_LABEL}=${runId}`] } });
    return list.length;
  }

  it('feeds stdin, separates stdout from stderr, reports the exit code and removes the container', async () => {
    const lines: string[] = [];
    const outcome = await runner.run(
      request(['sh', '-c', 'cat; echo; echo to-stderr >&2; exit 3'], { stdin: 'line one\nline two', job: 'job-io', onStdoutLine: (l) => lines.push(l) }),
    );
    expect(outcome.exitCode).toBe(3);
    expect(outcome.stdoutLines).toEqual(['line one', 'line two']);
    expect(lines).toEqual(['line one', 'line two']);
    expect(outcome.stderr).toBe('to-stderr\n');
    expect(outcome.timedOut).toBe(false);
    expect(await containersOf('job-io')).toBe(0);
  }, TIMEOUT);

  it('a run that writes past its session volume quota is stopped, and the volume is pruned back under it', async () => {
    const small = new SandboxRunner(docker, { runDir: join(root, 'run-quota'), extraLabels: testLabels(runId), sessionQuotaMb: 8 });
    const run = request(['sh', '-c', `i=0; while [ $i -lt 40 ]; do dd if=/dev/zero of=${layout.CLAUDE_SESSIONS_DIR}/f$i bs=1M count=1 2>/dev/null; i=$((i+1)); sleep 0.1; done; echo wrote-all`], { job: 'job-quota' }, 'quota');
    const outcome = await small.run(run);
    expect(outcome.sessionQuota).toMatchObject({ capBytes: 8 * 1024 * 1024 });
    expect(outcome.stdoutLines).not.toContain('wrote-all');
    const volume = run.spec.HostConfig.Mounts.find((m) => m.Target === layout.CLAUDE_SESSIONS_DIR)!.Source!;
    expect((await engineVolumes(docker)).find((v) => v.Name === volume)!.UsageData!.Size).toBeLessThanOrEqual(8 * 1024 * 1024);
    expect(await containersOf('job-quota')).toBe(0);
  }, TIMEOUT);

  it('a run that writes past the quota faster than the poll and exits: the volume is pruned right after', async () => {
    const small = new SandboxRunner(docker, { runDir: join(root, 'run-quota-fast'), extraLabels: testLabels(runId), sessionQuotaMb: 8 });
    const run = request(['sh', '-c', `dd if=/dev/zero of=${layout.CLAUDE_SESSIONS_DIR}/a bs=1M count=6 2>/dev/null; dd if=/dev/zero of=${layout.CLAUDE_SESSIONS_DIR}/b bs=1M count=6 2>/dev/null; echo done`], { job: 'job-quota-fast' }, 'quota-fast');
    const outcome = await small.run(run);
    expect(outcome.stdoutLines).toContain('done');
    const volume = run.spec.HostConfig.Mounts.find((m) => m.Target === layout.CLAUDE_SESSIONS_DIR)!.Source!;
    const size = async () => (await engineVolumes(docker)).find((v) => v.Name === volume)!.UsageData!.Size!;
    await vi.waitFor(async () => expect(await size()).toBeLessThanOrEqual(8 * 1024 * 1024), { timeout: 10_000, interval: 250 });
    await small.shutdown();
  }, TIMEOUT);

  it('a run a pre-started sandbox could serve gets its input after one newline (claude waits for it then); others byte for byte', async () => {
    const warm = { command: () => ['cat'], pool: { size: 1, idle_minutes: 10, memory_mb: 1024 } };
    const primed = await runner.run(request(['cat'], { stdin: 'the prompt', job: 'job-primed', warm }));
    expect(primed.stdoutLines).toEqual(['', 'the prompt']);
    expect(primed.sessionId).toBeUndefined();
    expect(await containersOf('job-primed')).toBe(0);
  }, TIMEOUT);

  it('a container whose server connection goes ends by itself and the engine removes it, idle or running', async () => {
    const start = async (cmd: string[]) => {
      const container = await docker.createContainer({
        Image: NODE_IMAGE,
        Cmd: initCommand(cmd, false),
        Labels: testLabels(runId),
        OpenStdin: true,
        StdinOnce: true,
        AttachStdin: true,
        HostConfig: { Init: true, AutoRemove: true },
      });
      return AttachedContainer.start(container, { image: NODE_IMAGE, stepMs: () => 10_000 });
    };
    const gone = async (id: string) => docker.getContainer(id).inspect().then(() => false, (error: { statusCode?: number }) => error.statusCode === 404);
    const idle = await start(['sleep', '300']);
    const running = await start(['sh', '-c', 'cat >/dev/null; echo started; sleep 300']);
    const fed = running.feed({ stdin: 'input', deadline: Date.now() + 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const dropped = Date.now();
    idle.detach();
    running.detach();
    for (const attached of [idle, running]) {
      while (!(await gone(attached.container.id))) {
        expect(Date.now() - dropped).toBeLessThan(5000);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    expect((await fed).exitCode).toBe(137);
  }, TIMEOUT);

  it('mounts the managed settings read-only where Claude Code reads them', async () => {
    const c = compiled('settings');
    const outcome = await runner.run({
      ...request(['sh', '-c', `cat ${layout.MANAGED_SETTINGS_PATH}; echo; echo x > ${layout.MANAGED_SETTINGS_PATH} || echo refused`]),
      managedSettings: c.managedSettings,
      job: 'job-settings',
    });
    expect(JSON.parse(outcome.stdoutLines[0]!)).toEqual(JSON.parse(JSON.stringify(c.managedSettings)));
    expect(outcome.stdoutLines).toContain('refused');
  }, TIMEOUT);

  it('kills the whole tree at the deadline: a backgrounded child does not keep the dispatch alive', async () => {
    const started = Date.now();
    const outcome = await runner.run(request(['sh', '-c', '(sleep 300 &) ; echo started; sleep 300'], { timeoutMs: 1500, job: 'job-timeout' }));
    expect(outcome.timedOut).toBe(true);
    expect(outcome.exitCode).toBeNull();
    expect(outcome.stdoutLines).toEqual(['started']);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await containersOf('job-timeout')).toBe(0);
  }, TIMEOUT);

  it('a cancel kills the container and is reported as cancelled', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 1000);
    const outcome = await runner.run(request(['sleep', '300'], { signal: controller.signal, job: 'job-cancel' }));
    expect(outcome.cancelled).toBe(true);
    expect(outcome.timedOut).toBe(false);
    expect(await containersOf('job-cancel')).toBe(0);
  }, TIMEOUT);

  it('a missing image is IMAGE_NOT_FOUND naming the build command, and nothing is created', async () => {
    const req = request(['true'], { job: 'job-noimage' });
    await expect(runner.run({ ...req, spec: { ...req.spec, Image: `agent-dispatch/missing-${runId}:latest` } })).rejects.toMatchObject({
      code: 'IMAGE_NOT_FOUND',
      hint: expect.stringContaining('agent-dispatch image build'),
    });
    expect(await containersOf('job-noimage')).toBe(0);
  }, TIMEOUT);

  it('a spec routed through the gateway but given no allowlist is refused before anything is created', async () => {
    const loaded = loadPolicy('default', join(root, 'no-user-policies'));
    if (loaded.kind !== 'ok') throw new Error('preset default did not load');
    const gated = compileSandbox({
      agentName: `itest-${runId}-gated`,
      agent: agentSchema.parse({ directory: root }),
      settings: settingsSchema.parse({}),
      policy: loaded.policy,
      policyRef: 'default',
      policyHash: loaded.hash,
      hostEnv: {},
      depth: 0,
    });
    const req = request(['true'], { job: 'job-gated' });
    await expect(runner.run({ ...req, spec: { ...gated.container, Image: NODE_IMAGE } })).rejects.toMatchObject({ code: 'SANDBOX_FAILED', message: expect.stringContaining('no allowlist') });
    expect(await containersOf('job-gated')).toBe(0);
  }, TIMEOUT);

  it('a container the engine refuses to create is SANDBOX_FAILED and nothing is left', async () => {
    const req = request(['true'], { job: 'job-nostart' });
    const missing = { Type: 'bind' as const, Source: join(root, 'no-such-dir'), Target: '/x', ReadOnly: true };
    const spec = { ...req.spec, HostConfig: { ...req.spec.HostConfig, Mounts: [...req.spec.HostConfig.Mounts, missing] } };
    await expect(runner.run({ ...req, spec })).rejects.toMatchObject({ code: 'SANDBOX_FAILED', message: expect.stringContaining('no-such-dir') });
    expect(await containersOf('job-nostart')).toBe(0);
  }, TIMEOUT);

  it('a program that cannot be executed is exit 127 with the init process saying why', async () => {
    const outcome = await runner.run(request(['/no/such/program'], { job: 'job-noexec' }));
    expect(outcome.exitCode).toBe(127);
    expect(outcome.stderr).toContain('/no/such/program');
    expect(await containersOf('job-noexec')).toBe(0);
  }, TIMEOUT);

  it('an unreachable engine is DOCKER_UNAVAILABLE', async () => {
    const Docker = (await import('dockerode')).default;
    const dead = new SandboxRunner(new Docker({ socketPath: join(root, 'no-docker.sock') }), { runDir: join(root, 'run') });
    await expect(dead.run(request(['true']))).rejects.toMatchObject({ code: 'DOCKER_UNAVAILABLE' });
  }, TIMEOUT);

  it('gives a new session volume to the container user, also when that is the repo owner and not 1000', async () => {
    const c = compiled('uid', { uid: 1234, gid: 1234 });
    const volume = c.container.HostConfig.Mounts.find((m) => m.Target === layout.CLAUDE_SESSIONS_DIR)!.Source!;
    expect(volume).toMatch(/^agent-dispatch-claude\.itest-[^.]+\.[0-9a-f]{12}\.uid1234$/);
    const outcome = await runner.run({
      spec: { ...c.container, Image: NODE_IMAGE, WorkingDir: '/' },
      cmd: ['sh', '-c', `id -u; touch ${layout.CLAUDE_SESSIONS_DIR}/written && echo writable`],
      stdin: '',
      managedSettings: c.managedSettings,
      job: 'job-uid',
      timeoutMs: 30_000,
    });
    expect(outcome.stdoutLines, outcome.stderr).toEqual(['1234', 'writable']);
    const info = await docker.getVolume(volume).inspect();
    expect(info.Labels).toMatchObject(testLabels(runId));
  }, TIMEOUT);

  it('concurrent first dispatches of a new agent share one preparation of its session volume', async () => {
    const c = compiled('concurrent', { uid: 1235, gid: 1235 });
    const runOne = (i: number) =>
      runner.run({
        spec: { ...c.container, Image: NODE_IMAGE, WorkingDir: '/' },
        cmd: ['sh', '-c', `touch ${layout.CLAUDE_SESSIONS_DIR}/w${i} && echo ok`],
        stdin: '',
        managedSettings: c.managedSettings,
        job: `job-concurrent-${i}`,
        timeoutMs: 30_000,
      });
    const outcomes = await Promise.all([0, 1, 2].map(runOne));
    expect(outcomes.map((o) => o.stdoutLines)).toEqual([['ok'], ['ok'], ['ok']]);
    const helpers = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`] } });
    expect(helpers).toEqual([]);
  }, TIMEOUT);

  it('reaps a container whose server is gone and leaves a live server’s container alone', async () => {
    const base = { Image: NODE_IMAGE, Cmd: ['sleep', '300'], HostConfig: { NetworkMode: 'none' } };
    const host = (await import('node:os')).hostname();
    const orphan = await docker.createContainer({
      ...base,
      Labels: { ...testLabels(runId), [LABELS.server]: `999999999:1:${pidNamespace()}`, [LABELS.host]: host, [LABELS.deadline]: String(Date.now() + 600_000) },
    });
    const live = await docker.createContainer({
      ...base,
      Labels: { ...testLabels(runId), [LABELS.server]: serverIdentity(), [LABELS.host]: host, [LABELS.deadline]: String(Date.now() + 600_000) },
    });
    await reapOrphans(docker);
    await expect(docker.getContainer(orphan.id).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await docker.getContainer(live.id).inspect()).Id).toBe(live.id);
  }, TIMEOUT);
});
