/**
 * Which MCP registrations put the wrong program behind agent-dispatch: `agent-dispatch` itself as anything but
 * this program (in any scope, also one a nearer scope hides), and any other name that runs the Python original.
 */
import type { ClaudeMcp, Outcome } from './claude-mcp.js';
import type { McpGetResult, McpList, McpScope } from './mcp-output.js';
import type { Endpoint, Verdict } from './registration.js';

export const SERVER_NAME = 'agent-dispatch';

export interface Registration {
  name: string;
  /** undefined when `claude mcp get` could not say (the name was seen only in `claude mcp list`). */
  scope: McpScope | undefined;
  endpoint: Endpoint;
  verdict: Verdict;
}

export interface Survey {
  /** What Claude Code runs as agent-dispatch from this directory, if anything. */
  current: Registration | undefined;
  /** Registrations that must go, `current` first when it is one of them. */
  foreign: Registration[];
  /** Why the survey may have missed some (a failed `claude mcp list`). */
  incomplete: string | undefined;
}

export type Judge = (endpoint: Endpoint) => Verdict;

export function isForeign(name: string, verdict: Verdict): boolean {
  return name === SERVER_NAME ? verdict.kind !== 'ours' : verdict.kind === 'original';
}

/** Fails only when `claude mcp get agent-dispatch` does; a failed `list` leaves the survey `incomplete`. */
export function survey(mcp: ClaudeMcp, judge: Judge): Outcome<Survey> {
  const got = mcp.get(SERVER_NAME);
  if (!got.ok) return got;
  const listed = mcp.list();
  const list: McpList = listed.ok ? listed.value : { entries: [], conflicts: [] };
  const registration = (view: McpGetResult) => registrationOf(view, list, judge);

  const current = got.value && registration(got.value);
  const foreign: Registration[] = current && isForeign(SERVER_NAME, current.verdict) ? [current] : [];
  const add = (r: Registration) => {
    if (isForeign(r.name, r.verdict) && !foreign.some((f) => f.name === r.name && f.scope === r.scope)) foreign.push(r);
  };
  for (const entry of list.entries) {
    if (entry.name === SERVER_NAME || judge({ transport: entry.transport, line: entry.endpoint }).kind !== 'original') continue;
    const other = mcp.get(entry.name);
    if (other.ok && other.value) add(registration(other.value));
    else add({ name: entry.name, scope: undefined, endpoint: { transport: entry.transport, line: entry.endpoint }, verdict: { kind: 'original' } });
  }
  // What a nearer scope hides: `mcp get` shows one scope per name, the conflict diagnostic lists them all.
  for (const conflict of list.conflicts) {
    for (const { scope, endpoint, transport } of conflict.endpoints) {
      const line = { transport, line: endpoint };
      add({ name: conflict.name, scope, endpoint: line, verdict: judge(line) });
    }
  }
  return { ok: true, value: { current, foreign, incomplete: listed.ok ? undefined : listed.message } };
}

export function registrationOf(view: McpGetResult, list: McpList, judge: Judge): Registration {
  const endpoint = endpointOf(view, list);
  return { name: view.name, scope: view.scope, endpoint, verdict: judge(endpoint) };
}

/** `mcp get` prints no command for a registration without a `type`; `mcp list` still shows its command line. */
function endpointOf(view: McpGetResult, list: McpList): Endpoint {
  if (view.command !== undefined) {
    return { transport: 'stdio', command: view.command, args: view.args, line: view.args ? `${view.command} ${view.args}` : view.command };
  }
  if (view.url !== undefined) return { transport: view.type === 'sse' ? 'sse' : 'http', line: view.url };
  const entry = list.entries.find((e) => e.name === view.name);
  return entry ? { transport: entry.transport, line: entry.endpoint } : { transport: 'unknown', line: '' };
}
