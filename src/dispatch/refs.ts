import { createHash } from 'node:crypto';
import type { AgentConfig, DispatchConfig, Settings } from '../config/schema.js';
import { AppError } from '../errors.js';
import { loadPolicy } from '../policy/load.js';
import type { DispatchResult } from './types.js';
import { requireGroup } from '../core/groups.js';
import { clampWhole } from '../core/validate.js';

/** Unknown group, empty group and non-member are refused with the original's messages. */
export function requireGroupMember(config: DispatchConfig, group: string, agent: string): void {
  const g = requireGroup(config, group);
  if (g.members.length === 0) {
    throw new AppError('INVALID_INPUT', `Group '${group}' has no members yet. Add some with 'agent-dispatch group add' or by editing agents.yaml.`, {
      hint: 'Dispatch without group=, or add members to the group first; inspect_group(name) shows a group.',
    });
  }
  if (!g.members.some((m) => m.agent === agent)) {
    throw new AppError('INVALID_INPUT', `Agent '${agent}' is not a member of group '${group}'. Members: ${g.members.map((m) => m.agent).join(', ')}`, {
      hint: `Dispatch to one of the members, or without group=; inspect_group('${group}') shows who is in it.`,
    });
  }
}

/** The group's shared context folded into the caller's (so the cache key covers it); group="" changes nothing. */
export function mergeGroupContext(config: DispatchConfig, group: string, context: string): string {
  if (!group) return context;
  const shared = (config.groups[group]?.shared_context ?? '').trim();
  const own = context.trim();
  if (shared && own) return `Shared context (group '${group}'):\n${shared}\n\n${own}`;
  if (shared) return `Shared context (group '${group}'):\n${shared}`;
  return context;
}

/**
 * A digest of everything about the agent that changes its answers: its config fields, the settings it inherits
 * (`default_*`: tools, permission mode, budget, timeout shape the compiled flags) and the policy file's content,
 * so an edit from another process (the CLI) misses the cache by itself. Settings that only govern the server
 * (cache, concurrency, retention, depth limit) and who may use the agent (users, admins) are left out: changing
 * them keeps cached answers valid.
 */
export function agentFingerprint(agent: AgentConfig, settings: Settings, configDir: string): string {
  const policy = loadPolicy(agent.policy, configDir);
  const policyHash = policy.kind === 'ok' ? policy.hash : policy.kind;
  const { cache: _cache, max_concurrency: _concurrency, job_retention_days: _retention, max_dispatch_depth: _depth, admins: _admins, ...inherited } = settings;
  const { users: _users, ...shape } = agent;
  return createHash('sha256').update(JSON.stringify({ agent: shape, settings: inherited, policyHash })).digest('hex').slice(0, 32);
}

export const DEFAULT_SUMMARY_CHARS = 500;
export const MAX_SUMMARY_CHARS = 100_000;

/**
 * What `return_ref` returns instead of the whole result: a ref, a summary and the result's metadata. An overlay
 * result's patch text stays behind the ref (fetch_result); `patch_file`/`patch_truncated` show that one exists.
 */
export function refPayload(ref: string, result: DispatchResult, summaryChars: number): Record<string, unknown> {
  const chars = clampWhole(summaryChars, 0, MAX_SUMMARY_CHARS, DEFAULT_SUMMARY_CHARS);
  const text = result.result ?? '';
  const payload: Record<string, unknown> = {
    ref,
    agent: result.agent,
    success: result.success,
    size: text.length,
    summary_chars: chars ? Math.min(text.length, chars) : 0,
    summary: chars ? text.slice(0, chars) : '',
  };
  for (const key of ['session_id', 'cost_usd', 'duration_ms', 'num_turns', 'error', 'error_type', 'denied_tools', 'hint', 'budget_exceeded', 'patch_file', 'patch_truncated'] as const) {
    if (result[key] !== undefined) payload[key] = result[key];
  }
  if ('parsed_result' in result) payload['parsed_result'] = result.parsed_result;
  return payload;
}

/** `fetch_result`: the stored result, cut to `maxChars` when asked (0 = whole). */
export function fetchedResult(result: DispatchResult, maxChars: number): Record<string, unknown> {
  const cap = Math.max(0, Math.trunc(maxChars) || 0);
  const text = result.result ?? '';
  if (!cap || text.length <= cap) return { ...result };
  return { ...result, result: text.slice(0, cap), truncated: true, full_size: text.length };
}
