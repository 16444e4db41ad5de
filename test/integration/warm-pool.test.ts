/**
 * The warm pool with the real claude binary in the test agent image behind the real gateway, driven by the
 * scripted model: a pre-started sandbox serves exactly one dispatch, the pool refills, a policy edit reaches
 * the very next dispatch, the deadline counts from the claim, and the selftest's probes hold on a warm dispatch.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, requireConfig } from '../../src/config/load.js';
import { containerLabels, DispatchService } from '../../src/dispatch/service.js';
import type { DispatchResult } from '../../src/dispatch/types.js';
import { volumeScope } from '../../src/policy/layout.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { removeAgentVolumes } from '../../src/sandbox/volumes.js';
import { createSandboxRunner, type SandboxOutcome, type SandboxRunner } from '../../src/sandbox/runner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { runSelftest } from '../../src/selftest/selftest.js';
import { createFixture, gatewayTestPolicy, TEST_AGENT_IMAGE, TEST_GATEWAY_IMAGE, tearDown, type Fixture } from '../helpers/dispatch-fixture.js';
import { dockerClient, requireLocalImage, skipDocker, TEST_LABEL, testLabelsEnv, testRunId } from '../helpers/docker.js';

const TIMEOUT = 180_000;

describe.skipIf(skipDocker)('warm pool: pre-started, single-use sandboxes', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const agent = `warm-${runId}`;
  const quick = `warm-quick-${runId}`;
  let fx: Fixture;
  let runner: SandboxRunner;
  let service: DispatchService;
  const outcomes: SandboxOutcome[] = [];

  const policy = (mark: string, timeout = 120) => gatewayTestPolicy([], { env: { pass: [], set: { CLAUDE_CODE_MAX_RETRIES: '0', WARM_MARK: mark } }, resources: { memory: '1g', cpus: 1, pids: 256, nofile: 1024, tmp_size: '64m', timeout } });

  beforeAll(async () => {
    await requireLocalImage(docker, TEST_AGENT_IMAGE);
    await requireLocalImage(docker, TEST_GATEWAY_IMAGE);
    fx = await createFixture(docker, runId);
    fx.policy('warm', policy('one'));
    fx.policy('warm-quick', policy('quick', 10));
    fx.agents({ [agent]: { directory: fx.repo('svc'), policy: 'warm' }, [quick]: { directory: fx.repo('quick'), policy: 'warm-quick' } }, { warm_pool: 1 });
    runner = createSandboxRunner({ runDir: join(fx.root, 'run'), extraLabels: containerLabels(fx.env), gatewayImage: TEST_GATEWAY_IMAGE }, fx.env);
    runner.enableWarmPool();
    service = new DispatchService(fx.env, {
      run: async (request) => {
        const outcome = await runner.run(request);
        outcomes.push(outcome);
        return outcome;
      },
    });
  }, TIMEOUT);

  afterAll(async () => {
    await runner?.shutdown();
    await tearDown({ docker, runId, fx });
  }, TIMEOUT);

  const dispatch = (task: string, name = agent): Promise<DispatchResult> => service.dispatch(requireConfig(loadConfig(fx.configPath)), { agent: name, task });

  /** The pre-started containers of an agent, idle or serving. */
  async function pooled(name = agent): Promise<string[]> {
    const list = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`, `${LABELS.agent}=${name}`, LABELS.warm] } });
    return list.map((c) => c.Id);
  }

  async function exists(id: string): Promise<boolean> {
    return docker.getContainer(id).inspect().then(() => true, (error: { statusCode?: number }) => (error.statusCode === 404 ? false : Promise.reject(error)));
  }

  it('a pre-started sandbox serves the next dispatch, only that one, and the pool refills with a new one', async () => {
    const first = await dispatch(DIRECTIVE.reply('cold first'));
    expect(first, JSON.stringify(first)).toMatchObject({ success: true, result: 'cold first' });
    expect(outcomes.at(-1)!.sessionId).toBeUndefined();
    await runner.warmPool.settled();
    expect(runner.warmPool.status().find((s) => s.agent === agent)).toMatchObject({ idle: 1, ready: 1 });
    const [prestarted] = await pooled();
    expect(prestarted).toBeDefined();

    const second = await dispatch(DIRECTIVE.reply('warm second'));
    const served = outcomes.at(-1)!;
    expect(second, JSON.stringify(second)).toMatchObject({ success: true, result: 'warm second' });
    expect(served.containerId).toBe(prestarted);
    expect(served.sessionId).toMatch(/^[0-9a-f-]{36}$/);
    expect(second.session_id).toBe(served.sessionId);
    expect(await exists(prestarted!)).toBe(false);

    await runner.warmPool.settled();
    const [refilled] = await pooled();
    expect(refilled).toBeDefined();
    expect(refilled).not.toBe(prestarted);

    // Two dispatches race for the one pre-started sandbox: one gets it, the other a container of its own.
    const before = outcomes.length;
    const both = await Promise.all([dispatch(DIRECTIVE.reply('racer a')), dispatch(DIRECTIVE.reply('racer b'))]);
    expect(both.map((r) => r.result).sort()).toEqual(['racer a', 'racer b']);
    const raced = outcomes.slice(before);
    expect(raced.filter((o) => o.sessionId !== undefined)).toHaveLength(1);
    expect(raced.find((o) => o.sessionId !== undefined)!.containerId).toBe(refilled);
    expect(new Set(outcomes.map((o) => o.containerId)).size).toBe(outcomes.length);
    expect(runner.warmPool.claimed).toBe(2);
  }, TIMEOUT);

  it('a policy edit between two dispatches: the second runs under the new policy, and the stale sandbox is destroyed unused', async () => {
    await runner.warmPool.settled();
    const [stale] = await pooled();
    expect(stale).toBeDefined();
    fx.policy('warm', policy('two'));

    const edited = await dispatch(DIRECTIVE.bash('echo "mark=$WARM_MARK"'));
    expect(edited.success, JSON.stringify(edited)).toBe(true);
    expect(edited.result).toContain('mark=two');
    expect(outcomes.at(-1)!.sessionId).toBeUndefined();
    expect(outcomes.at(-1)!.containerId).not.toBe(stale);
    expect(await exists(stale!)).toBe(false);

    await runner.warmPool.settled();
    const warmAgain = await dispatch(DIRECTIVE.bash('echo "mark=$WARM_MARK"'));
    expect(outcomes.at(-1)!.sessionId).toBeDefined();
    expect(warmAgain.result).toContain('mark=two');
  }, TIMEOUT);

  it('the deadline counts from the claim: a sandbox idle for longer than its timeout still gets the whole timeout', async () => {
    await dispatch(DIRECTIVE.reply('fill'), quick);
    await runner.warmPool.settled();
    expect(await pooled(quick)).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 11_000));
    const late = await dispatch(DIRECTIVE.bash('sleep 2; echo "still in time"'), quick);
    expect(outcomes.at(-1)!.sessionId).toBeDefined();
    expect(late, JSON.stringify(late)).toMatchObject({ success: true });
    expect(late.result).toContain('still in time');
  }, TIMEOUT);

  it('removing an agent removes its pre-started sandboxes first, so its session volume goes too', async () => {
    await runner.warmPool.settled();
    expect(await pooled(quick)).toHaveLength(1);
    const removal = await removeAgentVolumes(quick, volumeScope(fx.configDir, join(fx.root, 'repos', 'quick')), fx.env);
    expect(removal.kept).toEqual([]);
    expect(removal.removed.some((name) => name.startsWith(`agent-dispatch-claude.${quick}.`))).toBe(true);
    expect(await pooled(quick)).toEqual([]);
  }, TIMEOUT);

  it('shutdown removes every pre-started sandbox', async () => {
    await runner.warmPool.settled();
    expect(await pooled()).toHaveLength(1);
    await runner.shutdown();
    expect(await pooled()).toEqual([]);
  }, TIMEOUT);

  it("the selftest's in-container probes hold on a dispatch served by a pre-started sandbox", async () => {
    const report = await runSelftest({ image: TEST_AGENT_IMAGE, gatewayImage: TEST_GATEWAY_IMAGE, env: { ...process.env, AGENT_DISPATCH_CONTAINER_LABELS: testLabelsEnv(runId) }, warm: true });
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(report.checks.map((c) => c.name)).toContain('the probe ran in a pre-started sandbox');
    expect(report.ok).toBe(true);
    const left = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`] } });
    expect(left).toEqual([]);
  }, TIMEOUT);
});
