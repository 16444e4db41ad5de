import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cp1251Config, run, setupEnv, STACK_LINE, type Env } from './cli-harness.js';

let env: Env;

beforeEach(() => {
  env = setupEnv();
});

afterEach(() => {
  env.cleanup();
});

/** `add NAME DIR -d desc` for tests that only need an agent to exist. */
async function addAgent(name: string, ...extra: string[]): Promise<string> {
  const dir = env.project(name);
  const r = await run('add', name, dir, '-d', `${name} agent`, ...extra);
  expect(r.code, r.all).toBe(0);
  return dir;
}

describe('add (TestAdd)', () => {
  it('adds an agent and says so', async () => {
    const dir = env.project('api');
    const r = await run('add', 'api', dir, '-d', 'The API service');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Added agent 'api' -> ${dir}`);
    expect(env.config().agents['api']).toMatchObject({ directory: dir, description: 'The API service', timeout: 300, policy: 'default' });
  });

  it('persists permission mode and allowed tools', async () => {
    await addAgent('api', '--permission-mode', 'bypassPermissions', '--allowed-tools', 'Bash, Read,,');
    expect(env.config().agents['api']).toMatchObject({ permission_mode: 'bypassPermissions', allowed_tools: ['Bash', 'Read'] });
    expect(env.config().agents['api']).not.toHaveProperty('disallowed_tools');
  });

  it('persists --max-budget', async () => {
    await addAgent('api', '--max-budget', '1.5');
    expect(env.config().agents['api']!['max_budget_usd']).toBe(1.5);
  });

  it('accepts --max-budget-usd as an alias (TestMaxBudgetUsdAlias)', async () => {
    await addAgent('api', '--max-budget-usd', '2.25');
    expect(env.config().agents['api']!['max_budget_usd']).toBe(2.25);
  });

  it('persists capabilities and risky capabilities', async () => {
    await addAgent('ops', '--capabilities', 'docker_logs, db_read', '--risky-capabilities', 'restart_services');
    expect(env.config().agents['ops']).toMatchObject({ capabilities: ['docker_logs', 'db_read'], risky_capabilities: ['restart_services'] });
  });

  it('an empty tools CSV means inherit (no key), an empty capabilities CSV means none', async () => {
    await addAgent('api', '--allowed-tools', '', '--capabilities', '');
    const agent = env.config().agents['api']!;
    expect(agent).not.toHaveProperty('allowed_tools');
    expect(agent).not.toHaveProperty('capabilities');
  });

  it('a name that looks like an option is a usage error (exit 2), nothing written', async () => {
    const r = await run('add', '-bad', env.project('p'));
    expect(r.code).toBe(2);
    expect(env.configExists()).toBe(false);
  });

  it('an invalid name after -- is rejected with the original message (exit 1)', async () => {
    const r = await run('add', '--', '-bad', env.project('p'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "Error: Invalid agent name: '-bad'. Use only letters, digits, hyphens, and underscores. Must start with a letter or digit.",
    );
    expect(env.configExists()).toBe(false);
  });

  it('rejects names with dots or spaces', async () => {
    for (const name of ['bad.name', 'with space', '_lead']) {
      const r = await run('add', name, env.project('p'));
      expect(r.code, name).toBe(1);
      expect(r.stderr).toContain('Invalid agent name');
    }
  });

  it('rejects a duplicate and leaves the first agent as it was', async () => {
    const dir = await addAgent('api');
    const r = await run('add', 'api', env.project('other'), '-d', 'second');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Agent 'api' already exists");
    expect(r.stderr).toContain('agent-dispatch remove api');
    expect(env.config().agents['api']).toMatchObject({ directory: dir, description: 'api agent' });
  });

  it('auto-describes when -d is not given', async () => {
    const dir = env.project('svc', { 'CLAUDE.md': '# Service\nHandles billing webhooks.\n', 'package.json': '{"description": "Billing service"}' });
    const r = await run('add', 'svc', dir);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Auto-generated description: Handles billing webhooks. | Billing service | Stack: Node.js');
    expect(env.config().agents['svc']!['description']).toBe('Handles billing webhooks. | Billing service | Stack: Node.js');
  });

  it('warns about an unknown permission mode but still saves it', async () => {
    const r = await run('add', 'api', env.project('api'), '-d', 'x', '--permission-mode', 'yolo');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Warning: Unknown permission_mode: 'yolo'\. Known values: .*bypassPermissions.*default.*plan/);
    expect(env.config().agents['api']!['permission_mode']).toBe('yolo');
  });

  it('a missing directory is refused, nothing written', async () => {
    const r = await run('add', 'api', `${env.root}/nope`);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`Directory does not exist: ${env.root}/nope`);
    expect(env.configExists()).toBe(false);
  });

  it('a known --policy is saved; an unknown one is refused', async () => {
    await addAgent('ro', '--policy', 'readonly-inspector');
    expect(env.config().agents['ro']!['policy']).toBe('readonly-inspector');
    const r = await run('add', 'x', env.project('x'), '-d', 'x', '--policy', 'no-such-policy');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Policy 'no-such-policy' not found");
    expect(env.config().agents).not.toHaveProperty('x');
  });
});

describe('timeout and budget guards (TestTimeoutGuards, TestAddBudgetGuard)', () => {
  it.each([
    ['--timeout', '-5', '--timeout must be a positive number of seconds (got -5).'],
    ['--timeout', '0', '--timeout must be a positive number of seconds (got 0).'],
    ['--max-budget', '-1', '--max-budget must be >= 0 (got -1); use 0 to clear the limit.'],
    ['--max-budget-usd', '-0.5', '--max-budget must be >= 0 (got -0.5); use 0 to clear the limit.'],
  ])('add %s %s is rejected (exit 1) and no config is written', async (flag, value, message) => {
    const r = await run('add', 'api', env.project('api'), '-d', 'x', flag, value);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Error: ${message}`);
    expect(r.all).not.toMatch(STACK_LINE);
    expect(env.configExists()).toBe(false);
  });

  it('the --flag=-N spelling is checked the same way', async () => {
    const r = await run('add', 'api', env.project('api'), '--timeout=-5');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--timeout must be a positive number of seconds (got -5).');
  });

  it('update --timeout -5 is rejected and the timeout stays 300', async () => {
    await addAgent('api');
    const r = await run('update', 'api', '--timeout', '-5');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--timeout must be a positive number of seconds (got -5).');
    expect(env.config().agents['api']!['timeout']).toBe(300);
  });

  it('update --max-budget -1 is rejected and no budget is set', async () => {
    await addAgent('api');
    const r = await run('update', 'api', '--max-budget', '-1');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--max-budget must be >= 0 (got -1); use 0 to clear the limit.');
    expect(env.config().agents['api']).not.toHaveProperty('max_budget_usd');
  });

  it('a non-numeric timeout is a usage error (exit 2)', async () => {
    const r = await run('add', 'api', env.project('api'), '--timeout', 'soon');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--timeout must be a whole number (got 'soon')");
    expect(env.configExists()).toBe(false);
  });
});

