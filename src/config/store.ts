import { configPath } from './paths.js';
import { loadConfig, requireConfig } from './load.js';
import { saveConfig } from './save.js';
import { withFileLock } from './lock.js';
import type { DispatchConfig } from './schema.js';

/**
 * Load → mutate → save under the config lock. The mutation is synchronous on purpose: it works on the
 * freshly loaded config, and a broken config is refused (never overwritten).
 */
export async function mutateConfig<T>(mutate: (config: DispatchConfig) => T, path: string = configPath()): Promise<T> {
  return withFileLock(`${path}.lock`, () => {
    const config = requireConfig(loadConfig(path));
    const result = mutate(config);
    saveConfig(config, path);
    return result;
  });
}

export function readConfig(path: string = configPath()): DispatchConfig {
  return requireConfig(loadConfig(path));
}
