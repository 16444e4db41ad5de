import { homedir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { readFileSync, realpathSync } from 'node:fs';

/** `AGENT_DISPATCH_CONFIG`, else `~/.config/agent-dispatch/agents.yaml` (evaluated per call). */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  const override = env['AGENT_DISPATCH_CONFIG'];
  if (override) return resolve(expandHome(override));
  return join(homedir(), '.config', 'agent-dispatch', 'agents.yaml');
}

/** Where user policies, jobs and audit records live: beside agents.yaml. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  return dirname(configPath(env));
}

export function jobsDir(env: NodeJS.ProcessEnv = process.env): string {
  const override = env['AGENT_DISPATCH_JOBS_DIR'];
  return override ? resolve(expandHome(override)) : join(stateDir(env), 'jobs');
}

/** `~` and `~user` expansion; `~unknownuser` is an error, as in the original. */
export function expandHome(value: string): string {
  if (!value.startsWith('~')) return value;
  const slash = value.indexOf('/');
  const user = slash === -1 ? value.slice(1) : value.slice(1, slash);
  const rest = slash === -1 ? '' : value.slice(slash);
  if (user === '' || user === userInfo().username) return homedir() + rest;
  const home = passwdHome(user);
  if (!home) throw new Error(`unknown user '${user}' in '${value}'`);
  return home + rest;
}

/** /etc/passwd is the only portable lookup of another user's home without a native addon. */
function passwdHome(user: string): string | undefined {
  let text: string;
  try {
    text = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === user && fields[5]) return fields[5];
  }
  return undefined;
}

/** Absolute, `~`-expanded, symlinks resolved where the path exists (like Python's Path.resolve()). */
export function expandDirectory(value: string): string {
  const absolute = resolve(expandHome(value));
  try {
    return realpathSync(absolute);
  } catch {
    return absolute;
  }
}
