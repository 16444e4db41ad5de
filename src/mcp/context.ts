import { configPath as defaultConfigPath, stateDir } from '../config/paths.js';
import type { DispatchConfig } from '../config/schema.js';
import type { DispatchCache } from '../dispatch/cache.js';
import { DispatchCore } from '../dispatch/core.js';
import type { Sandbox } from '../dispatch/dispatcher.js';
import type { JobStore } from '../dispatch/job-store.js';
import { LOCAL_CALLER, type Caller } from '../core/caller.js';

export interface ContextOptions {
  /** Share one core (one concurrency budget, one cache, one job store) between many sessions: the HTTP service. */
  core?: DispatchCore;
  /** Who calls this session's tools; default the local stdio user. */
  caller?: Caller;
}

/** What the tool handlers share: the orchestration core. Config is re-read on every call, so new agents appear without a restart. */
export class ServerContext {
  readonly dispatcher: DispatchCore;
  readonly caller: Caller;

  /** `sandbox` replaces the Docker runner (tests of the tool layer); the server always uses the real one. */
  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    sandbox?: Sandbox,
    options: ContextOptions = {},
  ) {
    this.dispatcher = options.core ?? new DispatchCore(env, sandbox);
    this.caller = options.caller ?? LOCAL_CALLER;
  }

  /** The server's environment (DOCKER_HOST and friends for engine calls). */
  environment(): NodeJS.ProcessEnv {
    return this.env;
  }

  jobs(): JobStore {
    return this.dispatcher.jobs.store;
  }

  configPath(): string {
    return defaultConfigPath(this.env);
  }

  configDir(): string {
    return stateDir(this.env);
  }

  config(): DispatchConfig {
    return this.dispatcher.config();
  }

  cacheFor(config: DispatchConfig): DispatchCache | undefined {
    return this.dispatcher.cacheFor(config);
  }

  /** Drop an agent's cached results after a config change, without re-reading a config that may be broken. */
  invalidateAgent(name: string): void {
    this.dispatcher.invalidateAgent(name);
  }
}
