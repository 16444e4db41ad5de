/**
 * The parser against what Claude Code 2.1.197 really prints (captured with a temporary HOME; the e2e test
 * test/e2e/init-registration.test.ts checks it against the live binary too).
 */
import { describe, expect, it } from 'vitest';
import { isNoSuchServer, parseMcpGet, parseMcpList, scopeOfLabel } from '../../src/cli/mcp-output.js';

const GET_ORIGINAL = `agent-dispatch:
  Scope: User config (available in all your projects)
  Status: ✘ Failed to connect
  Type: stdio
  Command: /tmp/adcap-sVyh/bin/agent-dispatch
  Args: serve

To remove this server, run: claude mcp remove agent-dispatch -s user
`;

const GET_OURS = `ours:
  Scope: User config (available in all your projects)
  Status: ✔ Connected
  Type: stdio
  Command: /usr/bin/node
  Args: --max-semi-space-size=4 /work/main/dist/cli.js serve

To remove this server, run: claude mcp remove ours -s user
`;

const GET_WITH_ENV = `pyold:
  Scope: User config (available in all your projects)
  Status: ✘ Failed to connect
  Type: stdio
  Command: python3
  Args: -m agent_dispatch serve
  Environment:
    AGENT_DISPATCH_CONFIG=/tmp/x.yaml

To remove this server, run: claude mcp remove pyold -s user
`;

const GET_LOCAL = `agent-dispatch:
  Scope: Local config (private to you in this project)
  Status: ✘ Failed to connect
  Type: stdio
  Command: /tmp/adreg-TwMU/bin/agent-dispatch
  Args: serve

To remove this server, run: claude mcp remove agent-dispatch -s local
`;

const GET_PENDING_PROJECT = `shared:
  Scope: Project config (shared via .mcp.json)
  Status: ⏸ Pending approval (run \`claude\` to approve)
  Type: stdio
  Command: python3
  Args: -m agent_dispatch serve

To remove this server, run: claude mcp remove shared -s project
`;

/** Registered without a "type": Claude Code prints neither Type nor Command. */
const GET_UNTYPED = `untyped:
  Scope: Local config (private to you in this project)
  Status: ✘ Failed to connect

To remove this server, run: claude mcp remove untyped -s local
`;

const GET_HTTP = `web:
  Scope: User config (available in all your projects)
  Status: ✘ Failed to connect
  Type: http
  URL: https://example.invalid/mcp
  Headers:
    X-Token: t

To remove this server, run: claude mcp remove web -s user
`;

const GET_SSE = `events:
  Scope: User config (available in all your projects)
  Status: ✘ Failed to connect
  Type: sse
  URL: https://example.invalid/sse

To remove this server, run: claude mcp remove events -s user
`;

const GET_SPACES = `sp:
  Scope: User config (available in all your projects)
  Status: ✘ Failed to connect
  Type: stdio
  Command: /tmp/a b/node
  Args: --x=1 /p q/cli.js serve
  Environment:
    A=1
    B=x y

To remove this server, run: claude mcp remove sp -s user
`;

const LIST = `Checking MCP server health…

agent-dispatch: /tmp/adcap-sVyh/bin/agent-dispatch serve - ✘ Failed to connect
ours: /usr/bin/node --max-semi-space-size=4 /work/main/dist/cli.js serve - ✔ Connected
pyold: python3 -m agent_dispatch serve - ✘ Failed to connect
web: https://example.invalid/mcp (HTTP) - ✘ Failed to connect
events: https://example.invalid/sse (SSE) - ✘ Failed to connect
untyped: /bin/true  - ✘ Failed to connect

MCP config diagnostics ⚠

For help configuring MCP servers, see: https://code.claude.com/docs/en/mcp

[Conflicting scopes]
├ Server "agent-dispatch" is defined in multiple scopes with different endpoints: user (/tmp/adcap-sVyh/bin/agent-dispatch serve), project (uvx agent-dispatch serve). OAuth tokens are stored per endpoint, so authenticating in one context will not carry over.
└ Keep the correct endpoint and remove the others: \`claude mcp remove agent-dispatch -s user\` or \`claude mcp remove agent-dispatch -s project\`

`;

const LIST_THREE_SCOPES = `Checking MCP server health…

agent-dispatch: /tmp/adreg-TwMU/bin/agent-dispatch serve - ✘ Failed to connect

MCP config diagnostics ⚠

For help configuring MCP servers, see: https://code.claude.com/docs/en/mcp

[Conflicting scopes]
├ Server "agent-dispatch" is defined in multiple scopes with different endpoints: user (/tmp/adreg-TwMU/bin/agent-dispatch serve), project (python3 -m agent_dispatch serve), local (/tmp/adreg-TwMU/bin/agent-dispatch serve). OAuth tokens are stored per endpoint, so authenticating in one context will not carry over.
└ Keep the correct endpoint and remove the others: \`claude mcp remove agent-dispatch -s user\` or \`claude mcp remove agent-dispatch -s project\` or \`claude mcp remove agent-dispatch -s local\`

`;