describe('remove (TestRemove)', () => {
  it('removes an agent', async () => {
    await addAgent('api');
    await addAgent('web');
    const r = await run('remove', 'api');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Removed agent 'api'.");
    expect(Object.keys(env.config().agents)).toEqual(['web']);
  });

  it('a missing agent is not found (exit 1)', async () => {
    const r = await run('remove', 'ghost');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Agent 'ghost' not found.");
  });
});

describe('list (TestList)', () => {
  it('says how to add an agent when there are none (exit 0)', async () => {
    const r = await run('list');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('No agents configured. Run: agent-dispatch add <name> <directory>');
  });

  it('shows name, health, directory and description', async () => {
    const dir = await addAgent('api');
    const r = await run('list');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('  api [OK]');
    expect(r.stdout).toContain(`    dir:  ${dir}`);
    expect(r.stdout).toContain('    desc: api agent');
    expect(r.stdout).toContain('    policy: default');
    expect(r.stdout).not.toContain('config:');
  });

  it('shows timeout, model and budget extras', async () => {
    await addAgent('api', '--timeout', '600', '--model', 'sonnet', '--max-budget', '2');
    const r = await run('list');
    expect(r.stdout).toContain('    config: timeout=600s, model=sonnet, budget=$2.0');
  });

  it('shows permission mode and tools', async () => {
    await addAgent('api', '--permission-mode', 'plan', '--allowed-tools', 'Bash,Read', '--disallowed-tools', 'Write');
    const r = await run('list');
    expect(r.stdout).toContain('    permission_mode: plan');
    expect(r.stdout).toContain('    allowed_tools: Bash, Read');
    expect(r.stdout).toContain('    disallowed_tools: Write');
  });

  it('shows capabilities', async () => {
    await addAgent('ops', '--capabilities', 'docker_logs,db_read', '--risky-capabilities', 'restart_services');
    const r = await run('list');
    expect(r.stdout).toContain('    capabilities: docker_logs, db_read');
    expect(r.stdout).toContain('    risky_capabilities: restart_services');
  });

  it('shows (none) for an explicit empty tool list and hides inherited ones', async () => {
    env.writeConfig({
      agents: {
        explicit: { directory: env.project('e'), allowed_tools: [], disallowed_tools: [] },
        inherit: { directory: env.project('i') },
      },
    });
    const r = await run('list');
    expect(r.code).toBe(0);
    const [explicit, inherit] = r.stdout.split('  inherit [');
    expect(explicit).toContain('    allowed_tools: (none)');
    expect(explicit).toContain('    disallowed_tools: (none)');
    expect(inherit).not.toContain('allowed_tools');
  });

  it('marks a missing directory NOT FOUND and an unstatable one UNREADABLE, and still exits 0', async () => {
    env.writeConfig({ agents: { gone: { directory: `${env.root}/gone` }, loop: { directory: env.loopPath() } } });
    const r = await run('list');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('  gone [NOT FOUND]');
    expect(r.stdout).toContain('  loop [UNREADABLE]');
  });
});

