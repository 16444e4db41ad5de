import { z } from 'zod';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { requireAdmin } from '../../core/access.js';
import { addAgent, forgetAgentSessions, removeAgent, updateAgent, type AgentPatch } from '../../core/agents.js';
import { callerUser } from '../../core/caller.js';
import { isClearSentinel, parseCsv } from '../../core/validate.js';
import { boundedString, LIMITS } from '../../limits.js';
import { guarded, jsonResult, notify } from '../envelope.js';
import type { ServerContext } from '../context.js';

const csv = (field: string, what: string) => boundedString('csv', field).default('').describe(`Comma-separated ${what}`);
const POLICY_RULE =
  "Over MCP a policy may only be narrowed (no wider than the agent's current one, or than 'default' for a new agent, on any axis), unless settings.mcp_policy_changes allows more; every policy change is recorded in audit.jsonl.";

/** Empty CSV means "inherit" for tool lists (null), as in the original. */
function toolList(value: string): string[] | undefined {
  const items = parseCsv(value);
  return items.length > 0 ? items : undefined;
}

export function registerAgentWriteTools(server: McpServer, ctx: ServerContext): void {
  // Changing agents is for admins over HTTP; the local user's calls go on exactly as before (no extra config read).
  const adminOnly = (tool: string) => {
    if (ctx.caller.kind === 'user') requireAdmin(ctx.config(), ctx.caller, tool);
  };
  const change = { via: 'mcp', user: callerUser(ctx.caller) } as const;

  server.registerTool(
    'add_agent',
    {
      description:
        `Register a project directory as an agent. Description is auto-generated from CLAUDE.md / README / manifests when empty. The agent runs under the \`default\` sandbox policy unless \`policy\` names another (a preset or a policy file path). ${POLICY_RULE}`,
      inputSchema: {
        name: boundedString('name', 'name').describe(`Agent name: letters, digits, hyphens, underscores (at most ${LIMITS.name})`),
        directory: boundedString('path', 'directory').describe('Project directory (must exist)'),
        description: boundedString('description', 'description').default(''),
        timeout: z.number().int().default(0).describe('Seconds; 0 = 300'),
        max_budget_usd: z.number().default(0).describe('Spend cap per dispatch; 0 = none'),
        model: boundedString('model', 'model').default('').describe("Model alias or id passed to claude as --model (e.g. 'sonnet'); empty = claude's default"),
        permission_mode: boundedString('permission_mode', 'permission_mode').default(''),
        allowed_tools: csv('allowed_tools', 'tools to pre-approve (empty = inherit defaults)'),
        disallowed_tools: csv('disallowed_tools', 'tools to deny (empty = inherit defaults)'),
        capabilities: csv('capabilities', 'descriptive capability labels'),
        risky_capabilities: csv('risky_capabilities', 'risky capability labels'),
        policy: boundedString('policy', 'policy').default('').describe("Sandbox policy: preset name or path (empty = 'default')"),
      },
    },
    (args, extra) =>
      guarded('add_agent', async () => {
        adminOnly('add_agent');
        const { agent, warnings } = await addAgent(
          {
            name: args.name,
            directory: args.directory,
            description: args.description,
            timeout: args.timeout,
            max_budget_usd: args.max_budget_usd,
            model: args.model,
            permission_mode: args.permission_mode,
            allowed_tools: toolList(args.allowed_tools),
            disallowed_tools: toolList(args.disallowed_tools),
            capabilities: parseCsv(args.capabilities),
            risky_capabilities: parseCsv(args.risky_capabilities),
            policy: args.policy,
          },
          ctx.configPath(),
          change,
        );
        ctx.invalidateAgent(args.name);
        for (const warning of warnings) await notify(extra, `Warning: ${warning}`);
        const payload: Record<string, unknown> = { added: args.name, directory: agent.directory, description: agent.description, policy: agent.policy };
        if (agent.model) payload['model'] = agent.model;
        if (agent.permission_mode) payload['permission_mode'] = agent.permission_mode;
        if (agent.allowed_tools?.length) payload['allowed_tools'] = agent.allowed_tools;
        if (agent.disallowed_tools?.length) payload['disallowed_tools'] = agent.disallowed_tools;
        if (agent.capabilities.length) payload['capabilities'] = agent.capabilities;
        if (agent.risky_capabilities.length) payload['risky_capabilities'] = agent.risky_capabilities;
        return jsonResult(payload);
      }),
  );

  server.registerTool(
    'update_agent',
    {
      description:
        `Update an agent. Only non-empty / non-zero fields change. 'none' clears model, permission_mode and tool lists (back to inherit) and empties capabilities; max_budget_usd < 0 clears the per-agent cap. The agent's permission fields can only narrow its sandbox policy. ${POLICY_RULE}`,
      inputSchema: {
        name: boundedString('name', 'name'),
        description: boundedString('description', 'description').default(''),
        timeout: z.number().int().default(0).describe('Seconds; 0 = unchanged'),
        max_budget_usd: z.number().default(0).describe('0 = unchanged; < 0 = clear'),
        model: boundedString('model', 'model').default('').describe("Model alias or id ('none' = claude's default)"),
        permission_mode: boundedString('permission_mode', 'permission_mode').default(''),
        allowed_tools: csv('allowed_tools', "tools ('none' = inherit defaults)"),
        disallowed_tools: csv('disallowed_tools', "tools ('none' = inherit defaults)"),
        capabilities: csv('capabilities', "labels ('none' = clear)"),
        risky_capabilities: csv('risky_capabilities', "labels ('none' = clear)"),
        policy: boundedString('policy', 'policy').default('').describe('Sandbox policy: preset name or path'),
      },
    },
    (args, extra) =>
      guarded('update_agent', async () => {
        adminOnly('update_agent');
        const patch: AgentPatch = {};
        if (args.description) patch.description = args.description;
        if (args.timeout) patch.timeout = args.timeout;
        if (args.max_budget_usd > 0) patch.max_budget_usd = args.max_budget_usd;
        if (args.max_budget_usd < 0) patch.max_budget_usd = null;
        if (args.model) patch.model = isClearSentinel(args.model) ? null : args.model;
        if (args.permission_mode) patch.permission_mode = isClearSentinel(args.permission_mode) ? null : args.permission_mode;
        if (args.allowed_tools) patch.allowed_tools = isClearSentinel(args.allowed_tools) ? null : parseCsv(args.allowed_tools);
        if (args.disallowed_tools) patch.disallowed_tools = isClearSentinel(args.disallowed_tools) ? null : parseCsv(args.disallowed_tools);
        if (args.capabilities) patch.capabilities = isClearSentinel(args.capabilities) ? [] : parseCsv(args.capabilities);
        if (args.risky_capabilities) patch.risky_capabilities = isClearSentinel(args.risky_capabilities) ? [] : parseCsv(args.risky_capabilities);
        if (args.policy) patch.policy = args.policy;
        const { fields, warnings } = await updateAgent(args.name, patch, ctx.configPath(), change);
        ctx.invalidateAgent(args.name);
        for (const warning of warnings) await notify(extra, `Warning: ${warning}`);
        await notify(extra, `Updated agent '${args.name}': ${fields.join(', ')}`);
        return jsonResult({ updated: args.name, fields });
      }),
  );

  server.registerTool(
    'remove_agent',
    {
      description: "Remove an agent from agents.yaml and delete its session transcripts (its groups keep the name and flag it as unknown).",
      inputSchema: { name: boundedString('name', 'name') },
    },
    ({ name }, extra) =>
      guarded('remove_agent', async () => {
        adminOnly('remove_agent');
        const agent = await removeAgent(name, ctx.configPath());
        await ctx.dispatcher.forgetAgent(name);
        const sessions = await forgetAgentSessions(name, agent, ctx.configPath(), ctx.environment());
        if (sessions.warning) await notify(extra, `Warning: agent '${name}': ${sessions.warning}`);
        return jsonResult(sessions.warning ? { removed: name, warning: sessions.warning } : { removed: name });
      }),
  );
}

