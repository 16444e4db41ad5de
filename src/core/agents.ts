import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { AppError, describeError } from '../errors.js';
import { configPath as defaultConfigPath, expandDirectory } from '../config/paths.js';
import { mutateConfig } from '../config/store.js';
import { loadConfig } from '../config/load.js';
import { effectiveEngineSpec } from '../config/engine-spec.js';
import { formatIssues } from '../config/issues.js';
import { agentSchema, permissionModeWarning, type AgentConfig, type AgentInput, type DispatchConfig } from '../config/schema.js';
import { LIMITS } from '../limits.js';
import { describePolicyProblem, loadPolicy } from '../policy/load.js';
import { volumeScope } from '../policy/layout.js';
import { blockingFindings, lintPolicy } from '../policy/lint.js';
import { toolPatternProblem } from '../policy/tool-pattern.js';
import { autoDescribe } from '../project/detect.js';
import { agentVolumeFilter, removeAgentVolumes } from '../sandbox/volumes.js';
import { enforceMcpPolicyChange } from './mcp-policy-gate.js';
import { validateFlagWord, validateLength, validateName } from './validate.js';

export interface NewAgent {
  name: string;
  directory: string;
  description?: string | undefined;
  timeout?: number | undefined;
  max_budget_usd?: number | undefined;
  model?: string | undefined;
  permission_mode?: string | undefined;
  allowed_tools?: string[] | undefined;
  disallowed_tools?: string[] | undefined;
  capabilities?: string[] | undefined;
  risky_capabilities?: string[] | undefined;
  policy?: string | undefined;
  /** HTTP users who may see and dispatch it (serve --http). */
  users?: string[] | undefined;
}

/** `undefined` leaves a field alone; `null` clears it back to inheriting. */
export interface AgentPatch {
  description?: string;
  timeout?: number;
  max_budget_usd?: number | null;
  model?: string | null;
  permission_mode?: string | null;
  allowed_tools?: string[] | null;
  disallowed_tools?: string[] | null;
  capabilities?: string[];
  risky_capabilities?: string[];
  policy?: string;
  /** `null` removes the key: no HTTP user is granted the agent directly. */
  users?: string[] | null;
}

export interface AgentChange {
  agent: AgentConfig;
  warnings: string[];
}

/**
 * Who asks for a change. `mcp` is a calling model (possibly prompt-injected): its policy changes pass the gate of
 * settings.mcp_policy_changes and are audited. The CLI, the user's own hand, is not limited.
 */
export interface ChangeOptions {
  via?: 'cli' | 'mcp';
  /** The HTTP user (an admin) asking over MCP, named in the audit record; absent for the local user. */
  user?: string | undefined;
}

const LIST_HINT = "list_agents (MCP) or 'agent-dispatch list' shows the configured agents.";

