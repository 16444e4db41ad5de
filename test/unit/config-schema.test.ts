import { homedir } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatIssues } from '../../src/config/issues.js';
import {
  agentNameSchema,
  agentSchema,
  cacheSettingsSchema,
  configSchema,
  emptyConfig,
  groupMemberSchema,
  groupSchema,
  KNOWN_PERMISSION_MODES,
  mcpPolicyChanges,
  parseAgent,
  permissionModeWarning,
  settingsSchema,
  unknownGroupMembers,
} from '../../src/config/schema.js';
import { renderConfig } from '../../src/config/save.js';
import { ORIGINAL_DEFAULT_SETTINGS } from '../helpers/fixtures.js';

/** All issue messages and paths of a failed parse, as one searchable string. */
function failure(result: { success: boolean; error?: { issues: readonly unknown[] } }): string {
  expect(result.success).toBe(false);
  return formatIssues(result.error!.issues as Parameters<typeof formatIssues>[0], () => []);
}

describe('AgentConfig', () => {
  it('expands ~ in directory to an absolute path under the home directory', () => {
    const agent = parseAgent({ directory: '~/agent-dispatch-no-such-dir/app' });
    expect(isAbsolute(agent.directory)).toBe(true);
    expect(agent.directory).toBe(resolve(homedir(), 'agent-dispatch-no-such-dir/app'));
    expect(agent.directory).not.toContain('~');
  });

  it('makes a relative directory absolute', () => {
    expect(parseAgent({ directory: 'some/relative-dir-xyz' }).directory).toBe(resolve('some/relative-dir-xyz'));
  });

  it('has the original defaults', () => {
    const agent = parseAgent({ directory: '/tmp' });
    expect(agent.timeout).toBe(300);
    expect(agent.description).toBe('');
    expect(agent.max_budget_usd).toBeUndefined();
    expect(agent.model).toBeUndefined();
    expect(agent.permission_mode).toBeUndefined();
    expect(agent.allowed_tools).toBeUndefined();
    expect(agent.disallowed_tools).toBeUndefined();
    expect(agent.capabilities).toEqual([]);
    expect(agent.risky_capabilities).toEqual([]);
  });

  it("defaults policy to 'default'", () => {
    expect(parseAgent({ directory: '/tmp' }).policy).toBe('default');
    expect(parseAgent({ directory: '/tmp', policy: 'builder' }).policy).toBe('builder');
    expect(agentSchema.safeParse({ directory: '/tmp', policy: '' }).success).toBe(false);
  });

  it('keeps explicit empty tool lists distinct from inherit (tri-state)', () => {
    const explicit = parseAgent({ directory: '/tmp', allowed_tools: [], disallowed_tools: [] });
    expect(explicit.allowed_tools).toEqual([]);
    expect(explicit.disallowed_tools).toEqual([]);
    const inherit = parseAgent({ directory: '/tmp' });
    expect(inherit.allowed_tools ?? null).toBeNull();
    const nulls = parseAgent({ directory: '/tmp', allowed_tools: null, disallowed_tools: null });
    expect(nulls.allowed_tools).toBeNull();
    expect(nulls.disallowed_tools).toBeNull();
    const listed = parseAgent({ directory: '/tmp', allowed_tools: ['Read', 'Bash(git *)'] });
    expect(listed.allowed_tools).toEqual(['Read', 'Bash(git *)']);
  });

  it('rejects an unknown key such as allowed_tool', () => {
    const result = configSchema.safeParse({ agents: { api: { directory: '/tmp', allowed_tool: ['Read'] } } });
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]).toMatchObject({ code: 'unrecognized_keys', keys: ['allowed_tool'], path: ['agents', 'api'] });
  });

  it('rejects unknown keys at every level', () => {
    expect(configSchema.safeParse({ agnets: {} }).success).toBe(false);
    expect(configSchema.safeParse({ settings: { max_concurency: 3 } }).success).toBe(false);
    expect(configSchema.safeParse({ settings: { cache: { ttl: 1, size: 2 } } }).success).toBe(false);
    expect(configSchema.safeParse({ groups: { g: { members: [{ agent: 'a', why: 'x' }] } } }).success).toBe(false);
  });
});

