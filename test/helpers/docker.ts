/**
 * Docker helpers for tests that run real containers.
 *
 * - Nothing here ever pulls: images come from `scripts/base-images.sh` (`docker import` of local files).
 * - Outside CI a missing engine skips the Docker suites; with CI set they run and fail, so a broken CI
 *   machine is never green:  `describe.skipIf(skipDocker)(...)`.
 * - Everything a test creates carries `testLabels(runId)`: TEST_LABEL with a per-file id from `testRunId()`,
 *   so `cleanupTestResources(docker, runId)` removes exactly one file's leftovers, and TEST_RUN_LABEL with
 *   the suite run's id (AGENT_DISPATCH_TEST_RUN, fresh per `.ci/run`), which `.ci/run` removes and counts at
 *   the end. Nothing else on the engine is touched: not the base images (they carry no labels), not the test
 *   image cache, not a user's dispatches.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { dfBusy } from '../../src/sandbox/session-quota.js';

export const TEST_LABEL = 'agent-dispatch.test';
export const TEST_RUN_LABEL = 'agent-dispatch.test-run';
export const BUSYBOX_IMAGE = 'agent-dispatch-base/busybox:1';
export const NODE_IMAGE = 'agent-dispatch-base/node:20';

/** True when the CI variable says so (`CI=true`, `CI=1`, ...; `CI=false`/`0`/empty is not CI). */
export function isCI(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = (env['CI'] ?? '').trim().toLowerCase();
  return v !== '' && v !== '0' && v !== 'false' && v !== 'no';
}

/** Where the engine listens, from DOCKER_HOST (unix:// or tcp://), else the default socket. */
export function dockerEndpoint(env: NodeJS.ProcessEnv = process.env): { socketPath: string } | { host: string; port: number } {
  const dockerHost = env['DOCKER_HOST'];
  if (!dockerHost) return { socketPath: '/var/run/docker.sock' };
  if (dockerHost.startsWith('unix://')) return { socketPath: dockerHost.slice('unix://'.length) };
  const url = new URL(dockerHost.replace(/^tcp:\/\//, 'http://'));
  return { host: url.hostname, port: Number(url.port || 2375) };
}

let available: boolean | undefined;

/**
 * Does a Docker engine answer `GET /_ping` within 5 s? Synchronous (a child node process does the
 * request), so it can be used at collection time in `describe.skipIf`. Needs no docker CLI. Cached.
 */
export function dockerAvailable(): boolean {
  if (available !== undefined) return available;
  const endpoint = JSON.stringify(dockerEndpoint());
  const script = `
    const http = require('node:http');
    const req = http.get({ ...${endpoint}, path: '/_ping', timeout: 4000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => process.exit(res.statusCode === 200 && body.trim() === 'OK' ? 0 : 1));
    });
    req.on('timeout', () => { req.destroy(); process.exit(1); });
    req.on('error', () => process.exit(1));
  `;
  const result = spawnSync(process.execPath, ['-e', script], { timeout: 5000, stdio: 'ignore' });
  available = result.status === 0;
  return available;
}

/** Skip Docker suites when no engine answers, except in CI, where they must run (and fail). */
export const skipDocker: boolean = !dockerAvailable() && !isCI();

/** A dockerode client for the engine `dockerAvailable()` checked (DOCKER_HOST or the default socket). */
export function dockerClient(): Docker {
  return new Docker(dockerEndpoint());
}

/** A short random id: the TEST_LABEL value and a suffix for names, so parallel runs do not collide. */
export function testRunId(): string {
  return `t${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

/** The suite run's id: AGENT_DISPATCH_TEST_RUN (`.ci/run` sets a fresh one), else `local`. */
export function testSuiteRun(env: NodeJS.ProcessEnv = process.env): string {
  return env['AGENT_DISPATCH_TEST_RUN']?.trim() || 'local';
}

/** The labels for every container, volume, network and image a test creates (`runId` from `testRunId()`). */
export function testLabels(runId: string): Record<string, string> {
  return { [TEST_LABEL]: runId, [TEST_RUN_LABEL]: testSuiteRun() };
}

/** `testLabels(runId)` as AGENT_DISPATCH_CONTAINER_LABELS takes them: `k=v,k2=v2`. */
export function testLabelsEnv(runId: string): string {
  return Object.entries(testLabels(runId))
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

/**
 * Throw unless `name` is present locally. Tests call this instead of letting `createContainer` meet a
 * missing image: the engine would then try a registry (there is none here), and tests never pull.
 */
export async function requireLocalImage(docker: Docker, name: string): Promise<Docker.ImageInspectInfo> {
  try {
    return await docker.getImage(name).inspect();
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 404) {
      throw new Error(`Docker image '${name}' is not present locally. Build it with: bash scripts/base-images.sh (tests never pull images).`);
    }
    const code = (error as { code?: string }).code;
    const hint = code === 'ENOENT' || code === 'ECONNREFUSED' ? ' The Docker engine does not answer: run scripts/docker-up.sh.' : '';
    throw new Error(`Could not inspect Docker image '${name}': ${(error as Error).message}.${hint}`);
  }
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** `container.inspect()` after the container exited (before it was removed). */
  inspect: Docker.ContainerInspectInfo;
}

/**
 * Create, attach, start and wait for a container; collect demuxed stdout/stderr; inspect it; and always
 * remove it (`force`, `v`). Named volumes it mounts are not removed here (see `removeVolumes`).
 */
export async function runContainer(docker: Docker, options: Docker.ContainerCreateOptions, timeoutMs = 50_000): Promise<RunResult> {
  const container = await docker.createContainer(options);
  try {
    const stream = await container.attach({ stream: true, stdout: true, stderr: true });
    const out = new PassThrough();
    const err = new PassThrough();
    const chunks = { out: [] as Buffer[], err: [] as Buffer[] };
    out.on('data', (d: Buffer) => chunks.out.push(d));
    err.on('data', (d: Buffer) => chunks.err.push(d));
    const ended = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    container.modem.demuxStream(stream, out, err);
    await container.start();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`container did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    let status: { StatusCode: number };
    try {
      status = (await Promise.race([container.wait(), timedOut])) as { StatusCode: number };
    } finally {
      clearTimeout(timer);
    }
    await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))]);
    const inspect = await container.inspect();
    return {
      exitCode: status.StatusCode,
      stdout: Buffer.concat(chunks.out).toString('utf8'),
      stderr: Buffer.concat(chunks.err).toString('utf8'),
      inspect,
    };
  } finally {
    await container.remove({ force: true, v: true }).catch(() => undefined);
  }
}

