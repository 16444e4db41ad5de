import { z } from 'zod';
import { expandDirectory } from './paths.js';

/** Names of agents, groups and group members: the rule the original enforced everywhere. */
export const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_-]*$/;

export function nameError(name: string): string {
  return `Invalid agent name: '${name}'. Use only letters, digits, hyphens, and underscores. Must start with a letter or digit.`;
}

export const agentNameSchema = z.string().refine((v) => NAME_PATTERN.test(v), {
  error: (issue) => nameError(String(issue.input)),
});

/** Permission modes the installed Claude Code accepts; anything else only warns (as the original did). */
export const KNOWN_PERMISSION_MODES = ['default', 'plan', 'bypassPermissions', 'acceptEdits', 'dontAsk', 'auto', 'manual'] as const;

export function permissionModeWarning(mode: string | null | undefined): string | undefined {
  const trimmed = (mode ?? '').trim();
  if (!trimmed) return undefined;
  if ((KNOWN_PERMISSION_MODES as readonly string[]).includes(trimmed)) return undefined;
  return `Unknown permission_mode: '${trimmed}'. Known values: ${[...KNOWN_PERMISSION_MODES].sort().join(', ')}`;
}

const toolList = z.array(z.string()).describe('Tool names or patterns, e.g. Bash(git *)');

export const agentSchema = z
  .object({
    directory: z
      .string({ error: (i) => `directory must be a path string, got ${i.input === null ? 'null' : typeof i.input}` })
      .transform((value, ctx) => {
        try {
          return expandDirectory(value);
        } catch (error) {
          ctx.addIssue({ code: 'custom', message: `invalid directory '${value}': ${(error as Error).message}` });
          return z.NEVER;
        }
      })
      .describe('Project directory the agent works in (absolute after ~ expansion)'),
    description: z.string().default('').describe('What this agent knows and can do'),
    timeout: z.number().int().min(0).default(300).describe('Seconds; 0 = settings.default_timeout'),
    max_budget_usd: z.number().min(0).nullable().optional().describe('Spend cap per dispatch, passed as --max-budget-usd'),
    model: z.string().nullable().optional().describe('Model alias or id, passed as --model'),
    permission_mode: z.string().nullable().optional().describe('Claude Code permission mode; narrowed by the policy'),
    allowed_tools: toolList.nullable().optional().describe('null = inherit settings.default_allowed_tools; [] = none'),
    disallowed_tools: toolList.nullable().optional().describe('null = inherit settings.default_disallowed_tools; [] = none'),
    capabilities: z.array(z.string()).default([]).describe('Descriptive labels only; never passed to claude'),
    risky_capabilities: z.array(z.string()).default([]).describe('Descriptive labels, flagged for scrutiny'),
    policy: z.string().min(1).default('default').describe('Sandbox policy: a preset name or a path to a policy file'),
  })
  .strict();

export const groupMemberSchema = z
  .object({
    agent: agentNameSchema,
    use_for: z.string().default(''),
  })
  .strict();

export const groupSchema = z
  .object({
    description: z.string().default(''),
    shared_context: z.string().default(''),
    members: z.array(groupMemberSchema).default([]),
  })
  .strict();

export const cacheSettingsSchema = z
  .object({
    enabled: z.boolean().default(true),
    ttl: z.number().int().min(0).default(300),
    max_size: z.number().int().min(1).default(1000),
  })
  .strict();

export const settingsSchema = z
  .object({
    default_timeout: z.number().int().min(1).default(300),
    default_max_budget_usd: z.number().min(0).nullable().optional(),
    default_permission_mode: z.string().nullable().optional(),
    default_allowed_tools: z.array(z.string()).default([]),
    default_disallowed_tools: z.array(z.string()).default([]),
    max_dispatch_depth: z.number().int().min(1).default(3),
    max_concurrency: z.number().int().min(1).default(5),
    cache: cacheSettingsSchema.default({ enabled: true, ttl: 300, max_size: 1000 }),
    job_retention_days: z.number().int().min(0).default(0),
  })
  .strict();

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
