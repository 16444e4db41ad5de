import { join } from 'node:path';
import { configPath, stateDir } from '../config/paths.js';
import { loadConfig } from '../config/load.js';
import type { DispatchConfig } from '../config/schema.js';
import { describeError } from '../errors.js';
import { logger } from '../log.js';
import { LABEL_PREFIX } from '../policy/layout.js';
import { gatewayImage } from '../sandbox/gateway-image.js';
import { LABELS } from '../sandbox/owner.js';
import { EngineRouter } from '../sandbox/engine-router.js';
import { createSandboxRunner } from '../sandbox/runner.js';
import type { AgentPoolStatus } from '../sandbox/warm-pool.js';
import { cancelledResult, newJobId, runDispatch, type DispatchRequest, type Sandbox } from './dispatcher.js';
import { SlotCancelled, Slots } from './slots.js';
import type { DispatchResult } from './types.js';

const log = logger('dispatch');

/**
 * What the MCP server and the CLI share for dispatching: a sandbox runner per Docker engine (the agent's
 * engine picks it: src/sandbox/engine-router.ts), one concurrency bound over all of them
 * (settings.max_concurrency), orphan reaping at start and container cleanup at shutdown.
 */
export class DispatchService {
  private router: EngineRouter | undefined;
  private limit = 5;
  private readonly slots = new Slots(() => this.limit);

  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly sandboxOverride?: Sandbox,
  ) {}

  /**
   * One dispatch inside the shared budget (every path: dispatch, session, stream, parallel items, aggregation,
   * dialogue turns, async jobs). `onSlot` runs once a slot is held; false means "no longer wanted" (a job
   * cancelled while it queued) and nothing starts.
   */
  async dispatch(config: DispatchConfig, request: DispatchRequest, job: string = newJobId(), onSlot?: () => Promise<boolean>): Promise<DispatchResult> {
    this.limit = config.settings.max_concurrency;
    try {
      return await this.slots.with(async () => {
        if (onSlot && !(await onSlot())) return cancelledResult(request.agent, false);
        const sandbox = this.sandboxOverride ?? this.realRouter().bind(config);
        return runDispatch({ config, configDir: stateDir(this.env), env: this.env, sandbox, job }, request);
      }, request.signal, request.user ?? '');
    } catch (error) {
      if (error instanceof SlotCancelled) return cancelledResult(request.agent, false);
      throw error;
    }
  }

  /** Best effort: a server must start even when the engine is down (dispatches then say why). */
  async startup(): Promise<void> {
    if (this.sandboxOverride) return;
    const router = this.realRouter();
    router.enableWarmPool();
    // Reaping covers every engine the config names; a config that does not load leaves the environment's engine.
    const load = loadConfig(configPath(this.env));
    if (load.kind === 'ok') router.useConfig(load.config);
    try {
      const reaped = await router.startup();
      if (reaped > 0) log.info(`removed ${reaped} dispatch container(s) left by a server that is gone`);
    } catch (error) {
      log.debug(`orphan reaping skipped: ${describeError(error)}`);
    }
  }

  /** The agent was removed: destroy its pre-started sandboxes (and those still starting) before its volumes go. */
  async forgetAgent(name: string): Promise<void> {
    await this.router?.forgetAgent(name);
  }

  /** Kill and remove a job's containers on every engine (no-op for a test sandbox without containers). */
  async removeJobContainers(job: string): Promise<number> {
    if (!this.sandboxOverride) return this.realRouter().removeJobContainers(job);
    return this.sandboxOverride.removeJobContainers ? this.sandboxOverride.removeJobContainers(job) : 0;
  }

  async shutdown(): Promise<void> {
    await this.router?.shutdown();
  }

  /** This server's pre-started sandboxes per agent (none before its first dispatch, or with a test sandbox). */
  warmPoolStatus(): AgentPoolStatus[] {
    return this.router?.warmPoolStatus() ?? [];
  }

  get inFlight(): number {
    return this.slots.inFlight;
  }

  private realRouter(): EngineRouter {
    if (!this.router) {
      const options = { runDir: join(stateDir(this.env), 'run'), extraLabels: containerLabels(this.env), gatewayImage: gatewayImage(this.env) };
      this.router = new EngineRouter((engine) => createSandboxRunner(options, this.env, engine));
    }
    return this.router;
  }
}

const RESERVED = new Set<string>([...Object.values(LABELS), `${LABEL_PREFIX}.policy`, `${LABEL_PREFIX}.policy-hash`]);

/** AGENT_DISPATCH_CONTAINER_LABELS="k=v,k2=v2": extra labels on every container and volume (e.g. for cleanup). */
export function containerLabels(env: NodeJS.ProcessEnv): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of (env['AGENT_DISPATCH_CONTAINER_LABELS'] ?? '').split(',')) {
    const eq = pair.indexOf('=');
    const key = (eq === -1 ? pair : pair.slice(0, eq)).trim();
    if (key && !RESERVED.has(key)) labels[key] = eq === -1 ? '' : pair.slice(eq + 1).trim();
  }
  return labels;
}
