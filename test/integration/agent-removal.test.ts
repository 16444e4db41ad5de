/**
 * Removing an agent deletes its session transcripts on the engine (its volumes in this config's scope) and
 * nothing else: another config's agent of the same name keeps its own. When the engine cannot help, the
 * removal still succeeds and says how to finish by hand.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { forgetAgentSessions, removeAgent } from '../../src/core/agents.js';
import { claudeStateVolume, gatewayVolume, LABEL_PREFIX, volumeScope } from '../../src/policy/layout.js';
import { BUSYBOX_IMAGE, cleanupTestResources, dockerClient, skipDocker, testLabels, testRunId } from '../helpers/docker.js';

describe.skipIf(skipDocker)('remove deletes the agent’s session volumes', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const root = mkdtempSync(join('/tmp', 'agent-dispatch-itest-remove-'));
  const agent = `rm-${runId}`;

  afterAll(async () => {
    await cleanupTestResources(docker, runId);
    rmSync(root, { recursive: true, force: true });
  });

  function install(name: string): { configPath: string; directory: string; volume: string; scope: string } {
    const configPath = join(root, name, 'agents.yaml');
    const directory = join(root, name, 'repo');
    mkdirSync(directory, { recursive: true });
    writeFileSync(configPath, stringify({ agents: { [agent]: { directory } } }));
    const scope = volumeScope(dirname(configPath), directory);
    return { configPath, directory, volume: claudeStateVolume(agent, scope), scope };
  }

  async function makeVolume(name: string, scope: string): Promise<void> {
    await docker.createVolume({ Name: name, Labels: { [`${LABEL_PREFIX}.agent`]: agent, [`${LABEL_PREFIX}.scope`]: scope, ...testLabels(runId) } });
  }

  const exists = (name: string) => docker.getVolume(name).inspect().then(() => true, () => false);

  it("removes this config's volumes of the agent and leaves another config's agent of the same name alone", async () => {
    const mine = install('mine');
    const theirs = install('theirs');
    await makeVolume(mine.volume, mine.scope);
    await makeVolume(`${mine.volume}.uid1234`, mine.scope);
    await makeVolume(theirs.volume, theirs.scope);
    const removed = await removeAgent(agent, mine.configPath);
    const sessions = await forgetAgentSessions(agent, removed, mine.configPath);
    expect(sessions).toEqual({ message: 'Removed its 2 volume(s) (session transcripts, gateway socket).' });
    expect(await exists(mine.volume)).toBe(false);
    expect(await exists(`${mine.volume}.uid1234`)).toBe(false);
    expect(await exists(theirs.volume)).toBe(true);
  });

  it('a volume a running dispatch still uses is kept, with the command to remove it later', async () => {
    const busy = install('busy');
    await makeVolume(busy.volume, busy.scope);
    const container = await docker.createContainer({
      Image: BUSYBOX_IMAGE,
      Cmd: ['sleep', '60'],
      Labels: testLabels(runId),
      HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: busy.volume, Target: '/state' }] },
    });
    await container.start();
    try {
      const removed = await removeAgent(agent, busy.configPath);
      const sessions = await forgetAgentSessions(agent, removed, busy.configPath);
      expect(sessions.warning).toContain('1 volume(s) kept');
      expect(sessions.warning).toContain(`--filter label=${LABEL_PREFIX}.scope=${busy.scope}`);
      expect(await exists(busy.volume)).toBe(true);
    } finally {
      await container.remove({ force: true });
    }
  });

  it("stops the agent's egress gateway first, so its socket volume goes too", async () => {
    const gated = install('gated');
    const socketVolume = gatewayVolume(agent, gated.scope);
    await makeVolume(socketVolume, gated.scope);
    const gateway = await docker.createContainer({
      Image: BUSYBOX_IMAGE,
      Cmd: ['sleep', '60'],
      Labels: { ...testLabels(runId), [`${LABEL_PREFIX}.agent`]: agent, [`${LABEL_PREFIX}.scope`]: gated.scope, [`${LABEL_PREFIX}.role`]: 'gateway' },
      HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: socketVolume, Target: '/run/agent-dispatch' }] },
    });
    await gateway.start();
    const removed = await removeAgent(agent, gated.configPath);
    const sessions = await forgetAgentSessions(agent, removed, gated.configPath);
    expect(sessions).toEqual({ message: 'Removed its 1 volume(s) (session transcripts, gateway socket).' });
    expect(await exists(socketVolume)).toBe(false);
    expect(await gateway.inspect().then(() => true, () => false)).toBe(false);
  });

  it('an unreachable engine: the agent is removed anyway and the warning says how to finish', async () => {
    const down = install('down');
    const removed = await removeAgent(agent, down.configPath);
    const sessions = await forgetAgentSessions(agent, removed, down.configPath, { DOCKER_HOST: `unix://${join(root, 'no-engine.sock')}` });
    expect(sessions.warning).toContain('its session volumes were not removed');
    expect(sessions.warning).toContain('docker volume rm');
  });
});
