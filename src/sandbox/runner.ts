import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import Docker from 'dockerode';
import { AppError, describeError } from '../errors.js';
import type { ContainerSpec } from '../policy/container-spec.js';
import * as layout from '../policy/layout.js';
import { logger } from '../log.js';
import { bridgeAddress } from './bridge.js';
import { LineCollector } from './lines.js';
import { LABELS, ownerLabels } from './owner.js';
import { imageMissing, sandboxError } from './sandbox-error.js';
import { reapOrphans } from './reaper.js';
import { prepareStateVolume } from './state-volume.js';

export interface SandboxRun {
  /** The compiled container spec; the runner adds Cmd, stdin, labels and the managed-settings mount. */
  spec: ContainerSpec;
  cmd: string[];
  /** Written to the process's stdin, which is then closed (claude reads the prompt from it). */
  stdin: string;
  /** Bind-mounted read-only at the managed-settings path: tool rules the repo cannot override. */
  managedSettings: unknown;
  job: string;
  timeoutMs: number;
  onStdoutLine?: (line: string) => void;
  signal?: AbortSignal;
}

export interface SandboxOutcome {
  exitCode: number | null;
  stdoutLines: string[];
  stderr: string;
  timedOut: boolean;
  cancelled: boolean;
  containerId: string;
  imageId: string;
}

export interface RunnerOptions {
  /** Host directory for per-dispatch files (the managed settings); bind-mounted, so the engine must be local. */
  runDir: string;
  /** Added to every container and volume (e.g. a test run's cleanup label). */
  extraLabels?: Record<string, string>;
}

const log = logger('sandbox');
const STDERR_CAP = 64 * 1024;
const STDOUT_CAP = 16 * 1024 * 1024;
/** After the container exits, how long the attach stream may take to deliver its last bytes. */
const DRAIN_MS = 2000;
/** Each engine call before the container runs (inspect, volume, create, attach, start) must answer within this. */
const PREPARE_MS = 60_000;
/** After a kill, how long to wait for the engine to report the exit before removing the container regardless. */
const KILL_GRACE_MS = 15_000;
/** Longer than the longest dispatch (7200 s) plus its grace: per-dispatch files older than this are stale. */
const STALE_RUN_FILES_MS = 3 * 3600_000;

/**
 * One fresh container per dispatch: create, attach, start, feed stdin, wait (with a wall-clock kill), remove.
 * The container is removed on every path; a kill takes the whole process tree with it.
 */
export class SandboxRunner {
  private readonly live = new Map<string, Docker.Container>();
  /** Session-volume preparations in flight, per volume: concurrent first dispatches of an agent share one. */
  private readonly preparing = new Map<string, Promise<void>>();
  private closed = false;

  constructor(
    private readonly docker: Docker,
    private readonly options: RunnerOptions,
  ) {}

  async run(request: SandboxRun): Promise<SandboxOutcome> {
    if (request.signal?.aborted) throw new AppError('SANDBOX_FAILED', 'The dispatch was cancelled before its container started.');
    this.refuseWhenClosed();
    const image = await this.requireImage(request.spec.Image);
    const labels = { ...this.options.extraLabels, ...ownerLabels(request.job, request.timeoutMs) };
    const user = parseUser(request.spec.User);
    await bounded(this.prepareOnce(request.spec, user, labels), PREPARE_MS, 'prepare the session volume');
    const settingsDir = this.writeManagedSettings(request.job, request.managedSettings);
    let container: Docker.Container | undefined;
    try {
      container = await this.create(request, labels, settingsDir);
      this.live.set(container.id, container);
      this.refuseWhenClosed();
      return await this.attachAndRun(container, request, image);
    } finally {
      if (container) {
        this.live.delete(container.id);
        await removeQuietly(container);
      }
      rmSync(settingsDir, { recursive: true, force: true });
    }
  }

  /** Remove dispatch containers left by a server that is gone (run once at server start). */
  reapOrphans(): Promise<number> {
    return reapOrphans(this.docker);
  }

  /** Remove per-dispatch files a killed server left (older than any dispatch can run). */
  sweepRunDir(now: number = Date.now()): number {
    let removed = 0;
    let names: string[];
    try {
      names = readdirSync(this.options.runDir);
    } catch {
      return 0;
    }
    for (const name of names) {
      const path = join(this.options.runDir, name);
      try {
        if (now - statSync(path).mtimeMs < STALE_RUN_FILES_MS) continue;
        rmSync(path, { recursive: true, force: true });
        removed += 1;
      } catch {
        // gone meanwhile, or not ours to remove
      }
    }
    return removed;
  }

