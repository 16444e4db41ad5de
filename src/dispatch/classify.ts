import { permissionRank, toolName } from '../policy/permissions.js';
import { isRecord, own, pyTruthy, toText, truncate } from './text.js';

/** Substrings (lower case) that mark an error as a permission problem (original §4.7). */
const PERMISSION_PATTERNS = [
  'permission denied',
  'not allowed',
  'not permitted',
  'disallowed tool',
  'permission mode',
  'not have permission',
  'tool is not available',
  'tool_use is not allowed',
  'unauthorized',
];

/** Classifies any value, coerced to text first: claude's error paths have produced null, objects and numbers. */
export function classifyError(text: unknown): 'permission' | 'cli_error' {
  const lower = (pyTruthy(text) ? toText(text) : '').toLowerCase();
  return PERMISSION_PATTERNS.some((pattern) => lower.includes(pattern)) ? 'permission' : 'cli_error';
}

/**
 * The agent's sandbox policy, as far as it bounds what `agent-dispatch update` can grant: the agent's
 * allowed_tools are cut to `toolsAllow`, `toolsDeny` is always removed, and a mode above `modeCap` is narrowed
 * to it (src/policy/permissions.ts). A hint whose commands the policy would undo says so.
 */
export interface PolicyBounds {
  /** The agent's `policy` field: a preset name or a policy file path. */
  name: string;
  /** The policy's tools.allow; null = no limit. */
  toolsAllow: string[] | null;
  /** The policy's tools.deny. */
  toolsDeny?: string[];
  /** The policy's tools.permission_mode: the most permissive mode an agent may use. */
  modeCap: string;
}

/** The tools the permission hint suggests pre-approving. */
const SUGGESTED_TOOLS = ['Bash', 'Read', 'Edit', 'Write', 'Glob', 'Grep'];

/** Appended to a permission error. The commands it names are real `agent-dispatch update` flags. */
export function permissionHint(agent: string, policy?: PolicyBounds, deniedTools: readonly string[] = []): string {
  const note = policyNote(agent, policy, [...SUGGESTED_TOOLS, ...deniedTools]);
  return (
    `\n\nHint: Agent '${agent}' was denied a tool or action. To fix, configure permissions in agents.yaml:\n` +
    `  agent-dispatch update ${agent} --permission-mode bypassPermissions\n` +
    `  agent-dispatch update ${agent} --allowed-tools Bash,Read,Edit,Write,Glob,Grep` +
    (note ? `\n${note}` : '')
  );
}

/**
 * When the policy would undo the hint's commands for these tools or for bypassPermissions, the sentence that
 * says so and where to widen it; '' when the policy does not bound them (or is unknown).
 */
export function policyNote(agent: string, policy: PolicyBounds | undefined, tools: readonly string[]): string {
  if (!policy) return '';
  const bounds: string[] = [];
  const allow = policy.toolsAllow;
  if (allow !== null && tools.some((t) => !allow.includes(t) && !allow.includes(toolName(t)))) {
    bounds.push('tools outside its tools.allow');
  }
  const deny = policy.toolsDeny ?? [];
  if (tools.some((t) => deny.includes(t) || deny.includes(toolName(t)))) bounds.push('tools in its tools.deny');
  const cap = permissionRank(policy.modeCap);
  if (cap === undefined || cap < permissionRank('bypassPermissions')!) bounds.push(`modes above '${policy.modeCap}'`);
  if (bounds.length === 0) return '';
  const which = bounds.length === 1 ? bounds[0]! : `${bounds.slice(0, -1).join(', ')} and ${bounds[bounds.length - 1]!}`;
  return (
    `Note: the agent's sandbox policy '${policy.name}' bounds these: ${which} are dropped — ` +
    `widen the policy file, then check with agent-dispatch policy check --agent ${agent}.`
  );
}

/** Bounds on what a (possibly hostile) agent can put into a result through `permission_denials`. */
const MAX_DENIED_TOOLS = 10;
const MAX_TOOL_NAME_CHARS = 100;

/**
 * Tool names from the result's `permission_denials` (`{tool_name}`, `{tool}` or a bare string per entry):
 * de-duplicated in order, at most 10 names of at most 100 characters. Undefined when there are none.
 */
export function extractDeniedTools(data: unknown): string[] | undefined {
  if (!isRecord(data)) return undefined;
  const denials = own(data, 'permission_denials');
  if (!Array.isArray(denials)) return undefined;
  const names: string[] = [];
  for (const entry of denials) {
    let name: string;
    if (isRecord(entry)) {
      const named = pyTruthy(own(entry, 'tool_name')) ? own(entry, 'tool_name') : own(entry, 'tool');
      name = pyTruthy(named) ? toText(named) : '';
    } else {
      name = toText(entry);
    }
    name = truncate(name || 'unknown', MAX_TOOL_NAME_CHARS);
    if (!names.includes(name)) names.push(name);
    if (names.length >= MAX_DENIED_TOOLS) break;
  }
  return names.length > 0 ? names : undefined;
}

/** The soft `hint` of a result that succeeded with some tool calls denied. */
export function denialHint(agent: string, deniedTools: string[], policy?: PolicyBounds): string {
  const note = policyNote(agent, policy, deniedTools);
  return (
    `${deniedTools.length} tool call(s) were denied by permissions: ${deniedTools.join(', ')}. ` +
    'The result may be incomplete — the agent could not use these tools. ' +
    `To grant access: update_agent(name='${agent}', allowed_tools='${deniedTools.join(',')}') or ` +
    `permission_mode='bypassPermissions' (CLI: agent-dispatch update ${agent} --allowed-tools ...).` +
    (note ? ` ${note}` : '')
  );
}

const MAX_ERROR_DETAILS = 5;
const MAX_ERROR_DETAIL_CHARS = 300;

/**
 * The failure reason of an error payload that has no `result` text (budget stop, max turns, execution error):
 * the first five non-blank `errors` entries, 300 characters each, else the `subtype`. Empty when neither helps.
 */
export function cliErrorDetails(data: Record<string, unknown>): string {
  const errors = own(data, 'errors');
  if (Array.isArray(errors)) {
    const details = errors
      .slice(0, MAX_ERROR_DETAILS)
      .map((item) => toText(item).trim())
      .filter((text) => text !== '')
      .map((text) => truncate(text, MAX_ERROR_DETAIL_CHARS));
    if (details.length > 0) return details.join('; ');
  }
  const subtype = own(data, 'subtype');
  if (typeof subtype === 'string' && subtype.trim()) {
    return `claude CLI reported '${truncate(subtype.trim(), MAX_ERROR_DETAIL_CHARS)}'`;
  }
  return '';
}