describe('directory validation', () => {
  it('reports a non-path directory as a validation error, not a thrown TypeError', () => {
    const result = agentSchema.safeParse({ directory: 123 });
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.message).toContain('directory must be a path string');
    expect(result.error!.issues[0]!.path).toEqual(['directory']);
  });

  it('reports a list directory in a config per field, mentioning directory', () => {
    const text = failure(configSchema.safeParse({ agents: { a: { directory: ['x', 'y'] } } }));
    expect(text).toContain('agents.a.directory');
    expect(text).toContain('directory');
  });

  it('reports a missing directory', () => {
    expect(failure(agentSchema.safeParse({}))).toContain('directory');
  });

  it('reports ~unknownuser as an invalid directory', () => {
    const result = agentSchema.safeParse({ directory: '~no_such_user_agent_dispatch/x' });
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.message).toContain('invalid directory');
    expect(result.error!.issues[0]!.message).toContain('no_such_user_agent_dispatch');
  });
});

describe('agent name validation', () => {
  it.each(['infra', 'backend-api', 'agent_1', 'A1', '9lives'])('accepts %j', (name) => {
    expect(agentNameSchema.safeParse(name).success).toBe(true);
    expect(configSchema.safeParse({ agents: { [name]: { directory: '/tmp' } } }).success).toBe(true);
  });

  it.each(['', '-start', '_start', 'has space', 'special!', 'a/b', 'dot.name'])('rejects %j with the original message', (name) => {
    const result = agentNameSchema.safeParse(name);
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.message).toBe(
      `Invalid agent name: '${name}'. Use only letters, digits, hyphens, and underscores. Must start with a letter or digit.`,
    );
  });

  it('rejects an invalid agent key in a config and says why', () => {
    const text = failure(configSchema.safeParse({ agents: { '-bad': { directory: '/tmp' } } }));
    expect(text).toContain('agents.-bad');
    expect(text).toContain('Invalid agent name');
  });
});

describe('permission mode warnings', () => {
  it.each(['default', 'plan', 'bypassPermissions'])('does not warn for %s', (mode) => {
    expect(permissionModeWarning(mode)).toBeUndefined();
  });

  it('does not warn for any known mode', () => {
    for (const mode of KNOWN_PERMISSION_MODES) expect(permissionModeWarning(mode)).toBeUndefined();
  });

  it('warns for a typo, naming the value', () => {
    const warning = permissionModeWarning('bypasPermissions');
    expect(warning).toContain('Unknown');
    expect(warning).toContain('bypasPermissions');
  });

  it('does not warn for null, undefined or an empty string', () => {
    expect(permissionModeWarning(null)).toBeUndefined();
    expect(permissionModeWarning(undefined)).toBeUndefined();
    expect(permissionModeWarning('')).toBeUndefined();
  });

  it('trims whitespace before checking', () => {
    expect(permissionModeWarning(' bypassPermissions ')).toBeUndefined();
    expect(permissionModeWarning('\tplan\n')).toBeUndefined();
    expect(permissionModeWarning('  typo  ')).toContain("'typo'");
  });

  it('does not warn for whitespace only', () => {
    expect(permissionModeWarning('   ')).toBeUndefined();
    expect(permissionModeWarning('\t\n')).toBeUndefined();
  });

  it('is warn-only: an unknown mode still parses', () => {
    expect(parseAgent({ directory: '/tmp', permission_mode: 'typo' }).permission_mode).toBe('typo');
  });
});

