import type { AgentConfig, Settings } from '../config/schema.js';
import { AppError } from '../errors.js';
import { checked } from './claude-args.js';
import { PERMISSION_MODES, type PermissionMode, type Policy } from './schema.js';
import { toolPatternProblem } from './tool-pattern.js';

/** Least to most permissive. `manual` is what newer Claude Code calls `default`. */
const RANK: Record<string, number> = Object.fromEntries(PERMISSION_MODES.map((m, i) => [m, i]));
RANK['manual'] = RANK['default']!;

export interface EffectiveTools {
  /** The mode passed as --permission-mode: always set, so a repo's own `defaultMode` cannot raise it. */
  permissionMode: PermissionMode;
  allowedTools: string[];
  disallowedTools: string[];
  notes: string[];
}

/** The least permissive mode: what an unknown requested mode gets. */
const LEAST_PERMISSIVE: PermissionMode = PERMISSION_MODES[0];

/**
 * The agent's own fields (or the settings defaults they inherit) may only narrow the policy:
 * the mode is capped at the policy's, pre-approved tools are cut to the policy's allow list, and the
 * policy's deny list is always added. Every tool entry in effect must be one tool pattern
 * (`isValidToolPattern`); otherwise this throws INVALID_INPUT naming the entry.
 */
export function effectiveTools(agent: AgentConfig, settings: Settings, policy: Policy): EffectiveTools {
  const notes: string[] = [];
  const requested = (agent.permission_mode ?? settings.default_permission_mode ?? '').trim() || undefined;
  const cap = policy.tools.permission_mode;
  let permissionMode: PermissionMode;
  if (requested === undefined) {
    // Explicitly 'default' (or the cap when it is narrower): no flag would let the repo's settings decide.
    permissionMode = RANK[cap]! < RANK['default']! ? cap : 'default';
  } else if (!Object.hasOwn(RANK, requested)) {
    permissionMode = LEAST_PERMISSIVE;
    notes.push(`permission_mode '${requested}' is unknown; the least permissive mode '${LEAST_PERMISSIVE}' is used`);
  } else if (RANK[requested]! > RANK[cap]!) {
    permissionMode = cap;
    notes.push(`permission_mode '${requested}' narrowed to '${cap}' by the policy`);
  } else {
    permissionMode = requested === 'manual' ? 'default' : (requested as PermissionMode);
  }

  const requestedAllow = validTools(
    agent.allowed_tools ?? settings.default_allowed_tools,
    (agent.allowed_tools ?? null) !== null ? 'allowed_tools' : 'settings.default_allowed_tools',
  );
  let allowedTools = requestedAllow;
  if (policy.tools.allow !== null) {
    const limit = policy.tools.allow;
    const inheritsNothing = (agent.allowed_tools ?? null) === null && settings.default_allowed_tools.length === 0;
    allowedTools = inheritsNothing ? [...limit] : requestedAllow.filter((t) => covers(limit, t));
    const dropped = requestedAllow.filter((t) => !covers(limit, t));
    if (dropped.length > 0) notes.push(`allowed_tools not permitted by the policy were dropped: ${dropped.join(', ')}`);
  }

  const requestedDeny = validTools(
    agent.disallowed_tools ?? settings.default_disallowed_tools,
    (agent.disallowed_tools ?? null) !== null ? 'disallowed_tools' : 'settings.default_disallowed_tools',
  );
  const disallowedTools = unique([...policy.tools.deny, ...requestedDeny]);
  const overlap = allowedTools.filter((t) => disallowedTools.includes(t) || disallowedTools.includes(toolName(t)));
  if (overlap.length > 0) {
    allowedTools = allowedTools.filter((t) => !overlap.includes(t));
    notes.push(`denied tools removed from the allowed list: ${overlap.join(', ')}`);
  }
  return { permissionMode, allowedTools: unique(allowedTools), disallowedTools, notes };
}

/** Refuse (before any narrowing) an entry claude would read as a flag or as more than one tool. */
function validTools(tools: string[], label: string): string[] {
  for (const tool of tools) {
    checked(`${label} entry`, tool);
    const problem = toolPatternProblem(tool);
    if (problem) {
      throw new AppError('INVALID_INPUT', `Refusing to dispatch: ${label} entry ${problem}.`, {
        hint: `Fix ${label} in agents.yaml (agent-dispatch update <name> ...): one tool per entry, e.g. Read, Grep, "Bash(git diff:*)".`,
      });
    }
  }
  return tools;
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
