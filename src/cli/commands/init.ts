import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { configPath } from '../../config/paths.js';
import { loadConfig } from '../../config/load.js';
import { saveConfig } from '../../config/save.js';
import { emptyConfig } from '../../config/schema.js';
import { parse } from '../args.js';
import { which } from '../which.js';
import { out, style, warn } from '../output.js';

/**
 * Node flags for the long-lived server. A 4 MiB young generation (the default grows to 16 MiB) keeps the server
 * under 100 MB RSS with 10 dispatches in flight (bench/server-memory.mjs: 105-107 MB → 94 MB, same latency).
 */
export const SERVER_NODE_FLAGS = ['--max-semi-space-size=4'];

/**
 * How Claude Code should start this server: this Node with the server flags and this very script — never
 * whatever `agent-dispatch` is on PATH (for users moving over it is often the unsandboxed Python original).
 */
export function serverCommand(): { command: string; args: string[] } {
  const script = fileURLToPath(new URL('../../cli.js', import.meta.url));
  return { command: process.execPath, args: [...SERVER_NODE_FLAGS, script, 'serve'] };
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
