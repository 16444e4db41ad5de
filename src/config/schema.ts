import { z } from 'zod';
import { boundedString, LIMITS } from '../limits.js';
import { expandDirectory } from './paths.js';
import { parseEngineSpec } from './engine-spec.js';

/** Names of agents, groups and group members: the rule the original enforced everywhere. */
export const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_-]*$/;

export function nameError(name: string): string {
  return `Invalid agent name: '${name}'. Use only letters, digits, hyphens, and underscores. Must start with a letter or digit.`;
}

export const agentNameSchema = boundedString('name', 'name').refine((v) => NAME_PATTERN.test(v), {
  error: (issue) => nameError(String(issue.input)),
});

/** HTTP users (the names their tokens carry) follow the agent-name rule. */
export const userNameSchema = boundedString('name', 'user').refine((v) => NAME_PATTERN.test(v), {
  error: (issue) => `Invalid user name: '${String(issue.input)}'. Use only letters, digits, hyphens, and underscores. Must start with a letter or digit.`,
});

/**
 * Users of the HTTP service granted something (an agent, a group's agents, admin). Optional rather than
 * defaulted, so a config without it is written back exactly as before; the stdio / CLI user needs no entry.
 */
const userList = (what: string) =>
  z.array(userNameSchema).max(LIMITS.list_entries, { error: `at most ${LIMITS.list_entries} users` }).optional().describe(what);

/** Permission modes the installed Claude Code accepts; anything else only warns (as the original did). */
export const KNOWN_PERMISSION_MODES = ['default', 'plan', 'bypassPermissions', 'acceptEdits', 'dontAsk', 'auto', 'manual'] as const;

export function permissionModeWarning(mode: string | null | undefined): string | undefined {
  const trimmed = (mode ?? '').trim();
  if (!trimmed) return undefined;
  if ((KNOWN_PERMISSION_MODES as readonly string[]).includes(trimmed)) return undefined;
  return `Unknown permission_mode: '${trimmed}'. Known values: ${[...KNOWN_PERMISSION_MODES].sort().join(', ')}`;
}

/** A list of at most LIMITS.list_entries entries, each bounded by LIMITS[entry]. */
function boundedList(entry: 'tool' | 'capability', plural: string) {
  return z.array(boundedString(entry)).max(LIMITS.list_entries, { error: `at most ${LIMITS.list_entries} ${plural}` });
}

const toolList = boundedList('tool', 'tool patterns').describe('Tool names or patterns, e.g. Bash(git *)');

/** A remote Docker engine (src/config/engine-spec.ts): checked when the config loads, so a typo fails early. */
export const engineSpecSchema = z
  .union([boundedString('path'), z.object({ host: boundedString('path'), tls_cert_dir: boundedString('path') }).strict()])
  .superRefine((value, ctx) => {
    const parsed = parseEngineSpec(value);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.message });
  })
  .describe('unix:///path, ssh://user@host[:port], tcp://127.0.0.1:port, or { host: tcp://host:port, tls_cert_dir: DIR }');

export const agentSchema = z
  .object({
    directory: boundedString('path', undefined, z.string({ error: (i) => `directory must be a path string, got ${i.input === null ? 'null' : typeof i.input}` }))
      .transform((value, ctx) => {
        try {
          return expandDirectory(value);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: `invalid directory '${value}': ${(error as Error).message}` });
          return z.NEVER;
        }
      })
      .describe('Project directory the agent works in (absolute after ~ expansion)'),
    description: boundedString('description').default('').describe('What this agent knows and can do'),
    timeout: z.number().int().min(0).default(300).describe('Seconds; 0 = settings.default_timeout'),
    max_budget_usd: z.number().min(0).nullable().optional().describe('Spend cap per dispatch, passed as --max-budget-usd'),
    model: boundedString('model').nullable().optional().describe('Model alias or id, passed as --model'),
    permission_mode: boundedString('permission_mode').nullable().optional().describe('Claude Code permission mode; narrowed by the policy'),
    allowed_tools: toolList.nullable().optional().describe('null = inherit settings.default_allowed_tools; [] = none'),
    disallowed_tools: toolList.nullable().optional().describe('null = inherit settings.default_disallowed_tools; [] = none'),
    capabilities: boundedList('capability', 'labels').default([]).describe('Descriptive labels only; never passed to claude'),
    risky_capabilities: boundedList('capability', 'labels').default([]).describe('Descriptive labels, flagged for scrutiny'),
    policy: boundedString('policy').min(1).default('default').describe('Sandbox policy: a preset name or a path to a policy file'),
    engine: engineSpecSchema.optional().describe('The Docker engine of this agent\'s containers; absent = settings.engine'),
    users: userList('HTTP users who may see and dispatch this agent (serve --http); admins see every agent'),
  })
  .strict();

export const groupMemberSchema = z
  .object({
    agent: agentNameSchema,
    use_for: boundedString('use_for').default(''),
  })
  .strict();

export const groupSchema = z
  .object({
    description: boundedString('description').default(''),
    shared_context: boundedString('shared_context').default(''),
    members: z.array(groupMemberSchema).default([]),
    users: userList("HTTP users granted every member agent of this group"),
  })
  .strict();

export const cacheSettingsSchema = z
  .object({
    enabled: z.boolean().default(true),
    ttl: z.number().int().min(0).default(300),
    max_size: z.number().int().min(1).default(1000),
  })
  .strict();

