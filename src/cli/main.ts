import { AppError, describeError, type ErrorCode } from '../errors.js';
import { VERSION } from '../version.js';
import { UsageError } from './args.js';
import { applyCommand, applySpec } from './commands/apply.js';
import { addCommand, addSpec, describeCommand, describeSpec, listCommand, listSpec, removeCommand, removeSpec, updateCommand, updateSpec } from './commands/agents.js';
import { doctorCommand, doctorSpec } from './commands/doctor.js';
import { gcCommand, gcSpec } from './commands/gc.js';
import { groupCommands } from './commands/group.js';
import { imageCommands } from './commands/image.js';
import { initCommand, initSpec } from './commands/init.js';
import { cancelCommand, cancelSpec, jobCommand, jobsCommand, jobSpec, jobsSpec } from './commands/jobs.js';
import { policyCommands } from './commands/policy.js';
import { selftestCommand, selftestSpec } from './commands/selftest.js';
import { serveCommand, serveSpec } from './commands/serve.js';
import { testCommand, testSpec } from './commands/test.js';
import { tokenCommands } from './commands/token.js';
import { err, out, style } from './output.js';
import { commandHelp, commandList, groupHelp, groupUsage, subcommandName, wantsHelp, type Command, type CommandGroup } from './spec.js';

/** Every command, in the order the help lists them; `--help` and the parser both read these specs. */
export const COMMANDS: (Command | CommandGroup)[] = [
  { spec: initSpec, run: initCommand },
  { spec: addSpec, run: addCommand },
  { spec: updateSpec, run: updateCommand },
  { spec: removeSpec, run: removeCommand },
  { spec: listSpec, run: listCommand },
  { spec: describeSpec, run: describeCommand },
  groupCommands,
  policyCommands,
  imageCommands,
  { spec: testSpec, run: testCommand },
  { spec: selftestSpec, run: selftestCommand },
  { spec: doctorSpec, run: doctorCommand },
  { spec: jobsSpec, run: jobsCommand },
  { spec: jobSpec, run: jobCommand },
  { spec: cancelSpec, run: cancelCommand },
  { spec: applySpec, run: applyCommand },
  { spec: gcSpec, run: gcCommand },
  { spec: serveSpec, run: serveCommand },
  tokenCommands,
];

/** Exit codes: 0 ok; 1 failed (or policy findings); 2 usage error or unusable input; 3 Docker unavailable. */
const EXIT: Partial<Record<ErrorCode, number>> = { DOCKER_UNAVAILABLE: 3, IMAGE_NOT_FOUND: 3 };

export function usage(): string {
  return [
    `agent-dispatch ${VERSION} — delegate tasks to Claude Code agents in other projects, each dispatch in a hardened container`,
    '',
    'usage: agent-dispatch <command> [options]',
    '',
    'commands:',
    ...commandList(COMMANDS),
    '',
    "Run 'agent-dispatch <command> --help' for its arguments and options.",
    'Config: $AGENT_DISPATCH_CONFIG or ~/.config/agent-dispatch/agents.yaml',
    'Exit codes: 0 ok, 1 failed, 2 usage error or unusable input, 3 Docker unavailable',
  ].join('\n');
}

function entryName(entry: Command | CommandGroup): string {
  return 'spec' in entry ? entry.spec.name : entry.name;
}

/** The command argv names (a subcommand of a group included), or a usage error for a group without one. */
function resolve(entry: Command | CommandGroup, rest: string[]): { command?: Command; argv: string[]; group?: CommandGroup } {
  if ('spec' in entry) return { command: entry, argv: rest };
  const [sub, ...argv] = rest;
  const command = entry.subcommands.find((c) => subcommandName(entry, c) === sub);
  return command ? { command, argv } : { group: entry, argv: rest };
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    out(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    out(`agent-dispatch ${VERSION}`);
    return 0;
  }
  const entry = COMMANDS.find((e) => entryName(e) === name);
  if (!entry) {
    err(style.red(`Unknown command '${name}'.`, process.stderr));
    err(usage());
    return 2;
  }
  const { command, argv: commandArgv, group } = resolve(entry, rest);
  if (wantsHelp(commandArgv)) {
    out(command ? commandHelp(command.spec) : groupHelp(group!));
    return 0;
  }
  try {
    if (!command) throw new UsageError(groupUsage(group!));
    return await command.run(commandArgv);
  } catch (error) {
    return report(error);
  }
}

/** The one place errors become messages and exit codes: known errors in one line, unknown ones with a stack. */
function report(error: unknown): number {
  if (error instanceof UsageError) {
    err(style.red(`Error: ${error.message}`, process.stderr));
    return 2;
  }
  if (error instanceof AppError) {
    err(style.red(`Error: ${error.message}`, process.stderr));
    if (error.hint) err(error.hint);
    return EXIT[error.code] ?? 1;
  }
  err(style.red(`Unexpected error: ${describeError(error)}`, process.stderr));
  err((error as Error)?.stack ?? '');
  err('This is a bug in agent-dispatch; please report it with the lines above.');
  return 1;
}