  /** Remove an agent's Claude-state volumes (selftest cleanup; a removed agent's sessions). */
  async removeAgentVolumes(agent: string): Promise<number> {
    const { Volumes } = await this.docker.listVolumes({ filters: JSON.stringify({ label: [`${layout.LABEL_PREFIX}.agent=${agent}`] }) });
    let removed = 0;
    for (const volume of Volumes ?? []) {
      await this.docker.getVolume(volume.Name).remove({ force: true }).then(() => (removed += 1), () => undefined);
    }
    return removed;
  }

  /** Containers this server started that are still there (a job label of ours); 0 after every dispatch. */
  async leftoverContainers(job: string): Promise<number> {
    return (await this.docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.job}=${job}`] }) })).length;
  }

  /** The host address of the default bridge: what a container on it reaches host services through. */
  bridgeAddress(): Promise<string | undefined> {
    return bridgeAddress(this.docker);
  }

  /** Kill and remove every container this runner still has running (server shutdown). */
  async shutdown(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.live.values()].map((c) => removeQuietly(c)));
    this.live.clear();
  }

  private prepareOnce(spec: ContainerSpec, user: { uid: number; gid: number }, labels: Record<string, string>): Promise<void> {
    const key = `${spec.HostConfig.Mounts.find((m) => m.Target === layout.CLAUDE_SESSIONS_DIR)?.Source ?? ''}`;
    const inFlight = this.preparing.get(key);
    if (inFlight) return inFlight;
    const preparation = prepareStateVolume(this.docker, spec, user, labels).finally(() => this.preparing.delete(key));
    this.preparing.set(key, preparation);
    return preparation;
  }

  /** After shutdown began no container may start (one being created meanwhile is removed by run's finally). */
  private refuseWhenClosed(): void {
    if (this.closed) throw new AppError('SANDBOX_FAILED', 'The server is shutting down; the dispatch was not started.', { hint: 'Retry once the server is back.' });
  }

  private async requireImage(image: string): Promise<Docker.ImageInspectInfo> {
    try {
      return await bounded(this.docker.getImage(image).inspect(), PREPARE_MS, `inspect the image ${image}`);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) throw imageMissing(image, error);
      throw sandboxError(error, `inspect the image ${image}`, image);
    }
  }

  private writeManagedSettings(job: string, settings: unknown): string {
    mkdirSync(this.options.runDir, { recursive: true, mode: 0o700 });
    const dir = mkdtempSync(join(this.options.runDir, `${job}-`));
    try {
      // 0644: the container user (not the server's uid) must read it; it holds tool rules, no secret.
      writeFileSync(join(dir, 'managed-settings.json'), JSON.stringify(settings), { mode: 0o644 });
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw new AppError('SANDBOX_FAILED', `Could not write the managed settings for the container: ${describeError(error)}`, {
        hint: `Check free space and permissions of ${this.options.runDir}.`,
      });
    }
    return dir;
  }

  private async create(request: SandboxRun, labels: Record<string, string>, settingsDir: string): Promise<Docker.Container> {
    const spec = structuredClone(request.spec);
    const body = {
      ...spec,
      Cmd: request.cmd,
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      Labels: { ...spec.Labels, ...labels },
      HostConfig: {
        ...spec.HostConfig,
        Mounts: [
          ...spec.HostConfig.Mounts.map((m) =>
            m.Type === 'volume' ? { ...m, VolumeOptions: { ...m.VolumeOptions, Labels: { ...m.VolumeOptions?.Labels, ...this.options.extraLabels } } } : m,
          ),
          { Type: 'bind', Source: join(settingsDir, 'managed-settings.json'), Target: layout.MANAGED_SETTINGS_PATH, ReadOnly: true },
        ],
      },
    };
    try {
      return await bounded(this.docker.createContainer(body as unknown as Docker.ContainerCreateOptions), PREPARE_MS, 'create the container');
    } catch (error) {
      throw sandboxError(error, 'create the container', spec.Image);
    }
  }

  private async attachAndRun(container: Docker.Container, request: SandboxRun, image: Docker.ImageInspectInfo): Promise<SandboxOutcome> {
    const stdout = new LineCollector(STDOUT_CAP, request.onStdoutLine);
    const stderrOut = new PassThrough();
    const stderrDecoder = new StringDecoder('utf8');
    let stderr = '';
    stderrOut.on('data', (chunk: Buffer) => {
      if (stderr.length < STDERR_CAP) stderr += stderrDecoder.write(chunk).slice(0, STDERR_CAP - stderr.length);
    });
    const stdoutOut = new PassThrough();
    stdoutOut.on('data', (chunk: Buffer) => stdout.push(chunk));

    let stream: NodeJS.ReadWriteStream;
    try {
      stream = (await bounded(container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true }), PREPARE_MS, 'attach to the container')) as NodeJS.ReadWriteStream;
    } catch (error) {
      throw sandboxError(error, 'attach to the container', request.spec.Image);
    }
    const ended = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    this.docker.modem.demuxStream(stream, stdoutOut, stderrOut);

    try {
      await bounded(container.start(), PREPARE_MS, 'start the container');
    } catch (error) {
      stream.end();
      throw sandboxError(error, 'start the container', request.spec.Image);
    }
    stream.write(request.stdin);
    stream.end();

    let timedOut = false;
    let cancelled = false;
    let giveUp: () => void = () => undefined;
    const stuck = new Promise<'stuck'>((resolve) => (giveUp = () => resolve('stuck')));
    let graceTimer: NodeJS.Timeout | undefined;
    const kill = (): void => {
      container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
      // If the engine never reports the exit (kill failed, engine hung), stop waiting; removal is forced.
      graceTimer ??= setTimeout(giveUp, KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, request.timeoutMs);
    const onAbort = (): void => {
      cancelled = true;
      kill();
    };
    request.signal?.addEventListener('abort', onAbort, { once: true });
    // A cancel that arrived while the container was being created, attached or started.
    if (request.signal?.aborted) onAbort();
    let exitCode: number | null = null;
    try {
      // 'not-running' after start: a container that already exited answers at once (no lost exit).
      const exited = container.wait({ condition: 'not-running' }) as Promise<{ StatusCode: number }>;
      const status = await Promise.race([exited, stuck]);
      if (status !== 'stuck') exitCode = timedOut || cancelled ? null : status.StatusCode;
    } catch (error) {
      if (!timedOut && !cancelled) throw sandboxError(error, 'wait for the container', request.spec.Image);
    } finally {
      clearTimeout(timer);
      clearTimeout(graceTimer);
      request.signal?.removeEventListener('abort', onAbort);
    }
    await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, DRAIN_MS))]);
    stdout.flush();
    return {
      exitCode,
      stdoutLines: stdout.lines,
      stderr,
      timedOut,
      cancelled,
      containerId: container.id,
      imageId: image.Id,
    };
  }
}

/** A runner on the engine the environment's DOCKER_HOST names (default: the local socket). */
export function createSandboxRunner(options: RunnerOptions, env: NodeJS.ProcessEnv = process.env): SandboxRunner {
  return new SandboxRunner(new Docker(dockerOptions(env)), options);
}

/** unix:///path or tcp://host:port from DOCKER_HOST; anything else is left to docker-modem's defaults. */
export function dockerOptions(env: NodeJS.ProcessEnv): Docker.DockerOptions {
  const host = env['DOCKER_HOST'];
  if (!host) return { socketPath: '/var/run/docker.sock' };
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  if (host.startsWith('tcp://')) {
    const url = new URL(host.replace(/^tcp:/, 'http:'));
    return { host: url.hostname, port: Number(url.port || 2375) };
  }
  return {};
}

/** Reject with a clear error when the engine does not answer a call in time (a hung engine must not hang us). */
function bounded<T>(promise: Promise<T>, ms: number, step: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new AppError('SANDBOX_FAILED', `The Docker engine did not answer within ${ms / 1000} s while trying to ${step}.`, { hint: 'Check the engine (docker info); agent-dispatch doctor shows its state.' })),
      ms,
    );
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function parseUser(user: string): { uid: number; gid: number } {
  const [uid, gid] = user.split(':').map(Number);
  return { uid: uid ?? layout.CONTAINER_UID, gid: gid ?? uid ?? layout.CONTAINER_GID };
}

async function removeQuietly(container: Docker.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    // Gone already (404), or a removal already in progress (409, shutdown racing the dispatch's own cleanup).
    if (status === 404 || status === 409) return;
    // Anything else is left for the reaper of the next server start.
    log.warn(`could not remove container ${container.id.slice(0, 12)}: ${describeError(error)}`);
  }
}
