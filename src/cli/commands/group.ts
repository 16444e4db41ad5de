import { addGroup, removeGroup, requireGroup, updateGroup } from '../../core/groups.js';
import { readConfig } from '../../config/store.js';
import { unknownGroupMembers } from '../../config/schema.js';
import { list, parse, str } from '../args.js';
import type { ArgSpec, CommandGroup, CommandSpec, OptionSpec } from '../spec.js';
import { out, style, warn } from '../output.js';

const GROUP_ARG: ArgSpec = { name: 'NAME', description: "the group's name" };
const DESCRIPTION: OptionSpec = { type: 'string', short: 'd', value: 'TEXT', description: 'the brief the orchestrating model reads about this group' };
const SHARED_CONTEXT: OptionSpec = { type: 'string', value: 'TEXT', description: "facts every member's dispatch is given ('' clears on update)" };

const addSpec: CommandSpec = {
  name: 'group add',
  summary: 'Create a group of agents (members must exist)',
  args: [GROUP_ARG],
  options: {
    description: DESCRIPTION,
    'shared-context': SHARED_CONTEXT,
    member: { type: 'string', multiple: true, value: 'AGENT', description: 'a member agent' },
  },
};
const listSpec: CommandSpec = { name: 'group list', summary: 'List groups and their members', args: [], options: {} };
const inspectSpec: CommandSpec = { name: 'group inspect', summary: "Show a group's brief, shared context and members", args: [GROUP_ARG], options: {} };
const updateSpec: CommandSpec = {
  name: 'group update',
  summary: "Change a group's description or shared context",
  args: [GROUP_ARG],
  options: { description: DESCRIPTION, 'shared-context': SHARED_CONTEXT },
};
const removeSpec: CommandSpec = { name: 'group remove', summary: 'Remove a group (its agents stay)', args: [GROUP_ARG], options: {} };

export const groupCommands: CommandGroup = {
  name: 'group',
  summary: 'Groups of agents an orchestrating model dispatches to together',
  subcommands: [
    { spec: addSpec, run: groupAdd },
    { spec: listSpec, run: groupList },
    { spec: inspectSpec, run: groupInspect },
    { spec: updateSpec, run: groupUpdate },
    { spec: removeSpec, run: groupRemove },
  ],
};

async function groupAdd(argv: string[]): Promise<number> {
  const p = parse(addSpec, argv);
  const name = p.positionals[0]!;
  const group = await addGroup({ name, description: str(p, 'description'), shared_context: str(p, 'shared-context'), members: list(p, 'member') });
  out(`Added group '${name}' (${group.members.length} member(s)).`);
  if (group.members.length === 0) warn('group has no members yet. Recreate with --member, or add agents + use_for hints by editing agents.yaml.');
  return 0;
}

function groupList(argv: string[]): number {
  parse(listSpec, argv);
  const config = readConfig();
  const groups = Object.entries(config.groups);
  if (groups.length === 0) {
    out('No groups configured. Run: agent-dispatch group add <name> --member <agent>');
    return 0;
  }
  for (const [name, group] of groups) {
    const unknown = new Set(unknownGroupMembers(config, group));
    out(`  ${style.bold(name)} (${group.members.length} member(s))`);
    if (group.description) out(`    desc: ${group.description}`);
    const members = group.members.map((m) => (unknown.has(m.agent) ? style.red(`${m.agent}(unknown)`) : m.agent));
    out(`    members: ${members.join(', ')}`);
    out(`    shared context: ${group.shared_context.trim() ? 'yes' : 'no'}`);
  }
  return 0;
}

function groupInspect(argv: string[]): number {
  const p = parse(inspectSpec, argv);
  const name = p.positionals[0]!;
  const config = readConfig();
  const group = requireGroup(config, name, `Run 'agent-dispatch group list' to see groups.`);
  const unknown = new Set(unknownGroupMembers(config, group));
  out(style.bold(name));
  out(`  description: ${group.description}`);
  out('  shared_context:');
  for (const line of group.shared_context.split('\n')) out(`    ${line}`);
  if (group.members.length === 0) {
    out('  (no members — recreate with --member or edit agents.yaml)');
    return 0;
  }
  out(`  members (${group.members.length}):`);
  for (const m of group.members) out(`    - ${m.agent}${unknown.has(m.agent) ? ' (unknown)' : ''}${m.use_for ? ` — ${m.use_for}` : ''}`);
  return 0;
}

async function groupUpdate(argv: string[]): Promise<number> {
  const p = parse(updateSpec, argv);
  const name = p.positionals[0]!;
  const fields = await updateGroup(name, { description: str(p, 'description'), shared_context: str(p, 'shared-context') });
  out(`Updated group '${name}': ${fields.join(', ')}`);
  return 0;
}

async function groupRemove(argv: string[]): Promise<number> {
  const p = parse(removeSpec, argv);
  const name = p.positionals[0]!;
  // The CLI's own not-found message (the original's), pointing at `group list`, before the locked remove.
  requireGroup(readConfig(), name, `Run 'agent-dispatch group list' to see groups.`);
  await removeGroup(name);
  out(`Removed group '${name}'.`);
  return 0;
}
