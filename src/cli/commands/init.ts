import { spawnSync } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configPath } from '../../config/paths.js';
import { loadConfig } from '../../config/load.js';
import { saveConfig } from '../../config/save.js';
import { emptyConfig } from '../../config/schema.js';
import { parse } from '../args.js';
import { which } from '../which.js';
import { out, style, warn } from '../output.js';

/**
 * How Claude Code should start this server: the `agent-dispatch` on PATH only if it is this very program
 * (for users moving over it is often the unsandboxed Python original), else node + this script.
 */
export function serverCommand(): { command: string; args: string[] } {
  const script = fileURLToPath(new URL('../../cli.js', import.meta.url));
  const bin = which('agent-dispatch');
  if (bin && sameFile(bin, script)) return { command: bin, args: ['serve'] };
  return { command: process.execPath, args: [script, 'serve'] };
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

export function initCommand(argv: string[]): number {
  const p = parse('init', argv, { 'no-register': { type: 'boolean' } }, { min: 0, max: 0, names: '[--no-register]' });
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
  const manual = `  claude mcp add-json agent-dispatch '${spec}' --scope user`;
  const claude = which('claude');
  if (!claude) {
    warn('claude CLI not found. Install Claude Code, then register the MCP server manually:');
    out(manual);
    return 0;
  }
  const result = spawnSync(claude, ['mcp', 'add-json', 'agent-dispatch', spec, '--scope', 'user'], { encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = `${result.stderr ?? ''}${result.error ? String(result.error) : ''}`.trim();
  if (result.status === 0) {
    out(style.green('Registered MCP server with Claude Code (user scope).'));
  } else if (/already exists/i.test(stderr)) {
    out('agent-dispatch is already registered with Claude Code (user scope).');
  } else {
    out(style.red(`Failed to register MCP server: ${stderr || `claude exited with code ${result.status}`}`));
    out('You can register it manually:');
    out(manual);
    return 0;
  }
  out('\nNext steps:');
  out('  agent-dispatch add <name> <directory>');
  out('  agent-dispatch list');
  out('  agent-dispatch policy check');
  return 0;
}