describe('update (TestUpdate)', () => {
  it('updates the permission mode', async () => {
    await addAgent('api');
    const r = await run('update', 'api', '--permission-mode', 'plan');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Updated agent 'api': permission_mode");
    expect(env.config().agents['api']!['permission_mode']).toBe('plan');
  });

  it.each(['none', 'NONE', '', '  '])('permission mode %j clears it', async (value) => {
    await addAgent('api', '--permission-mode', 'plan');
    const r = await run('update', 'api', '--permission-mode', value);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('Warning');
    expect(env.config().agents['api']).not.toHaveProperty('permission_mode');
  });

  it('a missing agent is not found (exit 1)', async () => {
    const r = await run('update', 'ghost', '--model', 'haiku');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Error: Agent 'ghost' not found. Run 'agent-dispatch list' to see agents.");
  });

  it('no option: nothing to update (exit 1), config untouched', async () => {
    await addAgent('api');
    const before = readFileSync(env.configPath, 'utf8');
    const r = await run('update', 'api');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Nothing to update. Pass at least one option (see --help).');
    expect(readFileSync(env.configPath, 'utf8')).toBe(before);
  });

  it('warns about an unknown permission mode (exit 0)', async () => {
    await addAgent('api');
    const r = await run('update', 'api', '--permission-mode', 'yolo');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Warning: Unknown permission_mode: 'yolo'");
    expect(env.config().agents['api']!['permission_mode']).toBe('yolo');
  });

  it('sets a budget, then 0 clears it', async () => {
    await addAgent('api');
    expect((await run('update', 'api', '--max-budget', '2.5')).code).toBe(0);
    expect(env.config().agents['api']!['max_budget_usd']).toBe(2.5);
    const r = await run('update', 'api', '--max-budget', '0');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Updated agent 'api': max_budget_usd");
    expect(env.config().agents['api']).not.toHaveProperty('max_budget_usd');
  });

  it('accepts --max-budget-usd (the flag the budget hint prints)', async () => {
    await addAgent('api');
    expect((await run('update', 'api', '--max-budget-usd', '2.0')).code).toBe(0);
    expect(env.config().agents['api']!['max_budget_usd']).toBe(2);
  });

  it('sets capabilities, then none clears them to []', async () => {
    await addAgent('ops');
    await run('update', 'ops', '--capabilities', 'docker_logs,db_read', '--risky-capabilities', 'restart_services');
    expect(env.config().agents['ops']).toMatchObject({ capabilities: ['docker_logs', 'db_read'], risky_capabilities: ['restart_services'] });
    const r = await run('update', 'ops', '--capabilities', 'none', '--risky-capabilities', '');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Updated agent 'ops': capabilities, risky_capabilities");
    expect(env.config().agents['ops']).not.toHaveProperty('capabilities');
    expect(env.config().agents['ops']).not.toHaveProperty('risky_capabilities');
  });

  it('--model "" clears the model', async () => {
    await addAgent('api', '--model', 'sonnet');
    const r = await run('update', 'api', '--model', '');
    expect(r.code).toBe(0);
    expect(env.config().agents['api']).not.toHaveProperty('model');
  });

  it('--allowed-tools "" clears to inherit (not an explicit empty list)', async () => {
    await addAgent('api', '--allowed-tools', 'Read', '--disallowed-tools', 'Write');
    const r = await run('update', 'api', '--allowed-tools', '', '--disallowed-tools', 'none');
    expect(r.code).toBe(0);
    expect(env.config().agents['api']).not.toHaveProperty('allowed_tools');
    expect(env.config().agents['api']).not.toHaveProperty('disallowed_tools');
  });

  it('updates several fields at once, named in the message', async () => {
    await addAgent('api');
    const r = await run('update', 'api', '-d', 'new text', '--timeout', '900', '--model', 'haiku', '--allowed-tools', 'Read,Grep');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Updated agent 'api': description, timeout, model, allowed_tools");
    expect(env.config().agents['api']).toMatchObject({ description: 'new text', timeout: 900, model: 'haiku', allowed_tools: ['Read', 'Grep'] });
  });
});