describe('settings', () => {
  it('has the original defaults', () => {
    const settings = settingsSchema.parse({});
    expect(settings).toEqual(ORIGINAL_DEFAULT_SETTINGS);
    expect(settings.default_max_budget_usd).toBeUndefined();
    expect(settings.default_permission_mode).toBeUndefined();
  });

  it('stores default permissions; disallowed defaults to []', () => {
    const settings = settingsSchema.parse({ default_permission_mode: 'plan', default_allowed_tools: ['Read', 'Grep'] });
    expect(settings.default_permission_mode).toBe('plan');
    expect(settings.default_allowed_tools).toEqual(['Read', 'Grep']);
    expect(settings.default_disallowed_tools).toEqual([]);
  });

  it('fills a partial cache block', () => {
    expect(settingsSchema.parse({ cache: { ttl: 10 } }).cache).toEqual({ enabled: true, ttl: 10, max_size: 1000 });
  });

  it.each([
    ['max_concurrency', 0],
    ['max_concurrency', -1],
    ['max_dispatch_depth', 0],
    ['default_timeout', 0],
    ['default_timeout', -1],
    ['default_max_budget_usd', -0.01],
    ['job_retention_days', -1],
    ['default_timeout', 1.5],
  ])('rejects %s = %s', (key, value) => {
    expect(failure(settingsSchema.safeParse({ [key]: value }))).toContain(key);
  });

  it.each([
    ['max_concurrency', 1],
    ['max_dispatch_depth', 1],
    ['default_timeout', 1],
    ['default_max_budget_usd', 0],
    ['job_retention_days', 0],
  ])('accepts %s = %s', (key, value) => {
    expect(settingsSchema.safeParse({ [key]: value }).success).toBe(true);
  });

  it('allows cache ttl 0 and rejects a negative ttl or a zero max_size', () => {
    expect(cacheSettingsSchema.parse({ ttl: 0 }).ttl).toBe(0);
    expect(cacheSettingsSchema.safeParse({ ttl: -1 }).success).toBe(false);
    expect(cacheSettingsSchema.safeParse({ max_size: 0 }).success).toBe(false);
  });
});

describe('numeric bounds on agents', () => {
  it('rejects a negative agent timeout', () => {
    expect(failure(agentSchema.safeParse({ directory: '/tmp', timeout: -5 }))).toContain('timeout');
  });

  it('allows agent timeout 0 (inherit settings.default_timeout)', () => {
    expect(parseAgent({ directory: '/tmp', timeout: 0 }).timeout).toBe(0);
  });

  it('rejects a fractional timeout', () => {
    expect(agentSchema.safeParse({ directory: '/tmp', timeout: 1.5 }).success).toBe(false);
  });

  it('rejects a negative budget on the agent and in settings', () => {
    expect(failure(agentSchema.safeParse({ directory: '/tmp', max_budget_usd: -1 }))).toContain('max_budget_usd');
    expect(failure(settingsSchema.safeParse({ default_max_budget_usd: -1 }))).toContain('default_max_budget_usd');
    expect(parseAgent({ directory: '/tmp', max_budget_usd: 0 }).max_budget_usd).toBe(0);
    expect(parseAgent({ directory: '/tmp', max_budget_usd: 0.5 }).max_budget_usd).toBe(0.5);
  });
});

describe('DispatchConfig', () => {
  it('is empty with default settings by default', () => {
    const config = emptyConfig();
    expect(config.agents).toEqual({});
    expect(config.groups).toEqual({});
    expect(config.settings).toEqual(settingsSchema.parse({}));
  });

  it('treats null sections (an empty `agents:` line) as empty', () => {
    const config = configSchema.parse({ agents: null, groups: null, settings: null });
    expect(config.agents).toEqual({});
    expect(config.groups).toEqual({});
    expect(config.settings.default_timeout).toBe(300);
  });

  it('validates a config from a dict', () => {
    const config = configSchema.parse({
      agents: { api: { directory: '/tmp', description: 'API', timeout: 60 } },
      settings: { max_dispatch_depth: 5 },
    });
    expect(config.agents['api']!.timeout).toBe(60);
    expect(config.agents['api']!.description).toBe('API');
    expect(config.settings.max_dispatch_depth).toBe(5);
    expect(config.settings.default_timeout).toBe(300);
  });
});

