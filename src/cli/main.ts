import { AppError, describeError, type ErrorCode } from '../errors.js';
import { VERSION } from '../version.js';
import { UsageError } from './args.js';
import { addCommand, describeCommand, listCommand, removeCommand, updateCommand } from './commands/agents.js';
import { doctorCommand } from './commands/doctor.js';
import { groupCommand } from './commands/group.js';
import { imageCommand } from './commands/image.js';
import { initCommand } from './commands/init.js';
import { policyCommand } from './commands/policy.js';
import { selftestCommand } from './commands/selftest.js';
import { serveCommand } from './commands/serve.js';
import { testCommand } from './commands/test.js';
import { err, out, style } from './output.js';

type Command = (argv: string[]) => number | Promise<number>;

const COMMANDS: Record<string, { run: Command; summary: string }> = {
  init: { run: initCommand, summary: 'Create agents.yaml and register the MCP server with Claude Code [--no-register] [--replace]: --replace removes an agent-dispatch registration that runs another program (e.g. the unsandboxed Python original)' },
  add: { run: addCommand, summary: 'Add an agent: add NAME DIRECTORY [-d TEXT] [--timeout N] [--model M] [--max-budget-usd X] [--permission-mode M] [--allowed-tools CSV] [--disallowed-tools CSV] [--capabilities CSV] [--risky-capabilities CSV] [--policy NAME|PATH]' },
  update: { run: updateCommand, summary: "Update an agent: update NAME [same options as add]; 'none' or '' clears model, permission mode and tool lists" },
  remove: { run: removeCommand, summary: 'Remove an agent: remove NAME' },
  list: { run: listCommand, summary: 'List agents' },
  describe: { run: describeCommand, summary: 'Show one agent in detail: describe NAME' },
  group: { run: groupCommand, summary: 'Groups: group add NAME [-d] [--shared-context] [--member A]... | list | inspect NAME | update NAME | remove NAME' },
  policy: { run: policyCommand, summary: 'policy check [PATH...] [--agent NAME] [--json] (exit 0 clean, 1 error findings, 2 unusable input) | policy show NAME' },
  image: { run: imageCommand, summary: 'image build [agent|gateway] [--base IMAGE] [--claude-binary PATH] [--claude-version V] [--tag T] [--gateway-tag T] [--label K=V]... [--no-cache] [-q]: build the agent and egress gateway images locally (never pulls)' },
  test: { run: testCommand, summary: 'Run one real sandboxed dispatch: test NAME [TASK] [--stream] [--timeout N] (exit 0 on success)' },
  selftest: { run: selftestCommand, summary: 'Prove the sandbox on this machine: a real sandboxed claude against a scripted local model, probing from inside [--image IMAGE] [--json]' },
  doctor: { run: doctorCommand, summary: 'Check claude, Docker, config, MCP registration, agents, policies, images, the egress gateway and groups (exit 0 ok, 1 any FAIL, 3 Docker engine unreachable)' },
  serve: { run: serveCommand, summary: 'Run the MCP server on stdio (what Claude Code starts)' },
};

/** Exit codes: 0 ok; 1 failed (or policy findings); 2 usage error or unusable input; 3 Docker unavailable. */
const EXIT: Partial<Record<ErrorCode, number>> = { DOCKER_UNAVAILABLE: 3, IMAGE_NOT_FOUND: 3 };

export function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`);
  return [
    `agent-dispatch ${VERSION} — delegate tasks to Claude Code agents in other projects, each dispatch in a hardened container`,
    '',
    'usage: agent-dispatch <command> [options]',
    '',
    ...lines,
    '',
    'Config: $AGENT_DISPATCH_CONFIG or ~/.config/agent-dispatch/agents.yaml',
    'Exit codes: 0 ok, 1 failed, 2 usage error or unusable input, 3 Docker unavailable',
  ].join('\n');
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
  const command = COMMANDS[name];
  if (!command) {
    err(style.red(`Unknown command '${name}'.`, process.stderr));
    err(usage());
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    out(`agent-dispatch ${name}: ${command.summary}`);
    return 0;
  }
  try {
    return await command.run(rest);
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
