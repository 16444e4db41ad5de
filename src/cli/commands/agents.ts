import { addAgent, forgetAgentSessions, removeAgent, updateAgent, requireAgent, validateBudget, type AgentPatch } from '../../core/agents.js';
import { isClearSentinel, parseCsv } from '../../core/validate.js';
import { readConfig } from '../../config/store.js';
import { directoryHealth } from '../../project/detect.js';
import { repoEntryKind } from '../../project/safe-read.js';
import type { AgentConfig } from '../../config/schema.js';
import { fail, int, num, parse, str } from '../args.js';
import type { ArgSpec, CommandSpec, OptionSpec } from '../spec.js';
import { out, style, warn } from '../output.js';

const AGENT_OPTIONS = {
  description: { type: 'string', short: 'd', value: 'TEXT', description: 'what the agent knows and can do, shown to the calling model (add: generated from the project files when omitted)' },
  timeout: { type: 'string', value: 'N', description: 'seconds a dispatch may run (add: 300)' },
  model: { type: 'string', value: 'MODEL', description: "model alias or id, passed to claude as --model (update: 'none' clears)" },
  'max-budget-usd': { type: 'string', value: 'USD', description: 'spend cap per dispatch; 0 clears it' },
  'max-budget': { type: 'string', value: 'USD', description: 'alias of --max-budget-usd' },
  'permission-mode': { type: 'string', value: 'MODE', description: "Claude Code permission mode (default, plan, bypassPermissions), narrowed by the policy (update: 'none' clears)" },
  'allowed-tools': { type: 'string', value: 'CSV', description: "tools the agent may use, e.g. Read,Bash(git *) (update: 'none' or '' inherits the defaults again)" },
  'disallowed-tools': { type: 'string', value: 'CSV', description: "tools the agent may not use (update: 'none' or '' inherits the defaults again)" },
  capabilities: { type: 'string', value: 'CSV', description: "descriptive labels for the calling model, never passed to claude (update: 'none' empties)" },
  'risky-capabilities': { type: 'string', value: 'CSV', description: "labels flagged for scrutiny (update: 'none' empties)" },
  policy: { type: 'string', value: 'NAME|PATH', description: 'sandbox policy: a preset name or a path to a policy file (add: default)' },
  users: { type: 'string', value: 'CSV', description: "users of the HTTP service (serve --http) who may see and dispatch the agent (update: 'none' removes them all)" },
} satisfies Record<string, OptionSpec>;

const NAME_ARG: ArgSpec = { name: 'NAME', description: "the agent's name" };

export const addSpec: CommandSpec = {
  name: 'add',
  summary: 'Add an agent: a project directory the calling model can dispatch tasks to',
  args: [NAME_ARG, { name: 'DIRECTORY', description: 'the project directory the agent works in (must exist)' }],
  options: AGENT_OPTIONS,
};

export const updateSpec: CommandSpec = {
  name: 'update',
  summary: "Update an agent's settings; 'none' or '' clears model, permission mode and tool lists",
  args: [NAME_ARG],
  options: AGENT_OPTIONS,
};

export const removeSpec: CommandSpec = {
  name: 'remove',
  summary: 'Remove an agent and its session transcripts (groups keep the name and flag it)',
  args: [NAME_ARG],
  options: {},
};

export const listSpec: CommandSpec = { name: 'list', summary: 'List agents', args: [], options: {} };

export const describeSpec: CommandSpec = { name: 'describe', summary: 'Show one agent in detail', args: [NAME_ARG], options: {} };

function budgetOption(parsed: ReturnType<typeof parse>): number | undefined {
  return num(parsed, 'max-budget-usd', '--max-budget-usd') ?? num(parsed, 'max-budget', '--max-budget');
}

function healthLabel(dir: string): string {
  const h = directoryHealth(dir);
  return h === true ? style.green('OK') : h === false ? style.red('NOT FOUND') : style.red('UNREADABLE');
}

