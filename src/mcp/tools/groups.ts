import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { AppError } from '../../errors.js';
import { visibleConfig } from '../../core/access.js';
import { requireGroup } from '../../core/groups.js';
import { inspectGroupView, listGroupsView } from '../../core/views.js';
import { boundedString } from '../../limits.js';
import { guarded, jsonResult } from '../envelope.js';
import type { ServerContext } from '../context.js';

export function registerGroupTools(server: McpServer, ctx: ServerContext): void {
  server.registerTool(
    'list_groups',
    {
      description: 'List agent groups: description, whether shared context is set, and members (with use_for hints and health; unknown members flagged).',
      inputSchema: {},
    },
    () =>
      guarded('list_groups', () => {
        const config = visibleConfig(ctx.config(), ctx.caller);
        if (Object.keys(config.groups).length === 0) {
          if (ctx.caller.kind === 'user') {
            throw new AppError('GROUP_NOT_FOUND', `No groups with an agent granted to you (user '${ctx.caller.user}').`, {
              hint: 'Groups are optional: dispatch to your agents directly (list_agents), or ask an admin of this dispatch service to grant you a group (groups.<name>.users).',
            });
          }
          throw new AppError('GROUP_NOT_FOUND', 'No groups configured. Create one: agent-dispatch group add <name>', {
            hint: "Groups are optional: dispatch to agents directly (list_agents), or ask the user to create one with 'agent-dispatch group add <name> --member <agent>'.",
          });
        }
        return jsonResult(listGroupsView(config));
      }),
  );

  server.registerTool(
    'inspect_group',
    {
      description: "One group in full: description, shared_context text, and each member's directory, description and health.",
      inputSchema: { name: boundedString('name', 'name').describe('Group name') },
    },
    ({ name }) =>
      guarded('inspect_group', () => {
        const config = visibleConfig(ctx.config(), ctx.caller);
        return jsonResult(inspectGroupView(config, name, requireGroup(config, name)));
      }),
  );
}
