/**
 * The `claude mcp` subcommands init and doctor need, run as child processes with their output parsed.
 * `get` and `list` health-check servers (they spawn them), so their time limits allow Claude Code's own
 * 30 s connection timeout.
 */
import { spawnSync } from 'node:child_process';
import { describeError } from '../errors.js';
import { isNoSuchServer, parseMcpGet, parseMcpList, type McpGetResult, type McpList, type McpScope } from './mcp-output.js';

export type Outcome<T> = { ok: true; value: T } | { ok: false; message: string };

export interface ClaudeMcp {
  /** The server Claude Code would use under `name` (local, then project, then user), or undefined. */
  get(name: string): Outcome<McpGetResult | undefined>;
  list(): Outcome<McpList>;
  remove(name: string, scope: McpScope): Outcome<void>;
  /** `alreadyExists`: the name is taken in that scope. */
  addJson(name: string, json: string, scope: McpScope): Outcome<void> | { ok: false; alreadyExists: true; message: string };
}

const HEALTH_CHECK_MS = 60_000;
const EDIT_MS = 30_000;

export function claudeMcp(claude: string): ClaudeMcp {
  const run = (args: string[], timeout: number) => {
    const result = spawnSync(claude, ['mcp', ...args], { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout = result.stdout ?? '';
    const stderr = (result.stderr ?? '').trim();
    const what = `claude mcp ${args[0]}`;
    let failure: string | undefined;
    if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT') failure = `${what} timed out after ${timeout / 1000} s`;
    else if (result.error) failure = `${what} failed: ${describeError(result.error)}`;
    else if (result.status !== 0) failure = `${what} exited with code ${result.status ?? result.signal}${stderr ? `: ${stderr}` : ''}`;
    return { stdout, stderr, failure, exited: result.error === undefined };
  };
  return {
    get(name) {
      const r = run(['get', name], HEALTH_CHECK_MS);
      if (r.failure) return r.exited && isNoSuchServer(r.stderr) ? { ok: true, value: undefined } : { ok: false, message: r.failure };
      const parsed = parseMcpGet(r.stdout);
      return parsed ? { ok: true, value: parsed } : { ok: false, message: `could not read the output of claude mcp get ${name}: ${r.stdout.trim().split('\n')[0] ?? ''}` };
    },
    list() {
      const r = run(['list'], HEALTH_CHECK_MS);
      return r.failure ? { ok: false, message: r.failure } : { ok: true, value: parseMcpList(r.stdout) };
    },
    remove(name, scope) {
      const r = run(['remove', name, '-s', scope], EDIT_MS);
      return r.failure ? { ok: false, message: r.failure } : { ok: true, value: undefined };
    },
    addJson(name, json, scope) {
      const r = run(['add-json', name, json, '--scope', scope], EDIT_MS);
      if (!r.failure) return { ok: true, value: undefined };
      if (/already exists/i.test(r.stderr)) return { ok: false, alreadyExists: true, message: r.stderr };
      return { ok: false, message: r.exited && r.stderr ? r.stderr : r.failure };
    },
  };
}