export async function addCommand(argv: string[]): Promise<number> {
  const p = parse(addSpec, argv);
  const [name, directory] = p.positionals as [string, string];
  const timeout = int(p, 'timeout') ?? 300;
  if (timeout < 1) fail(`--timeout must be a positive number of seconds (got ${timeout}).`);
  const budget = budgetOption(p);
  if (budget !== undefined && budget < 0) fail(`--max-budget must be >= 0 (got ${budget}); use 0 to clear the limit.`);
  const description = str(p, 'description');
  const csv = (key: string) => (str(p, key) === undefined ? undefined : parseCsv(str(p, key)!));
  const tools = (key: string) => {
    const items = csv(key);
    return items && items.length > 0 ? items : undefined;
  };
  const { agent, warnings } = await addAgent({
    name,
    directory,
    description,
    timeout,
    max_budget_usd: budget,
    model: str(p, 'model'),
    permission_mode: str(p, 'permission-mode'),
    allowed_tools: tools('allowed-tools'),
    disallowed_tools: tools('disallowed-tools'),
    capabilities: csv('capabilities'),
    risky_capabilities: csv('risky-capabilities'),
    policy: str(p, 'policy'),
    users: csv('users'),
  });
  for (const w of warnings) warn(w);
  if (!description) out(`Auto-generated description: ${agent.description}`);
  out(`Added agent '${name}' -> ${agent.directory} (policy: ${agent.policy})`);
  return 0;
}

export async function updateCommand(argv: string[]): Promise<number> {
  const p = parse(updateSpec, argv);
  const name = p.positionals[0]!;
  const patch: AgentPatch = {};
  const timeout = int(p, 'timeout');
  if (timeout !== undefined) {
    if (timeout < 1) fail(`--timeout must be a positive number of seconds (got ${timeout}).`);
    patch.timeout = timeout;
  }
  const budget = budgetOption(p);
  if (budget !== undefined) {
    if (budget < 0) fail(`--max-budget must be >= 0 (got ${budget}); use 0 to clear the limit.`);
    validateBudget(budget);
    patch.max_budget_usd = budget === 0 ? null : budget;
  }
  const description = str(p, 'description');
  if (description !== undefined) patch.description = description;
  const clearable = (key: string) => {
    const v = str(p, key);
    return v === undefined ? undefined : isClearSentinel(v) ? null : v.trim();
  };
  const model = clearable('model');
  if (model !== undefined) patch.model = model;
  const mode = clearable('permission-mode');
  if (mode !== undefined) patch.permission_mode = mode;
  for (const [flag, key] of [
    ['allowed-tools', 'allowed_tools'],
    ['disallowed-tools', 'disallowed_tools'],
  ] as const) {
    const v = str(p, flag);
    if (v !== undefined) patch[key] = isClearSentinel(v) ? null : parseCsv(v);
  }
  for (const [flag, key] of [
    ['capabilities', 'capabilities'],
    ['risky-capabilities', 'risky_capabilities'],
  ] as const) {
    const v = str(p, flag);
    if (v !== undefined) patch[key] = isClearSentinel(v) ? [] : parseCsv(v);
  }
  const policy = str(p, 'policy');
  if (policy !== undefined) patch.policy = policy;
  const users = str(p, 'users');
  if (users !== undefined) patch.users = isClearSentinel(users) ? null : parseCsv(users);
  if (Object.keys(patch).length === 0) fail('Nothing to update. Pass at least one option (see --help).');
  const { fields, warnings } = await updateAgent(name, patch);
  for (const w of warnings) warn(w);
  out(`Updated agent '${name}': ${fields.join(', ')}`);
  return 0;
}