/** Remove named volumes, ignoring ones that are already gone. */
export async function removeVolumes(docker: Docker, names: Iterable<string>): Promise<void> {
  for (const name of names) {
    await docker
      .getVolume(name)
      .remove({ force: true })
      .catch((error: { statusCode?: number }) => {
        if (error.statusCode !== 404) throw error;
      });
  }
}

/** Remove containers, then volumes, then networks labelled `TEST_LABEL=runId`. Returns what was removed. */
export async function cleanupTestResources(docker: Docker, runId: string): Promise<{ containers: string[]; volumes: string[]; networks: string[] }> {
  const filters = JSON.stringify({ label: [`${TEST_LABEL}=${runId}`] });
  const removed = { containers: [] as string[], volumes: [] as string[], networks: [] as string[] };
  for (const c of await docker.listContainers({ all: true, filters })) {
    await docker
      .getContainer(c.Id)
      .remove({ force: true, v: true })
      .then(() => removed.containers.push(c.Id))
      .catch(() => undefined);
  }
  // A container the engine is still removing (AutoRemove, a server's own removal) keeps its volumes in use:
  // wait until none is listed, and retry a volume that is still busy, so nothing is left behind by a race.
  for (let i = 0; i < 40 && (await docker.listContainers({ all: true, filters })).length > 0; i++) await new Promise((r) => setTimeout(r, 250));
  const { Volumes } = await docker.listVolumes({ filters });
  for (const v of Volumes ?? []) {
    for (let attempt = 0; attempt < 20; attempt++) {
      const outcome = await docker
        .getVolume(v.Name)
        .remove({ force: true })
        .then(() => 'removed' as const)
        .catch((error: { statusCode?: number }) => (error.statusCode === 409 ? ('busy' as const) : ('failed' as const)));
      if (outcome === 'removed') removed.volumes.push(v.Name);
      if (outcome !== 'busy') break;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  for (const n of await docker.listNetworks({ filters })) {
    await docker
      .getNetwork(n.Id)
      .remove()
      .then(() => removed.networks.push(n.Name))
      .catch(() => undefined);
  }
  return removed;
}

export interface EngineVolume {
  Name: string;
  Labels?: Record<string, string> | null;
  UsageData?: { Size?: number };
}

/**
 * The engine's volumes with their sizes (GET /system/df). Docker 20.10 refuses a df while any other runs (the
 * servers under test poll it for session quotas), so a refusal is waited out rather than failing the test.
 */
export async function engineVolumes(docker: Docker, maxMs = 15_000): Promise<EngineVolume[]> {
  const until = Date.now() + maxMs;
  for (;;) {
    try {
      return ((await docker.df()) as { Volumes?: EngineVolume[] | null }).Volumes ?? [];
    } catch (error) {
      if (!dfBusy(error) || Date.now() >= until) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