const LIST_PENDING_AND_SPACES = `Checking MCP server health…

sp: /opt/my tools/agent-dispatch serve - ✘ Failed to connect
shared: python3 -m agent_dispatch serve - ⏸ Pending approval (run \`claude\` to approve)
`;

const LIST_EMPTY = 'No MCP servers configured. Use `claude mcp add` to add a server.\n';

describe('parseMcpGet', () => {
  it('a stdio server: name, scope, status, command and args', () => {
    expect(parseMcpGet(GET_ORIGINAL)).toEqual({
      name: 'agent-dispatch',
      scope: 'user',
      status: '✘ Failed to connect',
      type: 'stdio',
      command: '/tmp/adcap-sVyh/bin/agent-dispatch',
      args: 'serve',
      url: undefined,
    });
    expect(parseMcpGet(GET_OURS)).toMatchObject({ name: 'ours', status: '✔ Connected', command: '/usr/bin/node', args: '--max-semi-space-size=4 /work/main/dist/cli.js serve' });
  });

  it('environment variables and headers are not fields', () => {
    expect(parseMcpGet(GET_WITH_ENV)).toMatchObject({ command: 'python3', args: '-m agent_dispatch serve' });
    expect(parseMcpGet(GET_SPACES)).toMatchObject({ command: '/tmp/a b/node', args: '--x=1 /p q/cli.js serve' });
    expect(parseMcpGet(GET_HTTP)).toMatchObject({ type: 'http', url: 'https://example.invalid/mcp', command: undefined, args: undefined });
  });

  it.each([
    [GET_ORIGINAL, 'user'],
    [GET_LOCAL, 'local'],
    [GET_PENDING_PROJECT, 'project'],
  ])('reads the scope from its label (%#)', (text, scope) => {
    expect(parseMcpGet(text)?.scope).toBe(scope);
  });

  it('a project server awaiting approval still shows what it runs', () => {
    expect(parseMcpGet(GET_PENDING_PROJECT)).toMatchObject({ status: '⏸ Pending approval (run `claude` to approve)', command: 'python3', args: '-m agent_dispatch serve' });
  });

  it('a registration without a type: no command (mcp list has it)', () => {
    expect(parseMcpGet(GET_UNTYPED)).toEqual({ name: 'untyped', scope: 'local', status: '✘ Failed to connect', type: undefined, command: undefined, args: undefined, url: undefined });
  });

  it('sse', () => {
    expect(parseMcpGet(GET_SSE)).toMatchObject({ type: 'sse', url: 'https://example.invalid/sse' });
  });

  it('a stdio server with no arguments: args empty (Claude Code prints "Args:" and nothing)', () => {
    expect(parseMcpGet('x:\n  Scope: User config (available in all your projects)\n  Status: ✔ Connected\n  Type: stdio\n  Command: /bin/x\n  Args: \n')).toMatchObject({ command: '/bin/x', args: '' });
    expect(parseMcpGet('x:\n  Scope: User config (available in all your projects)\n  Status: ✔ Connected\n  Type: stdio\n  Command: /bin/x\n  Args:\n')).toMatchObject({ args: '' });
  });

  it('anything else: undefined', () => {
    expect(parseMcpGet('')).toBeUndefined();
    expect(parseMcpGet(LIST_EMPTY)).toBeUndefined();
    expect(parseMcpGet('x:\n  Status: ✔ Connected\n')).toBeUndefined();
  });
});

describe('scopeOfLabel', () => {
  it.each([
    ['Local config (private to you in this project)', 'local'],
    ['Project config (shared via .mcp.json)', 'project'],
    ['User config (available in all your projects)', 'user'],
    ['Dynamic config (from command line)', 'dynamic'],
    ['Enterprise config (managed by your organization)', 'enterprise'],
    ['claude.ai config', 'claudeai'],
    ['Agent config (from agent frontmatter)', 'agent'],
    ['Something new', 'Something new'],
  ])('%s → %s', (label, scope) => {
    expect(scopeOfLabel(label)).toBe(scope);
  });
});

describe('isNoSuchServer', () => {
  it('both wordings of "no such server"', () => {
    expect(isNoSuchServer('No MCP server named "agent-dispatch". Run `claude mcp add` to add one.')).toBe(true);
    expect(isNoSuchServer('No MCP server named "nope". Configured servers: agent-dispatch, events, ours, pyold, untyped, web')).toBe(true);
    expect(isNoSuchServer('Error: something else')).toBe(false);
  });
});

