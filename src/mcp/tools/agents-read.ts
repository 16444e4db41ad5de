import { z } from 'zod';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { AppError } from '../../errors.js';
import { warmPoolConfig } from '../../config/schema.js';
import { noAgentGranted, requireVisibleAgent, visibleConfig } from '../../core/access.js';
import { callerUser } from '../../core/caller.js';
import { inspectAgentView, listAgentsView } from '../../core/views.js';
import { boundedString } from '../../limits.js';
import { guarded, jsonResult } from '../envelope.js';
import type { ServerContext } from '../context.js';

export function registerAgentReadTools(server: McpServer, ctx: ServerContext): void {
  server.registerTool(
    'list_agents',
    {
      description:
        'List configured agents: directory, description, health, detected MCP servers / stacks / databases, permission settings, and the sandbox policy each one runs under (with a one-line summary).',
      inputSchema: {},
    },
    () =>
      guarded('list_agents', () => {
        const config = visibleConfig(ctx.config(), ctx.caller);
        if (Object.keys(config.agents).length === 0) {
          if (ctx.caller.kind === 'user') throw noAgentGranted(ctx.caller.user);
          throw new AppError('AGENT_NOT_FOUND', 'No agents configured. Run: agent-dispatch add <name> <directory>', {
            hint: 'add_agent(name, directory) registers a project directory as an agent (or ask the user to run the command above).',
          });
        }
        return jsonResult(listAgentsView(config, ctx.configDir()));
      }),
  );

  server.registerTool(
    'inspect_agent',
    {
      description:
        'Detailed, cheap lookup of one agent (no subprocess): config, sandbox policy, health, MCP servers, stacks, databases, and previews of CLAUDE.md and README.md.',
      inputSchema: {
        name: boundedString('name', 'name').describe('Agent name'),
        // Coerced and truncated like the original's int(): "40" and 40.7 both mean 40.
        preview_lines: z.coerce.number().transform(Math.trunc).default(40).describe('Lines of CLAUDE.md / README.md to preview (0-200; 0 = none)'),
      },
    },
    ({ name, preview_lines }) =>
      guarded('inspect_agent', () => {
        const config = ctx.config();
        const view = inspectAgentView(name, requireVisibleAgent(config, name, ctx.caller), preview_lines, ctx.configDir(), ctx.caller);
        // This server's pre-started sandboxes for the agent (settings.warm_pool).
        const lane = callerUser(ctx.caller);
        const pool = ctx.dispatcher.service.warmPoolStatus().find((s) => s.agent === name && s.lane === lane);
        return jsonResult({ ...view, warm_pool: { ...warmPoolConfig(config.settings), idle: pool?.idle ?? 0, ready: pool?.ready ?? 0, starting: pool?.filling ?? false } });
      }),
  );
}
