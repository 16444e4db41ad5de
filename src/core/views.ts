import { join } from 'node:path';
import type { AgentConfig, DispatchConfig, GroupConfig } from '../config/schema.js';
import { unknownGroupMembers } from '../config/schema.js';
import { stateDir } from '../config/paths.js';
import { AUDIT_FILE, lastAuditRecord, summariseEgress } from '../dispatch/audit.js';
import { ownerVisibleTo } from '../dispatch/job-state.js';
import { LOCAL_CALLER, type Caller } from './caller.js';
import { describePolicyProblem, loadPolicy } from '../policy/load.js';
import { summarizePolicy } from '../policy/summary.js';
import { collectMcpServers, detectDbs, detectStacks, directoryHealth, Listing, previewFile } from '../project/detect.js';
import { repoEntryKind } from '../project/safe-read.js';
import { clamp } from './validate.js';

type Json = Record<string, unknown>;

function exists(dir: string, file: string): boolean {
  return repoEntryKind(dir, file) !== undefined;
}

/** Policy name plus its one-line summary (or why it cannot be used); `seen` loads each ref once per listing. */
function policyView(agent: AgentConfig, configDir: string, seen = new Map<string, Json>()): Json {
  const cached = seen.get(agent.policy);
  if (cached) return cached;
  const load = loadPolicy(agent.policy, configDir);
  const view = load.kind === 'ok' ? { policy: agent.policy, policy_summary: summarizePolicy(load.policy) } : { policy: agent.policy, policy_error: describePolicyProblem(load) };
  seen.set(agent.policy, view);
  return view;
}

function permissionView(agent: AgentConfig): Json {
  const view: Json = {};
  if (agent.permission_mode) view['permission_mode'] = agent.permission_mode;
  if (agent.allowed_tools !== null && agent.allowed_tools !== undefined) view['allowed_tools'] = agent.allowed_tools;
  if (agent.disallowed_tools !== null && agent.disallowed_tools !== undefined) view['disallowed_tools'] = agent.disallowed_tools;
  if (agent.capabilities.length > 0) view['capabilities'] = agent.capabilities;
  if (agent.risky_capabilities.length > 0) view['risky_capabilities'] = agent.risky_capabilities;
  return view;
}

/** list_agents: one entry per agent, in config order. */
export function listAgentsView(config: DispatchConfig, configDir: string = stateDir()): Json[] {
  const policies = new Map<string, Json>();
  return Object.entries(config.agents).map(([name, agent]) => {
    const healthy = directoryHealth(agent.directory);
    const listing = healthy === true ? new Listing(agent.directory) : undefined;
    const entry: Json = {
      name,
      directory: agent.directory,
      description: agent.description,
      healthy,
      has_claude_md: listing?.has('CLAUDE.md') ?? false,
      has_mcp_config: listing?.has('.mcp.json') ?? false,
    };
    if (listing) {
      const servers = collectMcpServers(listing);
      const stacks = detectStacks(listing);
      const dbs = detectDbs(listing);
      if (servers.length > 0) entry['mcp_servers'] = servers;
      if (stacks.length > 0) entry['stacks'] = stacks;
      if (dbs.length > 0) entry['dbs'] = dbs;
    }
    return { ...entry, ...permissionView(agent), ...policyView(agent, configDir, policies) };
  });
}

/** inspect_agent: config, policy, health, detections and previews; no subprocess. `caller` sees only their own last dispatch. */
export function inspectAgentView(name: string, agent: AgentConfig, previewLines: number, configDir: string = stateDir(), caller: Caller = LOCAL_CALLER): Json {
  const view: Json = { name, directory: agent.directory, description: agent.description, timeout: agent.timeout };
  if (agent.model) view['model'] = agent.model;
  if (agent.max_budget_usd !== null && agent.max_budget_usd !== undefined) view['max_budget_usd'] = agent.max_budget_usd;
  Object.assign(view, permissionView(agent), policyView(agent, configDir));
  const last = lastDispatchView(configDir, name, caller);
  if (last) view['last_dispatch'] = last;
  const healthy = directoryHealth(agent.directory);
  view['healthy'] = healthy;
  if (healthy !== true) return view;
  try {
    view['mcp_servers'] = collectMcpServers(agent.directory);
    view['stacks'] = detectStacks(agent.directory);
    view['dbs'] = detectDbs(agent.directory);
  } catch (error) {
    view['scan_error'] = String(error);
  }
  view['has_claude_md'] = exists(agent.directory, 'CLAUDE.md');
  view['has_readme'] = exists(agent.directory, 'README.md');
  view['has_mcp_config'] = exists(agent.directory, '.mcp.json');
  const lines = clamp(Math.trunc(previewLines), 0, 200);
  if (lines > 0) {
    for (const [file, key] of [
      ['CLAUDE.md', 'claude_md'],
      ['README.md', 'readme'],
    ] as const) {
      if (!view[file === 'CLAUDE.md' ? 'has_claude_md' : 'has_readme']) continue;
      const preview = previewFile(agent.directory, file, lines);
      view[`${key}_preview`] = preview.text;
      if (preview.truncated) view[`${key}_truncated`] = true;
    }
  }
  return view;
}

/** How many of the last dispatch's egress decisions inspect_agent shows (the audit file has all of them). */
const LAST_DECISIONS = 50;

/** The agent's last dispatch from the audit trail: when, how it ended, and its last egress decisions. */
function lastDispatchView(configDir: string, agent: string, caller: Caller): Json | undefined {
  const record = lastAuditRecord(configDir, agent, (r) => ownerVisibleTo(r.user, caller));
  if (!record) return undefined;
  const view: Json = { time: record.time, success: record.success, duration_ms: record.duration_ms };
  if (record.error_type) view['error_type'] = record.error_type;
  if (record.network) view['network'] = record.network;
  if (record.egress) {
    view['egress'] = summariseEgress(record.egress);
    view['egress_decisions'] = record.egress.slice(-LAST_DECISIONS).map((d) => ({ time: d.time, kind: d.kind, host: d.host, port: d.port, allowed: d.allowed, ...(d.reason ? { reason: d.reason } : {}), ...(d.count ? { count: d.count } : {}) }));
  } else if (record.egress_lost) {
    view['egress'] = summariseEgress(undefined);
  }
  view['audit_file'] = join(configDir, AUDIT_FILE);
  return view;
}

function memberViews(config: DispatchConfig, group: GroupConfig, detailed: boolean): Json[] {
  const unknown = new Set(unknownGroupMembers(config, group));
  return group.members.map((member) => {
    const view: Json = { agent: member.agent };
    if (member.use_for) view['use_for'] = member.use_for;
    const agent = config.agents[member.agent];
    if (unknown.has(member.agent) || !agent) return { ...view, unknown: true };
    if (detailed) {
      view['directory'] = agent.directory;
      if (agent.description) view['description'] = agent.description;
    }
    view['healthy'] = directoryHealth(agent.directory);
    return view;
  });
}

export function listGroupsView(config: DispatchConfig): Json[] {
  return Object.entries(config.groups).map(([name, group]) => ({
    name,
    description: group.description,
    shared_context_present: group.shared_context.trim().length > 0,
    member_count: group.members.length,
    members: memberViews(config, group, false),
  }));
}

export function inspectGroupView(config: DispatchConfig, name: string, group: GroupConfig): Json {
  return {
    name,
    description: group.description,
    shared_context: group.shared_context,
    member_count: group.members.length,
    members: memberViews(config, group, true),
  };
}