describe('describe (TestDescribe)', () => {
  it('shows every configured field', async () => {
    const dir = await addAgent(
      'api',
      '--timeout', '600',
      '--model', 'sonnet',
      '--max-budget', '1.5',
      '--permission-mode', 'bypassPermissions',
      '--allowed-tools', 'Bash,Read',
    );
    const r = await run('describe', 'api');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('api [OK]');
    expect(r.stdout).toContain(`  directory:        ${dir}`);
    expect(r.stdout).toContain('  description:      api agent');
    expect(r.stdout).toContain('  timeout:          600s');
    expect(r.stdout).toContain('  model:            sonnet');
    expect(r.stdout).toContain('  max_budget_usd:   $1.5');
    expect(r.stdout).toContain('  permission_mode:  bypassPermissions');
    expect(r.stdout).toContain('  allowed_tools:    Bash, Read');
    expect(r.stdout).toContain('  policy:           default');
  });

  it('a missing agent is not found (exit 1)', async () => {
    const r = await run('describe', 'ghost');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Agent 'ghost' not found. Run 'agent-dispatch list' to see agents.");
  });

  it('distinguishes inherit from an explicit empty override', async () => {
    env.writeConfig({ agents: { a: { directory: env.project('a'), allowed_tools: [] } } });
    const r = await run('describe', 'a');
    expect(r.stdout).toContain('  allowed_tools:    (none — explicit override)');
    expect(r.stdout).toContain('  disallowed_tools: (inherit defaults)');
  });

  it('a missing directory shows NOT FOUND and exits 0', async () => {
    env.writeConfig({ agents: { gone: { directory: `${env.root}/gone` } } });
    const r = await run('describe', 'gone');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('gone [NOT FOUND]');
    expect(r.stdout).not.toContain('project files');
  });

  it('lists the project files that exist', async () => {
    const dir = env.project('p', { 'CLAUDE.md': '# p\n', 'README.md': '# p\n', '.mcp.json': '{}' });
    env.writeConfig({ agents: { p: { directory: dir } } });
    const r = await run('describe', 'p');
    expect(r.stdout).toContain('  project files:    CLAUDE.md, .mcp.json, README.md');
  });

  it('shows capabilities and risky capabilities', async () => {
    await addAgent('ops', '--capabilities', 'docker_logs', '--risky-capabilities', 'restart_services');
    const r = await run('describe', 'ops');
    expect(r.stdout).toContain('capabilities:     docker_logs');
    expect(r.stdout).toContain('risky_caps:       restart_services');
  });
});