describe('groups', () => {
  it('member use_for defaults to ""', () => {
    expect(groupMemberSchema.parse({ agent: 'api' })).toEqual({ agent: 'api', use_for: '' });
  });

  it('validates the member agent name', () => {
    const result = groupMemberSchema.safeParse({ agent: '-bad' });
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.message).toContain('Invalid agent name');
  });

  it('has empty defaults', () => {
    expect(groupSchema.parse({})).toEqual({ description: '', shared_context: '', members: [] });
  });

  it('config groups default to {}', () => {
    expect(configSchema.parse({}).groups).toEqual({});
  });

  it('accepts groups with members and use_for', () => {
    const config = configSchema.parse({
      agents: { api: { directory: '/tmp' }, web: { directory: '/tmp' } },
      groups: {
        product: {
          description: 'the product',
          shared_context: 'we ship on Fridays',
          members: [{ agent: 'api', use_for: 'backend questions' }, { agent: 'web' }],
        },
      },
    });
    const group = config.groups['product']!;
    expect(group.description).toBe('the product');
    expect(group.shared_context).toBe('we ship on Fridays');
    expect(group.members).toEqual([
      { agent: 'api', use_for: 'backend questions' },
      { agent: 'web', use_for: '' },
    ]);
  });

  it('requires group keys to be valid names', () => {
    const text = failure(configSchema.safeParse({ groups: { '-bad': {} } }));
    expect(text).toContain('groups.-bad');
    expect(text).toContain('Invalid agent name');
  });

  it('does not enforce member existence at load; unknownGroupMembers reports it', () => {
    const config = configSchema.parse({
      agents: { api: { directory: '/tmp' } },
      groups: { g: { members: [{ agent: 'ghost' }, { agent: 'api' }, { agent: 'ghost' }, { agent: 'alpha' }] } },
    });
    expect(config.groups['g']!.members).toHaveLength(4);
    expect(unknownGroupMembers(config, config.groups['g']!)).toEqual(['alpha', 'ghost']);
  });
});

describe('settings.mcp_policy_changes', () => {
  it('absent: narrow-only with an empty allow list, and the settings block is written back as the original wrote it', () => {
    const settings = settingsSchema.parse({});
    expect(settings).not.toHaveProperty('mcp_policy_changes');
    expect(mcpPolicyChanges(settings)).toEqual({ mode: 'narrow-only', allow: [] });
    expect(renderConfig(emptyConfig())).not.toContain('mcp_policy_changes');
  });

  it.each(['narrow-only', 'none', 'any'] as const)('mode %s is accepted and kept on save', (mode) => {
    const config = configSchema.parse({ settings: { mcp_policy_changes: { mode, allow: ['builder'] } } });
    expect(mcpPolicyChanges(config.settings)).toEqual({ mode, allow: ['builder'] });
    expect(renderConfig(config)).toContain(`mode: ${mode}`);
  });

  it('a partial block takes the defaults for the rest', () => {
    expect(mcpPolicyChanges(settingsSchema.parse({ mcp_policy_changes: { allow: ['readonly-inspector'] } }))).toEqual({ mode: 'narrow-only', allow: ['readonly-inspector'] });
  });

  it('an unknown mode or key is refused, naming it', () => {
    expect(failure(settingsSchema.safeParse({ mcp_policy_changes: { mode: 'widen-freely' } }))).toContain('mcp_policy_changes.mode');
    expect(failure(settingsSchema.safeParse({ mcp_policy_changes: { allowed: [] } }))).toContain('mcp_policy_changes.allowed: unknown key');
  });
});
