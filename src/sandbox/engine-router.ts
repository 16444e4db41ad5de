import type { DispatchConfig } from '../config/schema.js';
import { effectiveEngineSpec, engineLabel, namedEngines, parseEngineSpec, type EngineSpec } from '../config/engine-spec.js';
import { AppError, describeError, isAppError } from '../errors.js';
import { logger } from '../log.js';
import { bounded } from './engine-calls.js';
import { requireEngine } from './engine-options.js';
import { LABELS } from './owner.js';
import type { OverlayVolumes } from './overlay-volume.js';
import type { SandboxOutcome, SandboxRun, SandboxRunner } from './runner.js';
import type { AgentPoolStatus } from './warm-pool.js';

const log = logger('sandbox');

/** A server-wide duty on one engine (reaping, cancel) must not wait on an engine that does not answer. */
const ENGINE_DUTY_MS = 20_000;

/** The key of the environment's engine (DOCKER_HOST, else the local socket): agents without an engine. */
const ENVIRONMENT = 'environment';

/** Makes the runner of one engine (undefined: the environment's). */
export type RunnerFactory = (spec: EngineSpec | undefined) => SandboxRunner;

/**
 * One SandboxRunner per Docker engine, made on first use, and the choice of runner by the agent a run is for
 * (agents.<name>.engine, else settings.engine, else the environment's engine). Everything of an agent — its
 * image checks, its gateway, its containers, its warm pool, its session volumes — is its runner's, so it all
 * lives on that engine. Server-wide duties (reaping at start, cancel by job, shutdown) go to every engine the
 * config names.
 */
export class EngineRouter {
  private readonly runners = new Map<string, SandboxRunner>();
  private config: DispatchConfig | undefined;
  private warm = false;

  constructor(private readonly make: RunnerFactory) {}

  /** The latest config: what server-wide duties (reaping, cancel, shutdown) find the engines in. */
  useConfig(config: DispatchConfig): void {
    this.config = config;
  }

  /**
   * The sandbox of dispatches checked against `config`: each run goes to the runner of its agent's engine in
   * that config (a config changed meanwhile moves only later dispatches).
   */
  bind(config: DispatchConfig): RoutedSandbox {
    this.config = config;
    const engineOf = (agent: string) => effectiveEngineSpec(config.agents[agent], config.settings);
    return {
      run: async (request) => {
        const agent = request.spec.Labels[LABELS.agent] ?? '?';
        const spec = engineOf(agent);
        try {
          return await this.runnerOf(spec).run(request);
        } catch (error) {
          throw spec === undefined ? error : onRemoteEngine(error, agent, spec);
        }
      },
      removeJobContainers: (job) => this.removeJobContainers(job),
      // `repo: overlay` runs on the environment's engine only: its upper dir is in this server's state directory,
      // which another engine's kernel cannot mount. An agent on another engine is refused before anything is made.
      overlay: {
        check: () => this.local.overlay.check(),
        mount: (target, dirs, labels) => {
          const agent = labels[LABELS.agent] ?? '?';
          const spec = engineOf(agent);
          if (spec !== undefined) throw new AppError('SANDBOX_FAILED', `Agent '${agent}' runs on another Docker engine (${describeSpec(spec)}), which cannot mount an overlay of this machine's directories.`);
          return this.local.overlay.mount(target, dirs, labels);
        },
        listMerged: (...args) => this.local.overlay.listMerged(...args),
        removeContents: (...args) => this.local.overlay.removeContents(...args),
      },
    };
  }

  /** The environment's engine. */
  private get local(): SandboxRunner {
    return this.runnerOf(undefined);
  }

  /** A job's containers live on its agent's engine, which the job id does not say: ask every engine. */
  async removeJobContainers(job: string): Promise<number> {
    const results = await Promise.allSettled(this.everyEngine().map((r) => bounded(r.removeJobContainers(job), ENGINE_DUTY_MS, `remove the containers of job ${job}`)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length === results.length && failed[0]) throw failed[0].reason;
    for (const f of failed) log.debug(`could not remove the containers of job ${job} on an engine: ${describeError(f.reason)}`);
    return results.reduce((sum, r) => sum + (r.status === 'fulfilled' ? r.value : 0), 0);
  }

  enableWarmPool(): void {
    this.warm = true;
    for (const runner of this.runners.values()) runner.enableWarmPool();
  }

  /** Server start: sweep stale run files and reap orphans on every engine; an unreachable one is skipped. */
  async startup(): Promise<number> {
    this.local.sweepRunDir();
    const reaped = await Promise.all(
      this.everyEngine().map((runner) =>
        bounded(runner.reapOrphans(), ENGINE_DUTY_MS, 'reap orphaned containers').catch((error: unknown) => {
          log.debug(`orphan reaping skipped on an engine: ${describeError(error)}`);
          return 0;
        }),
      ),
    );
    return reaped.reduce((a, b) => a + b, 0);
  }

  async forgetAgent(name: string): Promise<void> {
    await Promise.all([...this.runners.values()].map((runner) => runner.warmPool.forget(name)));
  }

  warmPoolStatus(): AgentPoolStatus[] {
    return [...this.runners.values()].flatMap((runner) => runner.warmPool.status());
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this.runners.values()].map((runner) => runner.shutdown()));
  }

  /** The runners of every engine the config names, and of every engine used since. */
  private everyEngine(): SandboxRunner[] {
    // The environment's engine is always asked, even before this process ran anything on it (a CLI cancel).
    for (const spec of [undefined, ...(this.config ? namedEngines(this.config) : [])]) this.runnerOf(spec);
    return [...this.runners.values()];
  }

  private runnerOf(spec: EngineSpec | undefined): SandboxRunner {
    const key = engineKeyOf(spec);
    let runner = this.runners.get(key);
    if (!runner) {
      runner = this.make(spec);
      if (this.warm) runner.enableWarmPool();
      this.runners.set(key, runner);
    }
    return runner;
  }
}

/** What the dispatcher needs of a sandbox (its Sandbox interface), for the dispatches of one config. */
export interface RoutedSandbox {
  run(request: SandboxRun): Promise<SandboxOutcome>;
  removeJobContainers(job: string): Promise<number>;
  overlay: Pick<OverlayVolumes, 'check' | 'mount' | 'listMerged' | 'removeContents'>;
}

function describeSpec(spec: EngineSpec): string {
  const parsed = parseEngineSpec(spec);
  return parsed.ok ? engineLabel(parsed.engine) : 'invalid engine';
}

/** Agents naming the same engine (however written) share its runner. */
export function engineKeyOf(spec: EngineSpec | undefined): string {
  return spec === undefined ? ENVIRONMENT : requireEngine(spec).key;
}

/** What a remote engine lacks is fixed by copying to it, never by building or pulling there. */
export function onRemoteEngine(error: unknown, agent: string, spec: EngineSpec): unknown {
  if (!isAppError(error) || error.code !== 'IMAGE_NOT_FOUND') return error;
  const where = describeSpec(spec);
  return new AppError('IMAGE_NOT_FOUND', error.message.replace('is not on this machine', `is not on engine ${where} of agent '${agent}'`), {
    hint: `Copy the images from this machine's engine (a copy, never a pull): agent-dispatch image copy --agent ${agent}. Build them here first if they are missing here too (agent-dispatch image build).`,
    cause: error,
  });
}