/**
 * How far an MCP caller (a model, possibly prompt-injected) may change an agent's sandbox policy through
 * add_agent / update_agent. The CLI, the user's own hand, is never limited by this.
 * - narrow-only: a policy listed in `allow`, or one no wider than the agent's current policy (for add_agent:
 *   than the `default` policy) on every axis (see policy/widening.ts); a policy file path only when listed.
 * - none: add_agent only with the default policy, update_agent never changes a policy.
 * - any: every valid policy (the behaviour before this setting existed).
 */
export const MCP_POLICY_CHANGE_MODES = ['narrow-only', 'none', 'any'] as const;
export type McpPolicyChangeMode = (typeof MCP_POLICY_CHANGE_MODES)[number];

export const mcpPolicyChangesSchema = z
  .object({
    mode: z.enum(MCP_POLICY_CHANGE_MODES).default('narrow-only').describe('narrow-only | none | any'),
    allow: z
      .array(boundedString('policy'))
      .max(LIMITS.list_entries, { error: `at most ${LIMITS.list_entries} policies` })
      .default([])
      .describe('Policies (as written in an agent\'s policy:) an MCP caller may set in narrow-only mode even when wider'),
  })
  .strict();

/**
 * Pre-started, single-use sandboxes per agent (src/sandbox/warm-pool.ts). A number is taken as the size. The
 * memory default fits eight idle sandboxes (one, claude waiting for its prompt behind the bridge, holds about
 * 108 MiB and is counted as 128 MiB: IDLE_SANDBOX_BYTES).
 */
export const warmPoolSettingsSchema = z.preprocess(
  (value) => (typeof value === 'number' ? { size: value } : value),
  z
    .object({
      size: z.number().int().min(0).max(8).default(1).describe('Idle sandboxes kept per agent dispatched within idle_minutes; 0 disables the pool'),
      idle_minutes: z.number().int().min(1).max(1440).default(10).describe('An unused pre-started sandbox is destroyed after this long and not replaced'),
      memory_mb: z.number().int().min(0).default(1024).describe('Memory all idle sandboxes together may hold; a refill past it is skipped'),
    })
    .strict(),
);
export type WarmPoolConfig = z.output<typeof warmPoolSettingsSchema>;

export const settingsSchema = z
  .object({
    default_timeout: z.number().int().min(1).default(300),
    default_max_budget_usd: z.number().min(0).nullable().optional(),
    default_permission_mode: boundedString('permission_mode').nullable().optional(),
    default_allowed_tools: toolList.default([]),
    default_disallowed_tools: toolList.default([]),
    max_dispatch_depth: z.number().int().min(1).default(3),
    max_concurrency: z.number().int().min(1).default(5),
    cache: cacheSettingsSchema.default({ enabled: true, ttl: 300, max_size: 1000 }),
    job_retention_days: z.number().int().min(0).default(0),
    // Optional rather than defaulted, so a config that does not set it is written back exactly as the original wrote it.
    mcp_policy_changes: mcpPolicyChangesSchema.optional().describe('What an MCP caller may do to agent policies; absent = narrow-only'),
    warm_pool: warmPoolSettingsSchema.optional().describe('Pre-started sandboxes per agent (a number: the size); absent = the defaults'),
    engine: engineSpecSchema.optional().describe('The Docker engine of every agent without its own; absent = DOCKER_HOST, else the local socket'),
    admins: userList('HTTP users who may change agents (add_agent, update_agent, remove_agent, cache_clear) and see every agent'),
  })
  .strict();

/** The effective warm_pool (its defaults when the key is absent). */
export function warmPoolConfig(settings: Settings): WarmPoolConfig {
  return settings.warm_pool ?? warmPoolSettingsSchema.parse({});
}

/** The effective mcp_policy_changes (its defaults when the key is absent). */
export function mcpPolicyChanges(settings: Settings): McpPolicyChanges {
  return settings.mcp_policy_changes ?? mcpPolicyChangesSchema.parse({});
}

/**
 * Agents and groups are looked up by user-given names; in a plain object `toString` or `constructor` would
 * find Object.prototype members. A null-prototype record answers only for names that are really there.
 */
function ownKeysOnly<T>(record: Record<string, T> | null): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, record ?? {});
}

export const configSchema = z
  .object({
    agents: z.record(agentNameSchema, agentSchema).nullable().default({}).transform(ownKeysOnly),
    groups: z.record(agentNameSchema, groupSchema).nullable().default({}).transform(ownKeysOnly),
    settings: settingsSchema.nullable().default(() => settingsSchema.parse({})).transform((v) => v ?? settingsSchema.parse({})),
  })
  .strict();

export type AgentConfig = z.output<typeof agentSchema>;
export type AgentInput = z.input<typeof agentSchema>;
export type GroupConfig = z.output<typeof groupSchema>;
export type GroupMember = z.output<typeof groupMemberSchema>;
export type Settings = z.output<typeof settingsSchema>;
export type McpPolicyChanges = z.output<typeof mcpPolicyChangesSchema>;
export type DispatchConfig = z.output<typeof configSchema>;

export function emptyConfig(): DispatchConfig {
  return configSchema.parse({});
}

export function parseAgent(input: AgentInput): AgentConfig {
  return agentSchema.parse(input);
}

/** Sorted, de-duplicated member names that are not configured agents (the one implementation). */
export function unknownGroupMembers(config: DispatchConfig, group: GroupConfig): string[] {
  const missing = new Set(group.members.map((m) => m.agent).filter((a) => !(a in config.agents)));
  return [...missing].sort();
}