export function resolveAgentDirectory(directory: string): string {
  validateLength('directory', directory, 'path');
  let resolved: string;
  try {
    resolved = expandDirectory(directory);
  } catch (error) {
    throw new AppError('INVALID_INPUT', `Invalid directory '${directory}': ${describeError(error)}`, {
      hint: 'Pass an absolute path to an existing project directory (~ is expanded for the current user only).',
    });
  }
  let isDir = false;
  try {
    isDir = statSync(resolved).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new AppError('INVALID_INPUT', `Directory does not exist: ${resolved}`, { hint: "Pass the project's directory (it must exist and be a directory), as an absolute path." });
  return resolved;
}

export function validateTimeout(timeout: number | undefined, label = 'timeout'): void {
  if (timeout === undefined) return;
  if (!Number.isInteger(timeout) || timeout < 0) {
    throw new AppError('INVALID_INPUT', `${label} must be a positive number of seconds (got ${timeout}); pass 0 to keep the agent's current value.`, {
      hint: 'For example 600 for ten minutes; the policy caps it at resources.timeout.',
    });
  }
}

export function validateBudget(budget: number | undefined, label = 'max_budget_usd'): void {
  if (budget !== undefined && (!Number.isFinite(budget) || budget < 0)) {
    throw new AppError('INVALID_INPUT', `${label} must be >= 0 (got ${budget}); 0 means no limit.`, { hint: 'Pass a spend cap in US dollars, such as 2.0, or 0 for none.' });
  }
}

/**
 * A policy must load, validate and have no error findings for this agent's directory before an agent may point
 * at it (so MCP's add_agent / update_agent cannot attach a policy that mounts the Docker socket, say). Refs
 * resolve beside the config being edited, exactly as list_agents and dispatch resolve them later.
 */
export function validatePolicyFor(ref: string, directory: string, configPath: string = defaultConfigPath()): void {
  validateLength('policy', ref, 'policy');
  const load = loadPolicy(ref, dirname(configPath));
  if (load.kind !== 'ok') {
    throw new AppError('POLICY_INVALID', describePolicyProblem(load), { hint: "Leave policy empty for 'default', or name a preset; 'agent-dispatch policy check' explains a policy file." });
  }
  const errors = blockingFindings(lintPolicy(load.policy, { repo: directory }));
  if (errors.length > 0) {
    throw new AppError('POLICY_INVALID', `Policy '${ref}' cannot be used for ${directory}: ${errors.map((e) => `${e.code}: ${e.message}`).join('; ')}`, {
      hint: `Fix the policy or choose another one; 'agent-dispatch policy check ${load.source.path}' explains each finding.`,
    });
  }
}

/** Each entry must be one tool pattern: claude splits lists on commas and spaces (see policy/tool-pattern.ts). */
export function validateToolList(field: string, tools: string[] | null | undefined): void {
  if ((tools?.length ?? 0) > LIMITS.list_entries) throw listTooLong(field);
  for (const tool of tools ?? []) {
    validateLength(`${field} entry`, tool, 'tool');
    const problem = toolPatternProblem(tool);
    if (problem) throw new AppError('INVALID_INPUT', `${field}: ${problem}`, { hint: 'One tool per entry, e.g. Read,Grep,Bash(git diff *).' });
  }
}

function validateLabels(field: string, labels: string[] | undefined): void {
  if ((labels?.length ?? 0) > LIMITS.list_entries) throw listTooLong(field);
  for (const label of labels ?? []) validateLength(`${field} entry`, label, 'capability');
}

function listTooLong(field: string): AppError {
  return new AppError('INVALID_INPUT', `${field} must have at most ${LIMITS.list_entries} entries.`, { hint: `Shorten ${field}.` });
}

/** The door every agent entry passes: the values claude will see, then the schema (sizes included). */
function checkedAgent(name: string, input: AgentInput): AgentConfig {
  validateFlagWord('model', input.model);
  validateFlagWord('permission_mode', input.permission_mode);
  validateToolList('allowed_tools', input.allowed_tools);
  validateToolList('disallowed_tools', input.disallowed_tools);
  validateLabels('capabilities', input.capabilities);
  validateLabels('risky_capabilities', input.risky_capabilities);
  const parsed = agentSchema.safeParse(input);
  if (!parsed.success) {
    throw new AppError('INVALID_INPUT', `Agent '${name}': ${formatIssues(parsed.error.issues, () => [])}`, { hint: 'Fix the field named above; the limits are listed in the README (MCP tools, input limits).' });
  }
  return parsed.data;
}

/** An auto-description is cut to fit, never refused: the user did not write it. */
function fitDescription(text: string): string {
  return text.length <= LIMITS.description ? text : `${text.slice(0, LIMITS.description - 1)}…`;
}

export async function addAgent(input: NewAgent, configPath: string = defaultConfigPath(), options: ChangeOptions = {}): Promise<AgentChange> {
  validateName(input.name);
  validateLength('description', input.description, 'description');
  const directory = resolveAgentDirectory(input.directory);
  validateTimeout(input.timeout);
  validateBudget(input.max_budget_usd);
  const policy = input.policy || 'default';
  const agent = checkedAgent(input.name, {
    directory,
    description: '',
    timeout: input.timeout || 300,
    max_budget_usd: input.max_budget_usd || null,
    model: input.model || null,
    permission_mode: input.permission_mode || null,
    allowed_tools: input.allowed_tools ?? null,
    disallowed_tools: input.disallowed_tools ?? null,
    capabilities: input.capabilities ?? [],
    risky_capabilities: input.risky_capabilities ?? [],
    policy,
    ...(input.users?.length ? { users: input.users } : {}),
  });
  validatePolicyFor(policy, directory, configPath);
  agent.description = input.description || fitDescription(autoDescribe(directory));
  const warning = permissionModeWarning(input.permission_mode);
  await mutateConfig((config) => {
    if (input.name in config.agents) {
      throw new AppError('AGENT_EXISTS', `Agent '${input.name}' already exists. Use 'agent-dispatch remove ${input.name}' first.`, {
        hint: `update_agent (or 'agent-dispatch update ${input.name}') changes it; remove it first to replace it, or pick another name.`,
      });
    }
    if (options.via === 'mcp') enforceMcpPolicyChange({ tool: 'add_agent', agent: input.name, to: policy, user: options.user }, config.settings, dirname(configPath));
    config.agents[input.name] = agent;
  }, configPath);
  return { agent, warnings: warning ? [warning] : [] };
}

export async function updateAgent(name: string, patch: AgentPatch, configPath: string = defaultConfigPath(), options: ChangeOptions = {}): Promise<{ fields: string[]; warnings: string[] }> {
  validateTimeout(patch.timeout);
  validateLength('description', patch.description, 'description');
  validateFlagWord('model', patch.model);
  validateFlagWord('permission_mode', patch.permission_mode);
  validateToolList('allowed_tools', patch.allowed_tools);
  validateToolList('disallowed_tools', patch.disallowed_tools);
  const warnings: string[] = [];
  const fields = await mutateConfig((config) => {
    const agent = requireAgent(config, name, `Run 'agent-dispatch list' to see agents.`);
    if (patch.policy !== undefined) {
      validatePolicyFor(patch.policy, agent.directory, configPath);
      if (options.via === 'mcp') enforceMcpPolicyChange({ tool: 'update_agent', agent: name, from: agent.policy, to: patch.policy, user: options.user }, config.settings, dirname(configPath));
    }
    const changed: string[] = [];
    const set = <K extends keyof AgentConfig>(key: K, value: AgentConfig[K] | undefined) => {
      if (value === undefined) return;
      agent[key] = value;
      changed.push(key);
    };
    set('description', patch.description);
    if (patch.timeout) set('timeout', patch.timeout);
    set('max_budget_usd', patch.max_budget_usd);
    set('model', patch.model);
    if (patch.permission_mode !== undefined) {
      const warning = permissionModeWarning(patch.permission_mode);
      if (warning) warnings.push(warning);
    }
    set('permission_mode', patch.permission_mode);
    set('allowed_tools', patch.allowed_tools);
    set('disallowed_tools', patch.disallowed_tools);
    set('capabilities', patch.capabilities);
    set('risky_capabilities', patch.risky_capabilities);
    set('policy', patch.policy);
    if (patch.users === null) {
      delete agent.users;
      changed.push('users');
    } else {
      set('users', patch.users);
    }
    if (changed.length === 0) {
      throw new AppError('NOTHING_TO_UPDATE', 'Nothing to update. Pass at least one non-empty field.', {
        hint: "Empty strings and 0 mean 'unchanged'; pass a value, or 'none' to clear model, permission_mode or a tool list.",
      });
    }
    config.agents[name] = checkedAgent(name, agent);
    return changed;
  }, configPath);
  return { fields, warnings };
}

/** Remove the agent from agents.yaml; returns its entry (for cleaning up what it left on the engine). */
export async function removeAgent(name: string, configPath?: string): Promise<AgentConfig> {
  let removed: AgentConfig | undefined;
  await mutateConfig((config) => {
    removed = config.agents[name];
    if (!removed) {
      const available = Object.keys(config.agents).join(', ') || '(none)';
      throw new AppError('AGENT_NOT_FOUND', `Agent '${name}' not found. Available: ${available}`, { hint: LIST_HINT });
    }
    delete config.agents[name];
  }, configPath);
  return removed!;
}

/**
 * After `removeAgent`: delete the agent's session transcripts (its volumes in this config's scope), so a removed
 * agent leaves nothing on the engine. Best effort: returns a line to show the user, a warning when some stay.
 */
export async function forgetAgentSessions(name: string, agent: AgentConfig, configPath: string = defaultConfigPath(), env: NodeJS.ProcessEnv = process.env): Promise<{ message: string; warning?: string }> {
  const scope = volumeScope(dirname(configPath), agent.directory);
  // Its volumes are on its engine: its own, else settings.engine (the config still holds the settings).
  const load = loadConfig(configPath);
  const outcome = await removeAgentVolumes(name, scope, env, effectiveEngineSpec(agent, load.kind === 'ok' ? load.config.settings : {}));
  const manual = `docker volume rm $(docker volume ls -q ${agentVolumeFilter(name, scope).map((l) => `--filter label=${l}`).join(' ')})`;
  if (outcome.unreachable) return { message: '', warning: `its session volumes were not removed (Docker: ${outcome.unreachable}); later: ${manual}` };
  if (outcome.kept.length > 0) {
    return { message: '', warning: `${outcome.kept.length} volume(s) kept (${outcome.kept[0]!.reason}); when no dispatch of it runs: ${manual}` };
  }
  return { message: outcome.removed.length > 0 ? `Removed its ${outcome.removed.length} volume(s) (session transcripts, gateway socket).` : '' };
}

export function requireAgent(config: DispatchConfig, name: string, next?: string): AgentConfig {
  const agent = config.agents[name];
  if (agent) return agent;
  const available = Object.keys(config.agents).join(', ') || '(none configured)';
  const hint = Object.keys(config.agents).length === 0 ? "No agent is configured yet: add one with add_agent(name, directory) or 'agent-dispatch add <name> <directory>'." : LIST_HINT;
  throw new AppError('AGENT_NOT_FOUND', next ? `Agent '${name}' not found. ${next}` : `Unknown agent: '${name}'. Available: ${available}`, { hint });
}
