import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run, setupEnv, type Env } from './cli-harness.js';

let env: Env;

beforeEach(async () => {
  env = setupEnv();
  for (const name of ['api', 'web']) {
    const r = await run('add', name, env.project(name), '-d', `${name} agent`);
    expect(r.code, r.all).toBe(0);
  }
});

afterEach(() => {
  env.cleanup();
});

async function addShop(): Promise<void> {
  const r = await run('group', 'add', 'shop', '-d', 'The shop', '--shared-context', 'Prices are in EUR.', '--member', 'web', '--member', 'api');
  expect(r.code, r.all).toBe(0);
}

describe('group (TestGroup)', () => {
  it('add, then list shows members in order and shared context: yes', async () => {
    const r = await run('group', 'add', 'shop', '-d', 'The shop', '--shared-context', 'Prices are in EUR.', '--member', 'web', '--member', 'api');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Added group 'shop' (2 member(s)).");
    expect(env.config().groups!['shop']).toEqual({
      description: 'The shop',
      shared_context: 'Prices are in EUR.',
      members: [
        { agent: 'web', use_for: '' },
        { agent: 'api', use_for: '' },
      ],
    });
    const list = await run('group', 'list');
    expect(list.code).toBe(0);
    expect(list.stdout).toContain('  shop (2 member(s))');
    expect(list.stdout).toContain('    desc: The shop');
    expect(list.stdout).toContain('    members: web, api');
    expect(list.stdout).toContain('    shared context: yes');
  });

  it('a duplicate group is refused (exit 1)', async () => {
    await addShop();
    const r = await run('group', 'add', 'shop', '--member', 'api');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Error: Group 'shop' already exists. Use 'agent-dispatch group remove shop' first.");
  });

  it('an unknown member is refused and nothing is persisted', async () => {
    const before = readFileSync(env.configPath, 'utf8');
    const r = await run('group', 'add', 'shop', '--member', 'api', '--member', 'ghost');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Error: agent 'ghost' not found. Add it first ('agent-dispatch add') or check the name.");
    expect(readFileSync(env.configPath, 'utf8')).toBe(before);
    expect(env.config()).not.toHaveProperty('groups');
  });

  it('an invalid group name (after --) is refused', async () => {
    const r = await run('group', 'add', '--', '-bad');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Invalid agent name: '-bad'");
    expect(env.config()).not.toHaveProperty('groups');
  });

  it('an invalid member name is refused', async () => {
    const r = await run('group', 'add', 'shop', '--member', 'no such');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Invalid agent name: 'no such'");
  });

  it('an empty group is added with a warning', async () => {
    const r = await run('group', 'add', 'later');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Added group 'later' (0 member(s)).");
    expect(r.stdout).toContain('Warning: group has no members yet. Recreate with --member, or add agents + use_for hints by editing agents.yaml.');
    expect(env.config().groups!['later']).toEqual({ description: '', shared_context: '' });
  });

  it('inspect shows description, shared context and members', async () => {
    await addShop();
    const r = await run('group', 'inspect', 'shop');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('  description: The shop');
    expect(r.stdout).toContain('  shared_context:\n    Prices are in EUR.');
    expect(r.stdout).toContain('  members (2):\n    - web\n    - api');
  });

  it('inspect flags unknown members and shows use_for hints', async () => {
    const config = env.config();
    env.writeConfig({ ...config, groups: { shop: { members: [{ agent: 'api', use_for: 'orders' }, { agent: 'gone' }] } } });
    const r = await run('group', 'inspect', 'shop');
    expect(r.stdout).toContain('    - api — orders');
    expect(r.stdout).toContain('    - gone (unknown)');
    const list = await run('group', 'list');
    expect(list.stdout).toContain('    members: api, gone(unknown)');
    expect(list.stdout).toContain('    shared context: no');
  });

  it('inspect of a missing group: not found (exit 1)', async () => {
    const r = await run('group', 'inspect', 'nope');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Error: Group 'nope' not found. Run 'agent-dispatch group list' to see groups.");
  });

  it('update changes the shared context', async () => {
    await addShop();
    const r = await run('group', 'update', 'shop', '--shared-context', 'Prices are in USD.');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Updated group 'shop': shared_context");
    expect(env.config().groups!['shop']).toMatchObject({ description: 'The shop', shared_context: 'Prices are in USD.' });
  });

  it('update with "" clears', async () => {
    await addShop();
    const r = await run('group', 'update', 'shop', '--shared-context', '', '-d', '');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Updated group 'shop': description, shared_context");
    expect(env.config().groups!['shop']).toMatchObject({ description: '', shared_context: '' });
    expect((await run('group', 'list')).stdout).toContain('    shared context: no');
  });

  it('update with no option: nothing to update (exit 1)', async () => {
    await addShop();
    const r = await run('group', 'update', 'shop');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Nothing to update. Pass --description and/or --shared-context.');
  });

  it('update of a missing group: not found (exit 1)', async () => {
    const r = await run('group', 'update', 'nope', '-d', 'x');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Group 'nope' not found.");
  });

  it('remove deletes the group and keeps its agents', async () => {
    await addShop();
    const r = await run('group', 'remove', 'shop');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Removed group 'shop'.");
    expect(env.config()).not.toHaveProperty('groups');
    expect(Object.keys(env.config().agents)).toEqual(['api', 'web']);
  });

  it('remove of a missing group: not found (exit 1)', async () => {
    const r = await run('group', 'remove', 'nope');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Error: Group 'nope' not found.");
  });

  it('list with no groups says how to add one', async () => {
    const r = await run('group', 'list');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('No groups configured. Run: agent-dispatch group add <name> --member <agent>');
  });

  it('removing an agent leaves the group, which then lists it as unknown', async () => {
    await addShop();
    expect((await run('remove', 'api')).code).toBe(0);
    const r = await run('group', 'list');
    expect(r.stdout).toContain('    members: web, api(unknown)');
  });

  it('an unknown subcommand is a usage error (exit 2)', async () => {
    const r = await run('group', 'rename', 'shop');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage: agent-dispatch group add|list|inspect|update|remove');
    expect((await run('group')).code).toBe(2);
  });
});
