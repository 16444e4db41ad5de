/** The CLI (the local user on the service host) grants agents to HTTP users: add/update --users. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run, setupEnv, type Env } from './cli-harness.js';

let env: Env;

beforeEach(() => {
  env = setupEnv();
});

afterEach(() => {
  env.cleanup();
});

describe('--users', () => {
  it('add --users grants the agent; update --users replaces the list; none removes the key', async () => {
    const dir = env.project('api');
    expect((await run('add', 'api', dir, '-d', 'api', '--users', 'alice, bob')).code).toBe(0);
    expect(env.config().agents['api']!['users']).toEqual(['alice', 'bob']);
    const updated = await run('update', 'api', '--users', 'carol');
    expect(updated.stdout).toContain("Updated agent 'api': users");
    expect(env.config().agents['api']!['users']).toEqual(['carol']);
    expect((await run('update', 'api', '--users', 'none')).code).toBe(0);
    expect(env.config().agents['api']).not.toHaveProperty('users');
  });

  it('other updates keep the users', async () => {
    await run('add', 'api', env.project('api'), '-d', 'api', '--users', 'alice');
    expect((await run('update', 'api', '--description', 'changed')).code).toBe(0);
    expect(env.config().agents['api']).toMatchObject({ description: 'changed', users: ['alice'] });
  });

  it('a user name outside the name rule is refused and nothing is written', async () => {
    await run('add', 'api', env.project('api'), '-d', 'api');
    const before = env.config();
    const r = await run('update', 'api', '--users', 'al ice');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("Invalid user name: 'al ice'");
    expect(env.config()).toEqual(before);
  });
});
