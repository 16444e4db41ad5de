/**
 * What `claude mcp get NAME` and `claude mcp list` print (Claude Code 2.1.x), parsed. Pure: text in, data out.
 * Claude Code has no machine-readable form of either, so the human one is read, leniently.
 */

/** `local`, `project`, `user`, `dynamic`, `enterprise`, `claudeai`, `agent`, or a label this parser does not know. */
export type McpScope = string;

/** The scopes `claude mcp remove NAME -s SCOPE` can remove from. */
export const REMOVABLE_SCOPES: readonly McpScope[] = ['local', 'project', 'user'];

export interface McpServerView {
  name: string;
  /** `stdio`, `http`, `sse`; undefined when Claude Code did not say (a registration without a `type` key). */
  type: string | undefined;
  /** stdio: the command, as registered (environment variables unexpanded). */
  command: string | undefined;
  /** stdio: the arguments, joined with spaces, as Claude Code prints them (a space inside one is ambiguous). */
  args: string | undefined;
  /** http and sse: the URL. */
  url: string | undefined;
}

export interface McpGetResult extends McpServerView {
  scope: McpScope;
  status: string;
}

export type Transport = 'stdio' | 'http' | 'sse';

export interface McpListEntry {
  name: string;
  /** stdio: command and arguments joined with spaces; http and sse: the URL. */
  endpoint: string;
  transport: Transport;
  status: string;
}

/** One name defined in several scopes with different endpoints (what `mcp list` reports under "Conflicting scopes"). */
export interface McpConflict {
  name: string;
  /** A URL endpoint is reported as `http` (the diagnostic does not tell http from sse). */
  endpoints: { scope: McpScope; endpoint: string; transport: Transport }[];
}

export interface McpList {
  entries: McpListEntry[];
  conflicts: McpConflict[];
}

const SCOPE_LABELS: [RegExp, McpScope][] = [
  [/^Local config\b/, 'local'],
  [/^Project config\b/, 'project'],
  [/^User config\b/, 'user'],
  [/^Dynamic config\b/, 'dynamic'],
  [/^Enterprise config\b/, 'enterprise'],
  [/^claude\.ai config\b/, 'claudeai'],
  [/^Agent config\b/, 'agent'],
];

export function scopeOfLabel(label: string): McpScope {
  return SCOPE_LABELS.find(([pattern]) => pattern.test(label))?.[1] ?? label;
}

/** `claude mcp get NAME` stdout (exit 0); undefined when it is not that shape. */
export function parseMcpGet(stdout: string): McpGetResult | undefined {
  const lines = stdout.replace(/\r/g, '').split('\n');
  const start = lines.findIndex((line) => /^\S.*:$/.test(line));
  if (start === -1) return undefined;
  const fields = new Map<string, string>();
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '') break;
    // Two spaces: a field; four: an environment variable or header under the field before it.
    const field = /^ {2}([A-Za-z][A-Za-z ]*):(?: (.*))?$/.exec(line);
    if (field) fields.set(field[1]!, field[2] ?? '');
  }
  const scope = fields.get('Scope');
  if (scope === undefined) return undefined;
  return {
    name: lines[start]!.slice(0, -1),
    scope: scopeOfLabel(scope),
    status: fields.get('Status') ?? '',
    type: fields.get('Type'),
    command: fields.get('Command'),
    args: fields.has('Command') ? (fields.get('Args') ?? '').trimEnd() : undefined,
    url: fields.get('URL'),
  };
}

/** `claude mcp get NAME` stderr when there is no such server (exit 1). */
export function isNoSuchServer(stderr: string): boolean {
  return /^No MCP server named "/m.test(stderr);
}

/**
 * A server line: `NAME: ENDPOINT - STATUS`. A status starts with a mark: ✔ ✘ ⏸ ! (√ × where the terminal
 * lacks the symbols); the last ` - <mark>` ends the endpoint, which may itself contain ` - `.
 */
const ENTRY = /^(.+?): (.*) - ([✔✘⏸!√×] .*)$/u;
const CONFLICT = /Server "([^"]+)" is defined in multiple scopes with different endpoints: (.*)\. OAuth tokens are stored per endpoint/;
const URL_LIKE = /^[a-z][a-z0-9+.-]*:\/\/\S*$/i;
const CONFLICT_ITEM = /(?:^|, )(user|project|local|enterprise|dynamic) \(/g;

/** `claude mcp list` stdout: one entry per server Claude Code would use, and the names that conflict across scopes. */
export function parseMcpList(stdout: string): McpList {
  const entries: McpListEntry[] = [];
  const conflicts: McpConflict[] = [];
  for (const line of stdout.replace(/\r/g, '').split('\n')) {
    const conflict = CONFLICT.exec(line);
    if (conflict) {
      conflicts.push({ name: conflict[1]!, endpoints: conflictEndpoints(conflict[2]!) });
      continue;
    }
    const entry = ENTRY.exec(line);
    if (entry) entries.push({ name: entry[1]!, ...endpointOf(entry[2]!), status: entry[3]! });
  }
  return { entries, conflicts };
}

function endpointOf(text: string): Pick<McpListEntry, 'endpoint' | 'transport'> {
  const remote = /^(.*) \((HTTP|SSE)\)$/.exec(text);
  if (remote) return { endpoint: remote[1]!, transport: remote[2] === 'HTTP' ? 'http' : 'sse' };
  if (URL_LIKE.test(text)) return { endpoint: text, transport: 'http' }; // a claude.ai connector: the URL alone
  // `${command} ${args.join(' ')}`: a server with no arguments leaves a trailing space.
  return { endpoint: text.endsWith(' ') ? text.slice(0, -1) : text, transport: 'stdio' };
}

/** `user (cmd args), project (cmd args)`: each item runs to the `)` before the next `, scope (`. */
function conflictEndpoints(text: string): McpConflict['endpoints'] {
  const starts = [...text.matchAll(CONFLICT_ITEM)];
  return starts.map((match, i) => {
    const from = match.index + match[0].length;
    const to = i + 1 < starts.length ? starts[i + 1]!.index : text.length;
    const item = text.slice(from, to);
    const endpoint = item.endsWith(')') ? item.slice(0, -1) : item;
    return { scope: match[1]!, endpoint, transport: URL_LIKE.test(endpoint) ? 'http' : 'stdio' };
  });
}
