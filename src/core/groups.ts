import { AppError } from '../errors.js';
import { mutateConfig } from '../config/store.js';
import type { DispatchConfig, GroupConfig } from '../config/schema.js';
import { validateLength, validateName } from './validate.js';

const GROUP_LIST_HINT = "list_groups (MCP) or 'agent-dispatch group list' shows the configured groups.";

export interface NewGroup {
  name: string;
  description?: string | undefined;
  shared_context?: string | undefined;
  members?: string[] | undefined;
}

export async function addGroup(input: NewGroup, configPath?: string): Promise<GroupConfig> {
  validateName(input.name);
  validateGroupText(input);
  for (const member of input.members ?? []) validateName(member, 'member');
  return mutateConfig((config) => {
    if (input.name in config.groups) {
      throw new AppError('GROUP_EXISTS', `Group '${input.name}' already exists. Use 'agent-dispatch group remove ${input.name}' first.`, {
        hint: `'agent-dispatch group update ${input.name}' changes its description and shared context; or pick another name.`,
      });
    }
    const members = [...new Set(input.members ?? [])];
    for (const member of members) {
      if (!(member in config.agents)) {
        throw new AppError('AGENT_NOT_FOUND', `agent '${member}' not found. Add it first ('agent-dispatch add') or check the name.`, {
          hint: "'agent-dispatch list' shows the configured agents.",
        });
      }
    }
    const group: GroupConfig = {
      description: input.description ?? '',
      shared_context: input.shared_context ?? '',
      members: members.map((agent) => ({ agent, use_for: '' })),
    };
    config.groups[input.name] = group;
    return group;
  }, configPath);
}

export async function updateGroup(
  name: string,
  patch: { description?: string | undefined; shared_context?: string | undefined },
  configPath?: string,
): Promise<string[]> {
  if (patch.description === undefined && patch.shared_context === undefined) {
    throw new AppError('NOTHING_TO_UPDATE', 'Nothing to update. Pass --description and/or --shared-context.', { hint: "--shared-context '' clears the shared context." });
  }
  validateGroupText(patch);
  return mutateConfig((config) => {
    const group = requireGroup(config, name, `Run 'agent-dispatch group list' to see groups.`);
    const fields: string[] = [];
    if (patch.description !== undefined) {
      group.description = patch.description;
      fields.push('description');
    }
    if (patch.shared_context !== undefined) {
      group.shared_context = patch.shared_context;
      fields.push('shared_context');
    }
    return fields;
  }, configPath);
}

export async function removeGroup(name: string, configPath?: string): Promise<void> {
  await mutateConfig((config) => {
    requireGroup(config, name);
    delete config.groups[name];
  }, configPath);
}

export function requireGroup(config: DispatchConfig, name: string, next?: string): GroupConfig {
  const group = config.groups[name];
  if (group) return group;
  const hint = Object.keys(config.groups).length === 0 ? "No group is configured yet: create one with 'agent-dispatch group add <name> --member <agent>'." : GROUP_LIST_HINT;
  if (next) throw new AppError('GROUP_NOT_FOUND', `Group '${name}' not found. ${next}`, { hint });
  const available = Object.keys(config.groups).join(', ') || '(none configured)';
  throw new AppError('GROUP_NOT_FOUND', `Unknown group: '${name}'. Available: ${available}`, { hint });
}

function validateGroupText(fields: { description?: string | undefined; shared_context?: string | undefined }): void {
  validateLength('description', fields.description, 'description');
  validateLength('shared_context', fields.shared_context, 'shared_context');
}
