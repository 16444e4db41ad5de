/** How init and doctor name a registration that must go, and the commands that fix it. */
import { REMOVABLE_SCOPES } from './mcp-output.js';
import type { Registration } from './mcp-survey.js';
import { commandLine, type Probe, type This } from './registration.js';

/** `agent-dispatch (user scope): /home/me/.local/bin/agent-dispatch serve` */
export function where(r: Registration): string {
  const scope = r.scope ? `${r.scope} scope` : 'scope unknown';
  return `${r.name} (${scope}): ${commandLine(r.endpoint) || '(claude mcp get shows no command)'}`;
}

export function why(r: Registration): string {
  if (r.verdict.kind === 'original') return 'That is the Python original agent-dispatch: it runs every dispatch unsandboxed, directly on this machine.';
  return 'That is not this program: Claude Code runs it as agent-dispatch instead of this sandboxed server.';
}

/** The command that removes it, or what to do where `claude mcp remove` cannot (managed or dynamic config). */
export function removeCommand(r: Registration): string {
  if (r.scope !== undefined && !REMOVABLE_SCOPES.includes(r.scope)) return `(in the ${r.scope} configuration, which claude mcp remove cannot change: remove it there)`;
  return `claude mcp remove ${r.name}${r.scope ? ` -s ${r.scope}` : ''}`;
}

/** How to run this program from a shell: `agent-dispatch` when that is it on PATH (often it is the original). */
export function selfInvocation(self: This, probe: Probe): string {
  if (probe.command('agent-dispatch') === self.script) return 'agent-dispatch';
  return [process.execPath, self.script].map(shellQuote).join(' ');
}

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}
