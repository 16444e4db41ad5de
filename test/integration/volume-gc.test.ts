/**
 * `agent-dispatch gc` on real volumes: a session or gateway volume whose config directory is gone, or whose
 * agent left the config, is listed and (with --volumes) removed, the gateway holding one first; a live
 * agent's volume, and one whose config cannot be told, stay. AGENT_DISPATCH_CONTAINER_LABELS narrows gc to
 * this file's labelled volumes, so nothing else on the engine is looked at.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { claudeStateVolume, gatewayVolume, LABEL_PREFIX, volumeScope } from '../../src/policy/layout.js';
import { CONFIG_DIR_LABEL } from '../../src/sandbox/volume-gc.js';
import { BUSYBOX_IMAGE, cleanupTestResources, dockerClient, requireLocalImage, skipDocker, testLabels, testLabelsEnv, testRunId } from '../helpers/docker.js';
import { run } from '../unit/cli-harness.js';

describe.skipIf(skipDocker)('gc removes the volumes of agents whose config no longer exists', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const root = mkdtempSync(join(tmpdir(), 'ad-volume-gc-'));
  const liveDir = join(root, 'live');
  const deletedDir = join(root, 'deleted');
  const repo = join(root, 'repo');
  const agent = `api-${runId}`;
  const liveScope = volumeScope(liveDir, repo);
  const deletedScope = volumeScope(deletedDir, repo);
  const names = {
    live: claudeStateVolume(agent, liveScope),
    agentLeft: claudeStateVolume(`left-${runId}`, liveScope),
    deletedSession: claudeStateVolume(agent, deletedScope),
    deletedGateway: gatewayVolume(agent, deletedScope),
    legacy: claudeStateVolume(`legacy-${runId}`, '0123456789ab'),
  };
  let gatewayId = '';

  const exists = (name: string) => docker.getVolume(name).inspect().then(() => true, () => false);

  async function volume(name: string, agentName: string, scope: string, configDir?: string): Promise<void> {
    const labels = { [`${LABEL_PREFIX}.agent`]: agentName, [`${LABEL_PREFIX}.scope`]: scope, ...(configDir ? { [CONFIG_DIR_LABEL]: configDir } : {}), ...testLabels(runId) };
    await docker.createVolume({ Name: name, Labels: labels });
  }

  beforeAll(async () => {
    await requireLocalImage(docker, BUSYBOX_IMAGE);
    mkdirSync(liveDir);
    mkdirSync(repo);
    writeFileSync(join(liveDir, 'agents.yaml'), stringify({ agents: { [agent]: { directory: repo } } }));
    await volume(names.live, agent, liveScope, liveDir);
    await volume(names.agentLeft, `left-${runId}`, liveScope, liveDir);
    await volume(names.deletedSession, agent, deletedScope, deletedDir);
    await volume(names.deletedGateway, agent, deletedScope, deletedDir);
    await volume(names.legacy, `legacy-${runId}`, '0123456789ab');
    // An idle egress gateway of the deleted config still holds its socket volume.
    const gateway = await docker.createContainer({
      Image: BUSYBOX_IMAGE,
      Cmd: ['sleep', '300'],
      Labels: { [`${LABEL_PREFIX}.agent`]: agent, [`${LABEL_PREFIX}.scope`]: deletedScope, [`${LABEL_PREFIX}.role`]: 'gateway', ...testLabels(runId) },
      HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: names.deletedGateway, Target: '/run/gateway' }] },
    });
    await gateway.start();
    gatewayId = gateway.id;
  });

  afterAll(async () => {
    await cleanupTestResources(docker, runId);
    rmSync(root, { recursive: true, force: true });
  });

  function stubEnv(): void {
    vi.stubEnv('AGENT_DISPATCH_CONFIG', join(liveDir, 'agents.yaml'));
    vi.stubEnv('AGENT_DISPATCH_JOBS_DIR', join(root, 'jobs'));
    vi.stubEnv('AGENT_DISPATCH_CONTAINER_LABELS', testLabelsEnv(runId));
    vi.stubEnv('NO_COLOR', '1');
  }

  it('without a terminal or --volumes: lists the orphaned ones with why, removes nothing', async () => {
    stubEnv();
    const r = await run('gc');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('3 volume(s) of agents whose config no longer exists:');
    expect(r.stdout).toContain(`  ${names.agentLeft}  session — agent 'left-${runId}' is no longer in ${join(liveDir, 'agents.yaml')}`);
    expect(r.stdout).toContain(`  ${names.deletedSession}  session — config directory ${deletedDir} no longer exists`);
    expect(r.stdout).toContain(`  ${names.deletedGateway}  gateway — config directory ${deletedDir} no longer exists`);
    expect(r.stdout).toContain(`Kept 1 volume(s) whose config cannot be judged from here:\n  ${names.legacy}  session`);
    expect(r.stdout).not.toContain(`  ${names.live}`);
    expect(r.stdout).toContain("Kept them. Remove them with 'agent-dispatch gc --volumes'.");
    for (const name of Object.values(names)) expect(await exists(name), name).toBe(true);
  });

  it('--volumes: the orphaned ones (and the gateway holding one) are removed; the live and the undecidable ones stay', async () => {
    stubEnv();
    const r = await run('gc', '--volumes');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Removed 3 volume(s).');
    expect(await exists(names.agentLeft)).toBe(false);
    expect(await exists(names.deletedSession)).toBe(false);
    expect(await exists(names.deletedGateway)).toBe(false);
    expect(await exists(names.live)).toBe(true);
    expect(await exists(names.legacy)).toBe(true);
    expect(await docker.getContainer(gatewayId).inspect().then(() => true, () => false)).toBe(false);
    const again = await run('gc', '--volumes');
    expect(again.stdout).toContain('No orphaned session or gateway volumes.');
  });
});
