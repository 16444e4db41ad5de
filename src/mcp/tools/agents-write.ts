import { z } from 'zod';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { addAgent, forgetAgentSessions, removeAgent, updateAgent, type AgentPatch } from '../../core/agents.js';
import { isClearSentinel, parseCsv } from '../../core/validate.js';
import { guarded, jsonResult, notify } from '../envelope.js';
import type { ServerContext } from '../context.js';

const csv = (what: string) => z.string().default('').describe(`Comma-separated ${what}`);

/** Empty CSV means "inherit" for tool lists (null), as in the original. */
function toolList(value: string): string[] | undefined {
  const items = parseCsv(value);
  return items.length > 0 ? items : undefined;
}

export function registerAgentWriteTools(server: McpServer, ctx: ServerContext): void {
  server.registerTool(
    'add_agent',
    {
      description:
        'Register a project directory as an agent. Description is auto-generated from CLAUDE.md / README / manifests when empty. The agent runs under the `default` sandbox policy unless `policy` names another (a preset or a policy file path).',
      inputSchema: {
        name: z.string().describe('Agent name: letters, digits, hyphens, underscores'),
        directory: z.string().describe('Project directory (must exist)'),
        description: z.string().default(''),
        timeout: z.number().int().default(0).describe('Seconds; 0 = 300'),
        max_budget_usd: z.number().default(0).describe('Spend cap per dispatch; 0 = none'),
        permission_mode: z.string().default(''),
        allowed_tools: csv('tools to pre-approve (empty = inherit defaults)'),
        disallowed_tools: csv('tools to deny (empty = inherit defaults)'),
        capabilities: csv('descriptive capability labels'),
        risky_capabilities: csv('risky capability labels'),
        policy: z.string().default('').describe("Sandbox policy: preset name or path (empty = 'default')"),
      },
    },
    (args, extra) =>
      guarded('add_agent', async () => {
        const { agent, warnings } = await addAgent(
          {
            name: args.name,
            directory: args.directory,
            description: args.description,
            timeout: args.timeout,
            max_budget_usd: args.max_budget_usd,
            permission_mode: args.permission_mode,
            allowed_tools: toolList(args.allowed_tools),
            disallowed_tools: toolList(args.disallowed_tools),
            capabilities: parseCsv(args.capabilities),
            risky_capabilities: parseCsv(args.risky_capabilities),
            policy: args.policy,
          },
          ctx.configPath(),
        );
        ctx.invalidateAgent(args.name);
        for (const warning of warnings) await notify(extra, `Warning: ${warning}`);
        const payload: Record<string, unknown> = { added: args.name, directory: agent.directory, description: agent.description, policy: agent.policy };
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
        "Update an agent. Only non-empty / non-zero fields change. 'none' clears model, permission_mode and tool lists (back to inherit) and empties capabilities; max_budget_usd < 0 clears the per-agent cap. The agent's permission fields can only narrow its sandbox policy.",
      inputSchema: {
        name: z.string(),
        description: z.string().default(''),
        timeout: z.number().int().default(0).describe('Seconds; 0 = unchanged'),
        max_budget_usd: z.number().default(0).describe('0 = unchanged; < 0 = clear'),
        model: z.string().default(''),
        permission_mode: z.string().default(''),
        allowed_tools: csv("tools ('none' = inherit defaults)"),
        disallowed_tools: csv("tools ('none' = inherit defaults)"),
        capabilities: csv("labels ('none' = clear)"),
        risky_capabilities: csv("labels ('none' = clear)"),
        policy: z.string().default('').describe('Sandbox policy: preset name or path'),
      },
    },
    (args, extra) =>
      guarded('update_agent', async () => {
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
        const { fields, warnings } = await updateAgent(args.name, patch, ctx.configPath());
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
      inputSchema: { name: z.string() },
    },
    ({ name }, extra) =>
      guarded('remove_agent', async () => {
        const agent = await removeAgent(name, ctx.configPath());
        ctx.invalidateAgent(name);
        const sessions = await forgetAgentSessions(name, agent, ctx.configPath(), ctx.environment());
        if (sessions.warning) await notify(extra, `Warning: agent '${name}': ${sessions.warning}`);
        return jsonResult(sessions.warning ? { removed: name, warning: sessions.warning } : { removed: name });
      }),
  );
}

