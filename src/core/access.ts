/**
 * Who may see and do what, by caller (src/core/caller.ts). The local caller (stdio, the CLI: the user who runs
 * the service) sees and may do everything, as before the HTTP service existed. An HTTP user sees only the agents
 * granted to them (`agents.<name>.users`, or `groups.<name>.users` for every member of that group) and may not
 * change the config; `settings.admins` see every agent and may. An agent a user may not see answers exactly like
 * an agent that does not exist: its existence is not leaked.
 */
import type { AgentConfig, DispatchConfig, GroupConfig } from '../config/schema.js';
import { AppError } from '../errors.js';
import { requireAgent } from './agents.js';
import type { Caller } from './caller.js';

/** The local caller and the users in settings.admins. */
export function isAdmin(config: DispatchConfig, caller: Caller): boolean {
  return limitedUser(config, caller) === undefined;
}

/** The user whose grants limit the caller; undefined when nothing does (the local caller, an admin). */
function limitedUser(config: DispatchConfig, caller: Caller): string | undefined {
  return caller.kind === 'user' && !(config.settings.admins ?? []).includes(caller.user) ? caller.user : undefined;
}

/** The names of the agents the caller may see and dispatch, in config order. */
export function visibleAgents(config: DispatchConfig, caller: Caller): string[] {
  const names = Object.keys(config.agents);
  const user = limitedUser(config, caller);
  if (user === undefined) return names;
  const viaGroups = new Set<string>();
  for (const group of Object.values(config.groups)) {
    if (group.users?.includes(user)) for (const member of group.members) viaGroups.add(member.agent);
  }
  return names.filter((name) => viaGroups.has(name) || config.agents[name]!.users?.includes(user) === true);
}

/**
 * The config as the caller may see it: only visible agents, and only groups with a visible member (holding
 * those members alone). Local callers and admins get the config itself. Lookups on the result (requireAgent,
 * requireGroup, the list views) then answer a hidden agent or group like a missing one.
 */
export function visibleConfig(config: DispatchConfig, caller: Caller): DispatchConfig {
  if (isAdmin(config, caller)) return config;
  const visible = new Set(visibleAgents(config, caller));
  const agents = ownRecord<AgentConfig>();
  for (const name of visible) agents[name] = config.agents[name]!;
  const groups = ownRecord<GroupConfig>();
  for (const [name, group] of Object.entries(config.groups)) {
    const members = group.members.filter((m) => visible.has(m.agent));
    if (members.length > 0) groups[name] = { ...group, members };
  }
  return { ...config, agents, groups };
}

/** Like requireAgent, over what the caller may see: a hidden agent gets the unknown agent's answer. */
export function requireVisibleAgent(config: DispatchConfig, name: string, caller: Caller): AgentConfig {
  const visible = visibleConfig(config, caller);
  if (caller.kind === 'user' && Object.keys(visible.agents).length === 0) throw noAgentGranted(caller.user, `Unknown agent: '${name}'. Available: (none granted to you)`);
  return requireAgent(visible, name);
}

/** The answer to a user who may see no agent at all (the same whatever exists). */
export function noAgentGranted(user: string, message = `No agents are granted to you (user '${user}').`): AppError {
  return new AppError('AGENT_NOT_FOUND', message, {
    hint: `Ask an admin of this dispatch service to add you ('${user}') to agents.<name>.users (or groups.<name>.users) in agents.yaml.`,
  });
}

/** Config changes (add_agent, update_agent, remove_agent, cache_clear) are for the local user and admins only. */
export function requireAdmin(config: DispatchConfig, caller: Caller, tool: string): void {
  const user = limitedUser(config, caller);
  if (user === undefined) return;
  throw new AppError('FORBIDDEN', `${tool} is for admins of this dispatch service; user '${user}' is not one.`, {
    hint: `An admin must do this: on the service host with the CLI (agent-dispatch add / update / remove), or over MCP with the token of a user listed in settings.admins.`,
  });
}

function ownRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}
