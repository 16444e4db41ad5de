import { fileURLToPath } from 'node:url';
import { configPath } from '../../config/paths.js';
import { loadConfig } from '../../config/load.js';
import { saveConfig } from '../../config/save.js';
import { emptyConfig } from '../../config/schema.js';
import { parse } from '../args.js';
import type { CommandSpec } from '../spec.js';
import { claudeMcp, type ClaudeMcp } from '../claude-mcp.js';
import { removeForeign } from '../mcp-replace.js';
import { SERVER_NAME, survey, type Judge, type Registration } from '../mcp-survey.js';
import { askOnTty, type Confirm } from '../prompt.js';
import { classify, fsProbe, thisProgram } from '../registration.js';
import { removeCommand, selfInvocation, where, why } from '../registration-report.js';
import { which } from '../which.js';
import { err, out, style, warn } from '../output.js';

/**
 * Node flags for the long-lived server. A 4 MiB young generation (the default grows to 16 MiB) keeps the server
 * under 100 MB RSS with 10 dispatches in flight (bench/server-memory.mjs: 105-107 MB → 94 MB, same latency).
 */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=4'];

/** This package's CLI script, which `serve` runs. */
export function serverScript(): string {
  return fileURLToPath(new URL('../../cli.js', import.meta.url));
}

/**
 * How Claude Code should start this server: this Node with the server flags and this very script — never
 * whatever `agent-dispatch` is on PATH (for users moving over it is often the unsandboxed Python original).
 */
export function serverCommand(): { command: string; args: string[] } {
  return { command: process.execPath, args: [...SERVER_NODE_FLAGS, serverScript(), 'serve'] };
}

/** Tells this program's registrations from the Python original's and anything else's. */
export function registrationJudge(): Judge {
  const self = thisProgram(serverScript());
  const probe = fsProbe();
  return (endpoint) => classify(endpoint, self, probe);
}

export const initSpec: CommandSpec = {
  name: 'init',
  summary: 'Create agents.yaml and register the MCP server with Claude Code (user scope)',
  args: [],
  options: {
    'no-register': { type: 'boolean', description: 'only create the config; do not touch the Claude Code registration' },
    replace: { type: 'boolean', description: 'remove an agent-dispatch registration that runs another program (e.g. the unsandboxed Python original) first' },
  },
};

export async function initCommand(argv: string[], confirm: Confirm = askOnTty): Promise<number> {
  const p = parse(initSpec, argv);
  const path = configPath();
  const load = loadConfig(path);
  if (load.kind === 'missing') {
    saveConfig(emptyConfig(), path);
    out(`Created config: ${path}`);
  } else {
    out(`Config already exists: ${path}`);
  }
  if (p.values['no-register']) {
    out('Skipped MCP registration (--no-register).');
    return 0;
  }
  const spec = JSON.stringify({ type: 'stdio', ...serverCommand() });
  const manual = `  claude mcp add-json ${SERVER_NAME} '${spec}' --scope user`;
  const claude = which('claude');
  if (!claude) {
    warn('claude CLI not found. Install Claude Code, then register the MCP server manually:');
    out(manual);
    return 0;
  }
  const code = await register(claudeMcp(claude), spec, manual, p.values['replace'] === true, confirm);
  if (code !== 0) return code;
  // `agent-dispatch` on PATH may be the Python original: name a command that runs this program.
  const self = selfInvocation(thisProgram(serverScript()), fsProbe());
  out('\nNext steps:');
  out(`  ${self} add <name> <directory>`);
  out(`  ${self} list`);
  out(`  ${self} policy check`);
  return 0;
}

/**
 * Registers this program as agent-dispatch (user scope). A registration that would run something else instead —
 * agent-dispatch as another program in any scope, or the Python original under any name — is never left in
 * place silently: it is replaced with --replace (or a "yes" on a terminal), else init fails saying how to fix it.
 */
async function register(mcp: ClaudeMcp, spec: string, manual: string, replace: boolean, confirm: Confirm): Promise<number> {
  const judge = registrationJudge();
  const found = survey(mcp, judge);
  if (!found.ok) {
    err(style.red(`Could not check the existing MCP registrations: ${found.message}`, process.stderr));
    return 1;
  }
  const { foreign, incomplete } = found.value;
  let current = found.value.current;
  if (incomplete) warn(`Could not look for other registrations of the Python original: ${incomplete}`);
  if (foreign.length > 0) {
    reportForeign(foreign);
    if (!replace && !(await confirm('Replace with this program?'))) {
      refuse(foreign);
      return 1;
    }
    const replaced = removeForeign(mcp, foreign, judge);
    if (!replaced.ok) {
      err(style.red(replaced.message, process.stderr));
      return 1;
    }
    for (const r of replaced.value.removed) out(`Removed ${where(r)}`);
    current = replaced.value.current;
  }

  if (current?.verdict.kind === 'ours' && current.scope === 'user') {
    out(`${SERVER_NAME} is already registered with Claude Code (user scope).`);
    return 0;
  }
  const added = mcp.addJson(SERVER_NAME, spec, 'user');
  if (added.ok) {
    out(style.green('Registered MCP server with Claude Code (user scope).'));
  } else if ('alreadyExists' in added) {
    // The user scope holds one that a nearer scope (this program's) hides; `mcp list` would have named it if it
    // were another program — unless that check failed.
    if (incomplete) {
      err(style.red(`${SERVER_NAME} is already registered in the user scope, and what it runs could not be checked.`, process.stderr));
      err(`Look with: claude mcp get ${SERVER_NAME} (from a directory without a local or project registration)`);
      return 1;
    }
    out(`${SERVER_NAME} is already registered with Claude Code (user scope).`);
  } else {
    out(style.red(`Failed to register MCP server: ${added.message}`));
    out('You can register it manually:');
    out(manual);
  }
  return 0;
}

function reportForeign(foreign: Registration[]): void {
  const named = foreign.some((r) => r.name === SERVER_NAME);
  err(style.red(named ? `${SERVER_NAME} is registered with Claude Code, but not as this program:` : 'Claude Code has the Python original agent-dispatch registered:', process.stderr));
  for (const r of foreign) {
    err(`  ${where(r)}`);
    err(`    ${why(r)}`);
  }
}

function refuse(foreign: Registration[]): void {
  const self = selfInvocation(thisProgram(serverScript()), fsProbe());
  const { command, args } = serverCommand();
  err(`To replace ${foreign.length === 1 ? 'it' : 'them'} with this program (${[command, ...args].join(' ')}), run:`);
  err(`  ${self} init --replace`);
  if (self !== 'agent-dispatch') err('  (`agent-dispatch` on your PATH is not this program.)');
  err(`or remove ${foreign.length === 1 ? 'it' : 'them'} yourself, then run init again:`);
  for (const r of foreign) err(`  ${removeCommand(r)}`);
}
