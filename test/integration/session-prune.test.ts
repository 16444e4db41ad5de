/** The session volume's bound, on a real volume: old transcripts go, then the oldest files past the size cap. */
import { afterAll, describe, expect, it } from 'vitest';
import { pruneSessionVolumeIfDue } from '../../src/sandbox/session-prune.js';
import { TEST_AGENT_IMAGE } from '../helpers/dispatch-fixture.js';
import { cleanupTestResources, dockerClient, skipDocker, testLabels, testRunId } from '../helpers/docker.js';

describe.skipIf(skipDocker)('session volume prune', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const volume = `agent-dispatch-test-prune-${runId}`;

  afterAll(async () => {
    await cleanupTestResources(docker, runId);
  });

  async function inVolume(script: string, user = '0:0'): Promise<string> {
    const container = await docker.createContainer({
      Image: TEST_AGENT_IMAGE,
      User: user,
      Tty: true,
      Entrypoint: ['sh', '-c'],
      Cmd: [script],
      Labels: testLabels(runId),
      HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: volume, Target: '/v' }] },
    });
    try {
      const stream = await container.attach({ stream: true, stdout: true, stderr: true });
      let out = '';
      stream.on('data', (chunk: Buffer) => (out += chunk.toString('latin1')));
      await container.start();
      await container.wait();
      return out.replace(/\r/g, '');
    } finally {
      await container.remove({ force: true });
    }
  }

  it('removes files older than the age bound, then the oldest until under the size cap; weird names are no problem', async () => {
    await docker.createVolume({ Name: volume, Labels: testLabels(runId) });
    const now = Math.floor(Date.now() / 1000);
    await inVolume(
      [
        'mkdir -p /v/p1 /v/p2',
        ...[1, 2, 3, 4, 5, 6].map((i) => `dd if=/dev/zero of=/v/p1/f${i} bs=1024 count=400 2>/dev/null && touch -d @${now - (10 - i) * 60} /v/p1/f${i}`),
        `printf x > '/v/p2/we ird\nname' && touch -d @${now - 40 * 86_400} '/v/p2/we ird\nname'`,
        `printf x > /v/p2/keep && touch -d @${now - 86_400} /v/p2/keep`,
        'chown -R 1000:1000 /v',
      ].join(' && '),
    );
    await pruneSessionVolumeIfDue(docker, { name: volume, image: TEST_AGENT_IMAGE, owner: { uid: 1000, gid: 1000 }, labels: testLabels(runId) }, { maxDays: 30, maxMb: 1 });
    const left = (await inVolume('cd /v && find . -type f | sort && du -sk . | cut -f1')).trim().split('\n');
    const kb = Number(left.pop());
    expect(kb).toBeLessThanOrEqual(1024);
    // The 40-day-old file went by age; then the oldest went first (p2/keep, a day old, before the minutes-old p1 files).
    expect(left).toEqual(['./p1/f5', './p1/f6']);
    expect((await docker.listContainers({ all: true, filters: { label: [`agent-dispatch.test=${runId}`] } })).length).toBe(0);
  }, 60_000);

  it('runs at most once an hour per volume', async () => {
    await inVolume(`dd if=/dev/zero of=/v/big bs=1024 count=3000 2>/dev/null && chown 1000 /v/big`);
    const args = [docker, { name: volume, image: TEST_AGENT_IMAGE, owner: { uid: 1000, gid: 1000 }, labels: testLabels(runId) }, { maxDays: 30, maxMb: 1 }] as const;
    await pruneSessionVolumeIfDue(...args, Date.now() + 60_000);
    expect(await inVolume('ls /v')).toContain('big');
    await pruneSessionVolumeIfDue(...args, Date.now() + 2 * 3600_000);
    expect(await inVolume('ls /v')).not.toContain('big');
  }, 60_000);
});