describe('malformed config (TestListMalformedConfig, TestBrokenConfigMessages, TestNonUtf8Config)', () => {
  const cases: [string, () => string | Buffer, string][] = [
    ['bad YAML', () => 'agents: [unclosed\n', 'is not valid YAML'],
    ['a bad schema', () => 'agents:\n  api:\n    directory: 123\n', 'has an invalid schema'],
    ['an unknown key', () => `agents:\n  api:\n    directory: /tmp\n    allowed_tool: [Read]\n`, 'has an invalid schema'],
    ['cp1251 bytes', () => cp1251Config('/tmp'), 'is not valid UTF-8'],
  ];

  it.each(cases)('%s: list exits 1 with a one-line message and no stack', async (_label, bytes, phrase) => {
    env.writeConfigText(bytes());
    const r = await run('list');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Error: Config at ${env.configPath} ${phrase}`);
    expect(r.all).not.toMatch(STACK_LINE);
    expect(r.all).not.toContain('Unexpected error');
  });

  it('names the offending key and suggests the right one', async () => {
    env.writeConfigText(cases[2]![1]());
    const r = await run('list');
    expect(r.stderr).toContain("agents.api.allowed_tool: unknown key; did you mean 'allowed_tools'?");
  });

  it('the UTF-8 message says to re-save the file as UTF-8', async () => {
    env.writeConfigText(cp1251Config('/tmp'));
    const r = await run('describe', 'ru');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('UTF-8');
    expect(r.stderr).toContain('Re-save the file as UTF-8');
  });

  it.each(cases)('%s: mutations refuse and leave the file byte-for-byte untouched', async (_label, bytes) => {
    env.writeConfigText(bytes());
    const before = readFileSync(env.configPath);
    for (const argv of [
      ['add', 'web', env.project('web'), '-d', 'x'],
      ['update', 'api', '--model', 'haiku'],
      ['remove', 'api'],
      ['group', 'add', 'g'],
      ['init', '--no-register'],
    ]) {
      const r = await run(...argv);
      if (argv[0] === 'init') expect(r.stdout, argv.join(' ')).toContain('Config already exists');
      else {
        expect(r.code, argv.join(' ')).toBe(1);
        expect(r.all).not.toMatch(STACK_LINE);
      }
      expect(readFileSync(env.configPath).equals(before), argv.join(' ')).toBe(true);
    }
  });
});

describe('usage errors', () => {
  it('an unknown option exits 2 and names the command', async () => {
    const r = await run('list', '--bogus');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Error: list: Unknown option '--bogus'");
    expect(r.stderr).toContain("Run 'agent-dispatch list --help'");
  });

  it('an unknown option on add exits 2 and writes nothing', async () => {
    const r = await run('add', 'api', env.project('api'), '--budget', '3');
    expect(r.code).toBe(2);
    expect(env.configExists()).toBe(false);
  });

  it('missing positionals exit 2 with a usage line', async () => {
    const r = await run('add', 'api');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage: agent-dispatch add NAME DIRECTORY');
  });

  it('an unknown command exits 2 and prints the usage', async () => {
    const r = await run('frobnicate');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Unknown command 'frobnicate'.");
    expect(r.stderr).toContain('usage: agent-dispatch <command> [options]');
  });

  it('no command prints the usage and exits 2; --help exits 0', async () => {
    expect((await run()).code).toBe(2);
    const help = await run('--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('policy check');
  });

  it('COMMAND --help prints the command summary and exits 0', async () => {
    const r = await run('add', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('agent-dispatch add:');
    expect(r.stdout).toContain('--max-budget-usd');
  });
});

describe('model and permission mode are validated at the door (the rule dispatch applies)', () => {
  const FLAG_MODEL = "model '-x' starts with '-' and would be interpreted as a command-line flag by the claude CLI.";

  it('add --model persists it; add --model=-x is refused with exit 1 and nothing written', async () => {
    await addAgent('api', '--model', 'sonnet');
    expect(env.config().agents['api']!['model']).toBe('sonnet');
    const r = await run('add', 'web', env.project('web'), '-d', 'w', '--model=-x');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Error: ${FLAG_MODEL}`);
    expect(env.config().agents['web']).toBeUndefined();
  });

  it('update --model=-x is refused (it used to be accepted, then refused at dispatch); the file is untouched', async () => {
    await addAgent('api', '--model', 'sonnet');
    const before = readFileSync(env.configPath);
    const r = await run('update', 'api', '--model=-x');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Error: ${FLAG_MODEL}`);
    expect(r.stderr).toContain("'none' clears it");
    expect(readFileSync(env.configPath)).toEqual(before);
  });

  it.each([
    ['--model', 'son net', 'model "son net" contains whitespace or a control character'],
    ['--model', 'sonnet\u0007', 'model "sonnet\\u0007" contains whitespace or a control character'],
    ['--permission-mode', '--dangerously-skip-permissions', "permission_mode '--dangerously-skip-permissions' starts with '-'"],
    ['--permission-mode', 'plan mode', 'permission_mode "plan mode" contains whitespace'],
  ])('update %s %j is refused', async (flag, value, message) => {
    await addAgent('api');
    const r = await run('update', 'api', `${flag}=${value}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
  });

  it("update --model none still clears it, and --model ' opus ' is trimmed", async () => {
    await addAgent('api', '--model', 'sonnet');
    expect((await run('update', 'api', '--model', ' opus ')).code).toBe(0);
    expect(env.config().agents['api']!['model']).toBe('opus');
    expect((await run('update', 'api', '--model', 'none')).code).toBe(0);
    expect(env.config().agents['api']).not.toHaveProperty('model');
  });
});
