import { AppError } from '../errors.js';
import type { AgentConfig, Settings } from '../config/schema.js';
import type { EffectiveTools } from './permissions.js';
import type { Policy } from './schema.js';
import { flagLikeProblem, wordProblem } from './flag-value.js';

/** The spend cap in force: the agent's, else the settings default (0 and null mean none). */
export function effectiveBudget(agent: AgentConfig, settings: Settings): number | undefined {
  return agent.max_budget_usd || settings.default_max_budget_usd || undefined;
}

/** The settings sources claude reads besides the managed file (see claudeFlags). */
export const SETTING_SOURCES = ['--setting-sources', 'project'] as const;

/**
 * The `claude` flags that follow `-p <prompt> --output-format …`, as an argument list (never a shell string).
 * A value that starts with `-` would be parsed by claude as a new flag (the original's 0.5.0 fix), so it is refused.
 */
export function claudeFlags(agent: AgentConfig, settings: Settings, tools: EffectiveTools, mcpServers: Policy['tools']['mcp_servers'] = 'none'): string[] {
  const args: string[] = [];
  const budget = effectiveBudget(agent, settings);
  if (budget !== undefined) args.push('--max-budget-usd', String(budget));
  if (agent.model) args.push('--model', checked('model', agent.model, wordProblem));
  // Always passed (also 'default'): with no flag, a repo's .claude/settings.json defaultMode would decide.
  args.push('--permission-mode', checked('permission_mode', tools.permissionMode, wordProblem));
  // Only the repo's project settings (and the managed file): never user settings, which live in the writable
  // session volume (~/.claude/settings.json), nor the user- and local-scope MCP servers kept in its .claude.json.
  // `project` keeps the repo's CLAUDE.md (an empty list drops it, and .mcp.json) and its .mcp.json servers, which
  // tools.mcp_servers then admits or not; `project,local` would still start the .claude.json local-scope servers
  // (checked against 2.1.197).
  args.push(...SETTING_SOURCES);
  // No MCP server at all: a second layer under the managed allowedMcpServers (see ManagedSettings).
  if (mcpServers === 'none') args.push('--strict-mcp-config');
  for (const tool of tools.allowedTools) args.push('--allowedTools', checked('allowed tool', tool));
  for (const tool of tools.disallowedTools) args.push('--disallowedTools', checked('disallowed tool', tool));
  return args;
}

export function checked(label: string, value: string, rule: (label: string, value: string) => string | undefined = flagLikeProblem): string {
  const problem = rule(label, value);
  if (problem) {
    throw new AppError('INVALID_INPUT', `Refusing to dispatch: ${problem}.`, { hint: `Fix the ${label} in agents.yaml (agent-dispatch update <name> ...).` });
  }
  return value;
}