describe('parseMcpList', () => {
  it('one entry per server: stdio command lines, http and sse URLs, statuses', () => {
    expect(parseMcpList(LIST).entries).toEqual([
      { name: 'agent-dispatch', endpoint: '/tmp/adcap-sVyh/bin/agent-dispatch serve', transport: 'stdio', status: '✘ Failed to connect' },
      { name: 'ours', endpoint: '/usr/bin/node --max-semi-space-size=4 /work/main/dist/cli.js serve', transport: 'stdio', status: '✔ Connected' },
      { name: 'pyold', endpoint: 'python3 -m agent_dispatch serve', transport: 'stdio', status: '✘ Failed to connect' },
      { name: 'web', endpoint: 'https://example.invalid/mcp', transport: 'http', status: '✘ Failed to connect' },
      { name: 'events', endpoint: 'https://example.invalid/sse', transport: 'sse', status: '✘ Failed to connect' },
      { name: 'untyped', endpoint: '/bin/true', transport: 'stdio', status: '✘ Failed to connect' },
    ]);
  });

  it('the conflicting-scopes diagnostic: every scope and its endpoint', () => {
    expect(parseMcpList(LIST).conflicts).toEqual([
      {
        name: 'agent-dispatch',
        endpoints: [
          { scope: 'user', endpoint: '/tmp/adcap-sVyh/bin/agent-dispatch serve', transport: 'stdio' },
          { scope: 'project', endpoint: 'uvx agent-dispatch serve', transport: 'stdio' },
        ],
      },
    ]);
    expect(parseMcpList(LIST_THREE_SCOPES)).toEqual({
      entries: [{ name: 'agent-dispatch', endpoint: '/tmp/adreg-TwMU/bin/agent-dispatch serve', transport: 'stdio', status: '✘ Failed to connect' }],
      conflicts: [
        {
          name: 'agent-dispatch',
          endpoints: [
            { scope: 'user', endpoint: '/tmp/adreg-TwMU/bin/agent-dispatch serve', transport: 'stdio' },
            { scope: 'project', endpoint: 'python3 -m agent_dispatch serve', transport: 'stdio' },
            { scope: 'local', endpoint: '/tmp/adreg-TwMU/bin/agent-dispatch serve', transport: 'stdio' },
          ],
        },
      ],
    });
  });

  it('endpoints with parentheses, commas and URLs in a conflict', () => {
    const line = '├ Server "x" is defined in multiple scopes with different endpoints: user (sh -c (a), b), local (https://h.example/mcp). OAuth tokens are stored per endpoint, so authenticating in one context will not carry over.';
    expect(parseMcpList(line).conflicts[0]!.endpoints).toEqual([
      { scope: 'user', endpoint: 'sh -c (a), b', transport: 'stdio' },
      { scope: 'local', endpoint: 'https://h.example/mcp', transport: 'http' },
    ]);
  });

  it('a pending project server and a path with spaces', () => {
    expect(parseMcpList(LIST_PENDING_AND_SPACES).entries).toEqual([
      { name: 'sp', endpoint: '/opt/my tools/agent-dispatch serve', transport: 'stdio', status: '✘ Failed to connect' },
      { name: 'shared', endpoint: 'python3 -m agent_dispatch serve', transport: 'stdio', status: '⏸ Pending approval (run `claude` to approve)' },
    ]);
  });

  it('an endpoint containing " - " ends at the last " - <status mark>"', () => {
    expect(parseMcpList('x: tool --flag - value - ✔ Connected\ny: z - ! Needs authentication\n').entries).toEqual([
      { name: 'x', endpoint: 'tool --flag - value', transport: 'stdio', status: '✔ Connected' },
      { name: 'y', endpoint: 'z', transport: 'stdio', status: '! Needs authentication' },
    ]);
  });

  it('a claude.ai connector (URL, no transport suffix) is not a command line', () => {
    expect(parseMcpList('claude.ai Gmail: https://gmail.mcp.claude.com/mcp - ✔ Connected\n').entries).toEqual([
      { name: 'claude.ai Gmail', endpoint: 'https://gmail.mcp.claude.com/mcp', transport: 'http', status: '✔ Connected' },
    ]);
  });

  it('nothing configured, the diagnostics text and junk: no entries', () => {
    expect(parseMcpList(LIST_EMPTY)).toEqual({ entries: [], conflicts: [] });
    expect(parseMcpList('For help configuring MCP servers, see: https://code.claude.com/docs/en/mcp\n[Conflicting scopes]\n')).toEqual({ entries: [], conflicts: [] });
    expect(parseMcpList('')).toEqual({ entries: [], conflicts: [] });
  });
});
