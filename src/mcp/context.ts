import { configPath as defaultConfigPath, jobsDir, stateDir } from '../config/paths.js';
import { loadConfig, requireConfig } from '../config/load.js';
import type { DispatchConfig } from '../config/schema.js';
import { DispatchCache } from '../core/cache.js';
import type { Sandbox } from '../dispatch/dispatcher.js';
import { JobStore } from '../dispatch/job-store.js';
import { DispatchService } from '../dispatch/service.js';

/** What the tool handlers share. Config is re-read on every call, so new agents appear without a restart. */
export class ServerContext {
  private cache: DispatchCache | undefined;
  readonly dispatcher: DispatchService;

  /** `sandbox` replaces the Docker runner (tests of the tool layer); the server always uses the real one. */
  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    sandbox?: Sandbox,
  ) {
    this.dispatcher = new DispatchService(env, sandbox);
  }

  /** The server's environment (DOCKER_HOST and friends for engine calls). */
  environment(): NodeJS.ProcessEnv {
    return this.env;
  }

  jobs(): JobStore {
    return new JobStore(jobsDir(this.env));
  }

  configPath(): string {
    return defaultConfigPath(this.env);
  }

  configDir(): string {
    return stateDir(this.env);
  }

  config(): DispatchConfig {
    return requireConfig(loadConfig(this.configPath()));
  }

  /** The live cache, re-created (emptied) when ttl or max_size change; undefined when caching is off. */
  cacheFor(config: DispatchConfig): DispatchCache | undefined {
    const settings = config.settings.cache;
    if (!settings.enabled) return undefined;
    if (!this.cache || this.cache.ttl !== settings.ttl || this.cache.maxSize !== settings.max_size) {
      this.cache = new DispatchCache(settings.ttl, settings.max_size);
    }
    return this.cache;
  }

  /** Drop an agent's cached results after a config change, without re-reading a config that may be broken. */
  invalidateAgent(name: string): void {
    this.cache?.invalidateAgent(name);
  }
}
