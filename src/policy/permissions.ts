import type { AgentConfig, Settings } from '../config/schema.js';
import { PERMISSION_MODES, type PermissionMode, type Policy } from './schema.js';

/** Least to most permissive. `manual` is what newer Claude Code calls `default`. */
const RANK: Record<string, number> = Object.fromEntries(PERMISSION_MODES.map((m, i) => [m, i]));
RANK['manual'] = RANK['default']!;

export interface EffectiveTools {
  /** The mode passed as --permission-mode, or undefined to leave Claude Code's default. */
  permissionMode: PermissionMode | undefined;
  allowedTools: string[];
  disallowedTools: string[];
  notes: string[];
}

/**
 * The agent's own fields (or the settings defaults they inherit) may only narrow the policy:
 * the mode is capped at the policy's, pre-approved tools are cut to the policy's allow list, and the
 * policy's deny list is always added.
 */
export function effectiveTools(agent: AgentConfig, settings: Settings, policy: Policy): EffectiveTools {
  const notes: string[] = [];
  const requested = (agent.permission_mode ?? settings.default_permission_mode ?? '').trim() || undefined;
  const cap = policy.tools.permission_mode;
  let permissionMode: PermissionMode | undefined;
  if (requested === undefined) {
    permissionMode = cap === 'default' ? undefined : RANK[cap]! < RANK['default']! ? cap : undefined;
  } else if (!Object.hasOwn(RANK, requested)) {
    permissionMode = cap;
    notes.push(`permission_mode '${requested}' is unknown; the policy's '${cap}' is used`);
  } else if (RANK[requested]! > RANK[cap]!) {
    permissionMode = cap;
    notes.push(`permission_mode '${requested}' narrowed to '${cap}' by the policy`);
  } else {
    permissionMode = requested === 'manual' ? 'default' : (requested as PermissionMode);
  }

  const requestedAllow = agent.allowed_tools ?? settings.default_allowed_tools;
  let allowedTools = requestedAllow;
  if (policy.tools.allow !== null) {
    const limit = policy.tools.allow;
    const inheritsNothing = (agent.allowed_tools ?? null) === null && settings.default_allowed_tools.length === 0;
    allowedTools = inheritsNothing ? [...limit] : requestedAllow.filter((t) => covers(limit, t));
    const dropped = requestedAllow.filter((t) => !covers(limit, t));
    if (dropped.length > 0) notes.push(`allowed_tools not permitted by the policy were dropped: ${dropped.join(', ')}`);
  }

  const requestedDeny = agent.disallowed_tools ?? settings.default_disallowed_tools;
  const disallowedTools = unique([...policy.tools.deny, ...requestedDeny]);
  const overlap = allowedTools.filter((t) => disallowedTools.includes(t) || disallowedTools.includes(toolName(t)));
  if (overlap.length > 0) {
    allowedTools = allowedTools.filter((t) => !overlap.includes(t));
    notes.push(`denied tools removed from the allowed list: ${overlap.join(', ')}`);
  }
  return { permissionMode, allowedTools: unique(allowedTools), disallowedTools, notes };
}

/** `Bash` in the policy covers `Bash(git *)` in an agent; otherwise names must match exactly. */
function covers(limit: string[], tool: string): boolean {
  return limit.includes(tool) || limit.includes(toolName(tool));
}

export function toolName(pattern: string): string {
  const paren = pattern.indexOf('(');
  return paren === -1 ? pattern : pattern.slice(0, paren);
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}

export function permissionRank(mode: string): number | undefined {
  return Object.hasOwn(RANK, mode) ? RANK[mode] : undefined;
}
