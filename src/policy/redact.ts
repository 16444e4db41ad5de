import type { CompiledSandbox } from './compile.js';
import { CREDENTIAL_ENV, type Policy } from './schema.js';

const PASSED = '<passed from the server environment>';

/**
 * The compiled sandbox with every value that came from the server environment replaced, so that
 * `policy show` and `policy check --json` never print a secret. Fixed values (HOME, env.set, ...) stay.
 * The host's base URL is pinned in the managed settings too, and is replaced there as well.
 */
export function redactCompiled(compiled: CompiledSandbox, policy: Policy): CompiledSandbox {
  const fromHost = new Set<string>([...policy.env.pass, ...(policy.credentials === 'env' ? [...CREDENTIAL_ENV, 'ANTHROPIC_BASE_URL'] : [])]);
  const Env = compiled.container.Env.map((entry) => {
    const name = entry.slice(0, entry.indexOf('='));
    return fromHost.has(name) ? `${name}=${PASSED}` : entry;
  });
  const hostBaseUrl = policy.credentials === 'env' && policy.network.mode !== 'gateway';
  const managedEnv = Object.fromEntries(
    Object.entries(compiled.managedSettings.env).map(([name, value]) => [name, hostBaseUrl && name === 'ANTHROPIC_BASE_URL' && value !== '' ? PASSED : value]),
  );
  return {
    ...compiled,
    container: { ...compiled.container, Env },
    managedSettings: { ...compiled.managedSettings, env: managedEnv },
  };
}
