/**
 * One declarative spec per command: the parser (args.ts) takes its option table from it and `--help` is rendered
 * from it, so a flag the parser accepts cannot be missing from the help.
 */

/** util.parseArgs' option fields, plus what `--help` says about the option. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  default?: string | boolean;
  /** One line for `--help`. */
  description: string;
  /** What a string option's value is called in the usage and help: `--timeout N`. */
  value?: string;
}

export interface ArgSpec {
  name: string;
  description: string;
  optional?: boolean;
  /** Takes every remaining positional (`PATH...`); only the last argument. */
  variadic?: boolean;
}

export interface CommandSpec {
  /** As typed: `add`, `group add`. */
  name: string;
  summary: string;
  args: ArgSpec[];
  options: Record<string, OptionSpec>;
  /** Lines printed after the options (exit codes, examples). */
  notes?: string[];
}

export interface Command {
  spec: CommandSpec;
  run: (argv: string[]) => number | Promise<number>;
}

/** A command with subcommands (`group add|list|…`); each subcommand's spec name starts with the group's. */
export interface CommandGroup {
  name: string;
  summary: string;
  subcommands: Command[];
}

export const HELP_FLAGS = ['--help', '-h'];

/** `--help` or `-h` before any `--` (after it they are positionals). */
export function wantsHelp(argv: string[]): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => HELP_FLAGS.includes(a));
}

export function positionalRange(spec: CommandSpec): { min: number; max: number } {
  const min = spec.args.filter((a) => !a.optional && !a.variadic).length;
  return { min, max: spec.args.some((a) => a.variadic) ? Infinity : spec.args.length };
}

function argSynopsis(a: ArgSpec): string {
  const name = a.variadic ? `${a.name}...` : a.name;
  return a.optional || a.variadic ? `[${name}]` : name;
}

function optionSynopsis(name: string, o: OptionSpec): string {
  return `[--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}]${o.multiple ? '...' : ''}`;
}

/** `agent-dispatch add NAME DIRECTORY [--description TEXT] ...`: the usage line, also the usage error's. */
export function synopsis(spec: CommandSpec): string {
  const parts = [...spec.args.map(argSynopsis), ...Object.entries(spec.options).map(([n, o]) => optionSynopsis(n, o))];
  return [`agent-dispatch ${spec.name}`, ...parts].join(' ');
}

export function subcommandName(group: CommandGroup, command: Command): string {
  return command.spec.name.slice(group.name.length + 1);
}

/** The usage error for a group without (or with an unknown) subcommand. */
export function groupUsage(group: CommandGroup): string {
  const only = group.subcommands.length === 1 ? group.subcommands[0] : undefined;
  if (only) return `usage: ${synopsis(only.spec)}`;
  return `usage: agent-dispatch ${group.name} ${group.subcommands.map((c) => subcommandName(group, c)).join('|')} ...`;
}

/** A long usage line broken between its `[...]` groups, continuation lines indented under the command. */
function wrap(line: string, width = 100): string[] {
  const lines: string[] = [];
  let current = '';
  for (const word of line.split(/ (?=\[)/)) {
    if (current && current.length + 1 + word.length > width) {
      lines.push(current);
      current = `       ${word}`;
    } else current = current ? `${current} ${word}` : word;
  }
  return [...lines, current];
}

function table(rows: [string, string][], indent = '  '): string[] {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `${indent}${left.padEnd(width)}  ${right}`.trimEnd());
}

function optionRow(name: string, o: OptionSpec): [string, string] {
  const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
  const extras = [o.multiple ? 'repeatable' : '', o.default !== undefined ? `default: ${String(o.default)}` : ''].filter(Boolean);
  return [flag, extras.length ? `${o.description} (${extras.join('; ')})` : o.description];
}

export function commandHelp(spec: CommandSpec): string {
  const lines = [`agent-dispatch ${spec.name}: ${spec.summary}`, '', ...wrap(`usage: ${synopsis(spec)}`)];
  if (spec.args.length > 0) lines.push('', 'arguments:', ...table(spec.args.map((a) => [argSynopsis(a), a.description])));
  const options = Object.entries(spec.options).map(([name, o]) => optionRow(name, o));
  lines.push('', 'options:', ...table([...options, ['-h, --help', 'show this help and exit']]));
  if (spec.notes?.length) lines.push('', ...spec.notes);
  return lines.join('\n');
}

export function groupHelp(group: CommandGroup): string {
  return [
    `agent-dispatch ${group.name}: ${group.summary}`,
    '',
    groupUsage(group),
    '',
    'subcommands:',
    ...table(group.subcommands.map((c) => [subcommandName(group, c), c.spec.summary])),
    '',
    `Run 'agent-dispatch ${group.name} <subcommand> --help' for its arguments and options.`,
  ].join('\n');
}

/** Every runnable command, subcommands included, for the top-level help and the tests. */
export function leaves(entries: (Command | CommandGroup)[]): Command[] {
  return entries.flatMap((e) => ('spec' in e ? [e] : e.subcommands));
}

export function commandList(entries: (Command | CommandGroup)[]): string[] {
  return table(leaves(entries).map((c) => [c.spec.name, c.spec.summary]));
}
