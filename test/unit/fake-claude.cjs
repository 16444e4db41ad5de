/**
 * The fake `claude` the CLI tests put on PATH (see fakeClaude in cli-harness.ts). It logs every invocation and
 * answers `mcp get`, `mcp list`, `mcp remove` and `mcp add-json` from a registry in claude.state.json, in the
 * words Claude Code 2.1.197 uses (test/unit/mcp-output.test.ts holds the real outputs these copy).
 */
'use strict';
const { appendFileSync, readFileSync, writeFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

const dir = dirname(process.argv[1]);
const statePath = join(dir, 'claude.state.json');
const state = JSON.parse(readFileSync(statePath, 'utf8'));
const argv = process.argv.slice(2);
appendFileSync(join(dir, 'claude.calls'), [...argv, '<<end>>'].map((a) => `${a}\n`).join(''));

const LABELS = {
  local: 'Local config (private to you in this project)',
  project: 'Project config (shared via .mcp.json)',
  user: 'User config (available in all your projects)',
};
const PRIORITY = ['local', 'project', 'user'];

function exit(code, stdout = '', stderr = '') {
  process.stdout.write(stdout);
  process.stderr.write(stderr);
  process.exit(code);
}

/** The one Claude Code uses for a name: local, then project, then user. */
function effective(name) {
  return PRIORITY.map((scope) => state.servers.find((s) => s.name === name && s.scope === scope)).find(Boolean);
}

function endpoint(config) {
  if (config.type === 'http' || config.type === 'sse') return config.url;
  return `${config.command} ${(config.args ?? []).join(' ')}`;
}

function status(name) {
  return state.status?.[name] ?? '✔ Connected';
}

function get(name) {
  if (state.getExit) exit(state.getExit, '', state.getStderr ?? '');
  const s = effective(name);
  if (!s) {
    const names = [...new Set(state.servers.map((x) => x.name))];
    const tail = names.length === 0 ? 'Run `claude mcp add` to add one.' : `Configured servers: ${names.join(', ')}`;
    exit(1, '', `No MCP server named "${name}". ${tail}\n`);
  }
  const c = s.config;
  const lines = [`${name}:`, `  Scope: ${LABELS[s.scope]}`, `  Status: ${status(name)}`];
  if (c.type === 'http' || c.type === 'sse') lines.push(`  Type: ${c.type}`, `  URL: ${c.url}`);
  else if (c.type === 'stdio') {
    lines.push('  Type: stdio', `  Command: ${c.command}`, `  Args: ${(c.args ?? []).join(' ')}`.trimEnd());
    if (c.env) lines.push('  Environment:', ...Object.entries(c.env).map(([k, v]) => `    ${k}=${v}`));
  }
  lines.push('', `To remove this server, run: claude mcp remove ${name} -s ${s.scope}`);
  exit(0, `${lines.join('\n')}\n`);
}

function list() {
  if (state.mcpList !== undefined) exit(state.mcpListExit ?? 0, state.mcpList);
  if (state.servers.length === 0) exit(0, 'No MCP servers configured. Use `claude mcp add` to add a server.\n');
  const names = [...new Set(state.servers.map((s) => s.name))];
  const lines = ['Checking MCP server health…', ''];
  for (const name of names) {
    const s = effective(name);
    const shown = s.config.type === 'http' ? `${s.config.url} (HTTP)` : s.config.type === 'sse' ? `${s.config.url} (SSE)` : endpoint(s.config);
    lines.push(`${name}: ${shown} - ${status(name)}`);
  }
  const conflicts = [];
  for (const name of names) {
    const all = ['user', 'project', 'local'].map((scope) => state.servers.find((s) => s.name === name && s.scope === scope)).filter(Boolean);
    if (new Set(all.map((s) => endpoint(s.config))).size < 2) continue;
    conflicts.push(
      `├ Server "${name}" is defined in multiple scopes with different endpoints: ${all.map((s) => `${s.scope} (${endpoint(s.config)})`).join(', ')}. OAuth tokens are stored per endpoint, so authenticating in one context will not carry over.`,
      `└ Keep the correct endpoint and remove the others: ${all.map((s) => `\`claude mcp remove ${name} -s ${s.scope}\``).join(' or ')}`,
    );
  }
  if (conflicts.length > 0) {
    lines.push('', 'MCP config diagnostics ⚠', '', 'For help configuring MCP servers, see: https://code.claude.com/docs/en/mcp', '', '[Conflicting scopes]', ...conflicts);
  }
  exit(state.mcpListExit ?? 0, `${lines.join('\n')}\n`);
}

function remove(name, scope) {
  if (state.removeExit) exit(state.removeExit, '', state.removeStderr ?? '');
  const at = state.servers.findIndex((s) => s.name === name && s.scope === scope);
  if (at === -1) exit(1, '', `No MCP server named "${name}" in ${scope === 'project' ? '.mcp.json' : `${scope} scope`}\n`);
  state.servers.splice(at, 1);
  writeFileSync(statePath, JSON.stringify(state));
  exit(0, `Removed MCP server ${name} from ${scope} config\nFile modified: ${dir}/.claude.json\n`);
}

function addJson(name, json, scope) {
  if (state.exitCode) exit(state.exitCode, state.stdout ?? '', state.stderr ?? '');
  if (state.servers.some((s) => s.name === name && s.scope === scope)) exit(1, '', `MCP server ${name} already exists in ${scope} config\n`);
  const config = JSON.parse(json);
  state.servers.push({ name, scope, config });
  writeFileSync(statePath, JSON.stringify(state));
  exit(0, `Added ${config.type ?? 'stdio'} MCP server ${name} to ${scope} config\nFile modified: ${dir}/.claude.json\n`);
}

const [group, sub, name, ...rest] = argv;
const option = (short, long) => {
  const at = rest.findIndex((a) => a === short || a === long);
  return at === -1 ? 'local' : rest[at + 1];
};
if (group === 'mcp' && sub === 'get') get(name);
if (group === 'mcp' && sub === 'list') list();
if (group === 'mcp' && sub === 'remove') remove(name, option('-s', '--scope'));
if (group === 'mcp' && sub === 'add-json') addJson(name, rest[0], option('-s', '--scope'));
exit(state.exitCode ?? 0, state.stdout ?? '', state.stderr ?? '');
