import { addGroup, removeGroup, requireGroup, updateGroup } from '../../core/groups.js';
import { readConfig } from '../../config/store.js';
import { unknownGroupMembers } from '../../config/schema.js';
import { list, parse, str, UsageError } from '../args.js';
import { out, style, warn } from '../output.js';

export async function groupCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'add':
      return groupAdd(rest);
    case 'list':
      return groupList(rest);
    case 'inspect':
      return groupInspect(rest);
    case 'update':
      return groupUpdate(rest);
    case 'remove':
      return groupRemove(rest);
    default:
      throw new UsageError('usage: agent-dispatch group add|list|inspect|update|remove ...');
  }
}

async function groupAdd(argv: string[]): Promise<number> {
  const p = parse(
    'group add',
    argv,
    { description: { type: 'string', short: 'd' }, 'shared-context': { type: 'string' }, member: { type: 'string', multiple: true } },
    { min: 1, max: 1, names: 'NAME [-d TEXT] [--shared-context TEXT] [--member AGENT]...' },
  );
  const name = p.positionals[0]!;
  const group = await addGroup({ name, description: str(p, 'description'), shared_context: str(p, 'shared-context'), members: list(p, 'member') });
  out(`Added group '${name}' (${group.members.length} member(s)).`);
  if (group.members.length === 0) warn('group has no members yet. Recreate with --member, or add agents + use_for hints by editing agents.yaml.');
  return 0;
}

function groupList(argv: string[]): number {
  parse('group list', argv, {}, { min: 0, max: 0, names: '' });
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
  const p = parse('group inspect', argv, {}, { min: 1, max: 1, names: 'NAME' });
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
  const p = parse('group update', argv, { description: { type: 'string', short: 'd' }, 'shared-context': { type: 'string' } }, { min: 1, max: 1, names: 'NAME [-d TEXT] [--shared-context TEXT]' });
  const name = p.positionals[0]!;
  const fields = await updateGroup(name, { description: str(p, 'description'), shared_context: str(p, 'shared-context') });
  out(`Updated group '${name}': ${fields.join(', ')}`);
  return 0;
}

async function groupRemove(argv: string[]): Promise<number> {
  const p = parse('group remove', argv, {}, { min: 1, max: 1, names: 'NAME' });
  const name = p.positionals[0]!;
  // The CLI's own not-found message (the original's), pointing at `group list`, before the locked remove.
  requireGroup(readConfig(), name, `Run 'agent-dispatch group list' to see groups.`);
  await removeGroup(name);
  out(`Removed group '${name}'.`);
  return 0;
}