export async function removeCommand(argv: string[]): Promise<number> {
  const p = parse(removeSpec, argv);
  const name = p.positionals[0]!;
  const agent = await removeAgent(name);
  out(`Removed agent '${name}'.`);
  const sessions = await forgetAgentSessions(name, agent);
  if (sessions.message) out(sessions.message);
  if (sessions.warning) warn(`agent '${name}': ${sessions.warning}`);
  return 0;
}

function toolsLine(label: string, tools: string[] | null | undefined): string | undefined {
  if (tools === null || tools === undefined) return undefined;
  return `    ${label}: ${tools.length === 0 ? '(none)' : tools.join(', ')}`;
}

export function listCommand(argv: string[]): number {
  parse(listSpec, argv);
  const config = readConfig();
  const entries = Object.entries(config.agents);
  if (entries.length === 0) {
    out('No agents configured. Run: agent-dispatch add <name> <directory>');
    return 0;
  }
  for (const [name, agent] of entries) {
    out(`  ${style.bold(name)} [${healthLabel(agent.directory)}]`);
    out(`    dir:  ${agent.directory}`);
    out(`    desc: ${agent.description}`);
    const extras: string[] = [];
    if (agent.timeout !== 300) extras.push(`timeout=${agent.timeout}s`);
    if (agent.model) extras.push(`model=${agent.model}`);
    if (agent.max_budget_usd) extras.push(`budget=$${formatNumber(agent.max_budget_usd)}`);
    if (extras.length > 0) out(`    config: ${extras.join(', ')}`);
    out(`    policy: ${agent.policy}`);
    if (agent.permission_mode) out(`    permission_mode: ${agent.permission_mode}`);
    for (const line of [toolsLine('allowed_tools', agent.allowed_tools), toolsLine('disallowed_tools', agent.disallowed_tools)]) if (line) out(line);
    if (agent.capabilities.length) out(`    capabilities: ${agent.capabilities.join(', ')}`);
    if (agent.risky_capabilities.length) out(`    risky_capabilities: ${agent.risky_capabilities.join(', ')}`);
    out();
  }
  return 0;
}

/** Python prints floats as 2.0; keep that for budgets so output stays familiar. */
export function formatNumber(value: number): string {
  return Number.isInteger(value) ? value.toFixed(1) : String(value);
}

function triState(tools: string[] | null | undefined): string {
  if (tools === null || tools === undefined) return '(inherit defaults)';
  return tools.length === 0 ? '(none — explicit override)' : tools.join(', ');
}

export function describeCommand(argv: string[]): number {
  const p = parse(describeSpec, argv);
  const name = p.positionals[0]!;
  const config = readConfig();
  const agent: AgentConfig = requireAgent(config, name, `Run 'agent-dispatch list' to see agents.`);
  const row = (label: string, value: string) => out(`  ${`${label}:`.padEnd(18)}${value}`);
  out(`${style.bold(name)} [${healthLabel(agent.directory)}]`);
  row('directory', agent.directory);
  row('description', agent.description);
  row('timeout', `${agent.timeout}s`);
  if (agent.model) row('model', agent.model);
  if (agent.max_budget_usd) row('max_budget_usd', `$${formatNumber(agent.max_budget_usd)}`);
  if (agent.permission_mode) row('permission_mode', agent.permission_mode);
  if (agent.capabilities.length) row('capabilities', agent.capabilities.join(', '));
  if (agent.risky_capabilities.length) row('risky_caps', agent.risky_capabilities.join(', '));
  row('allowed_tools', triState(agent.allowed_tools));
  row('disallowed_tools', triState(agent.disallowed_tools));
  row('policy', `${agent.policy}  (agent-dispatch policy check --agent ${name})`);
  if (directoryHealth(agent.directory) === true) {
    const files = ['CLAUDE.md', '.mcp.json', 'README.md', 'pyproject.toml', 'package.json'].filter((f) => repoEntryKind(agent.directory, f) !== undefined);
    row('project files', files.length ? files.join(', ') : '(none)');
  }
  return 0;
}
