/**
 * `agent-dispatch cancel ID` of a running job whose container the server started (here: a real busybox
 * container carrying the job label): the job reads cancelled and the container is gone within 2 s.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { JobStore } from '../../src/dispatch/job-store.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { BUSYBOX_IMAGE, cleanupTestResources, dockerClient, requireLocalImage, skipDocker, testLabels, testRunId } from '../helpers/docker.js';
import { run } from '../unit/cli-harness.js';

describe.skipIf(skipDocker)('cancel ID kills a running job’s container', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const root = mkdtempSync(join(tmpdir(), 'ad-cli-cancel-'));

  afterAll(async () => {
    await cleanupTestResources(docker, runId);
    rmSync(root, { recursive: true, force: true });
  });

  it('the job reads cancelled and its container is gone within 2 s', async () => {
    await requireLocalImage(docker, BUSYBOX_IMAGE);
    const jobsDir = join(root, 'jobs');
    vi.stubEnv('AGENT_DISPATCH_JOBS_DIR', jobsDir);
    vi.stubEnv('AGENT_DISPATCH_CONFIG', join(root, 'agents.yaml'));
    vi.stubEnv('NO_COLOR', '1');
    const store = new JobStore(jobsDir);
    const job = await store.create({ agent: 'api', task: 'a long task' }, { server: '1:1:1', host: 'another-host' });
    await store.transition(job.id, { kind: 'start' });
    const container = await docker.createContainer({
      Image: BUSYBOX_IMAGE,
      Cmd: ['sleep', '300'],
      Labels: { [LABELS.job]: job.id, ...testLabels(runId) },
      HostConfig: { NetworkMode: 'none' },
    });
    await container.start();
    const started = Date.now();
    const r = await run('cancel', job.id);
    let gone = false;
    while (!gone && Date.now() - started < 2000) {
      gone = await container.inspect().then(
        () => false,
        (error: { statusCode?: number }) => error.statusCode === 404,
      );
      if (!gone) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const elapsed = Date.now() - started;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`Cancelled: ${job.id} (it was running; its container was killed and removed)\n`);
    expect(gone, `container still there after ${elapsed} ms`).toBe(true);
    expect(store.get(job.id)?.status).toBe('cancelled');
    process.stderr.write(`cli-cancel: container gone ${elapsed} ms after the command started\n`);
  });
});
