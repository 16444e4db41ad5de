import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configYaml, startHarness, type Harness } from './mcp-harness.js';

let h: Harness;

beforeEach(async () => {
  h = await startHarness();
});

afterEach(async () => {
  await h.close();
});

function groupsConfig(extraAgents: Record<string, Record<string, unknown>> = {}, members?: { agent: string; use_for: string }[]): string {
  return configYaml({
    agents: {
      api: { directory: h.project('api'), description: 'Payments API' },
      web: { directory: h.project('web'), description: '' },
      ...extraAgents,
    },
    groups: {
      backend: {
        description: 'Backend team',
        shared_context: 'Staging DB is read-only.\nUse the EU region.',
        members: members ?? [
          { agent: 'api', use_for: 'payments questions' },
          { agent: 'web', use_for: '' },
          { agent: 'ghost', use_for: 'was removed' },
        ],
      },
      empty: { description: '', shared_context: '   ', members: [] },
    },
  });
}

describe('list_groups (TestGroups)', () => {
  it('shape: shared_context_present, member_count, members with use_for and health', async () => {
    h.writeConfig(groupsConfig());
    const { json, isError } = await h.call('list_groups');
    expect(isError).toBe(false);
    expect(json).toEqual([
      {
        name: 'backend',
        description: 'Backend team',
        shared_context_present: true,
        member_count: 3,
        members: [
          { agent: 'api', use_for: 'payments questions', healthy: true },
          { agent: 'web', healthy: true },
          { agent: 'ghost', use_for: 'was removed', unknown: true },
        ],
      },
      { name: 'empty', description: '', shared_context_present: false, member_count: 0, members: [] },
    ]);
  });

  it('no groups → error envelope', async () => {
    h.writeConfig(configYaml({ agents: { api: { directory: h.project('api') } } }));
    const { json, isError } = await h.call('list_groups');
    expect(isError).toBe(true);
    expect(json).toEqual({ error: 'No groups configured. Create one: agent-dispatch group add <name>', hint: expect.stringContaining('list_agents') });
  });

  it('no config file at all → the same envelope', async () => {
    const { json, isError } = await h.call('list_groups');
    expect(isError).toBe(true);
    expect(json.error).toContain('No groups configured');
  });

  it('flags an unknown member without touching the agents', async () => {
    h.writeConfig(groupsConfig());
    const [backend] = (await h.call('list_groups')).json;
    const ghost = backend.members.find((m: { agent: string }) => m.agent === 'ghost');
    expect(ghost).toEqual({ agent: 'ghost', use_for: 'was removed', unknown: true });
    expect(ghost).not.toHaveProperty('healthy');
  });
});

describe('inspect_group (TestGroups)', () => {
  it('returns the full shared_context; known members carry directory, description and health', async () => {
    h.writeConfig(groupsConfig());
    const { json, isError } = await h.call('inspect_group', { name: 'backend' });
    expect(isError).toBe(false);
    expect(json).toEqual({
      name: 'backend',
      description: 'Backend team',
      shared_context: 'Staging DB is read-only.\nUse the EU region.',
      member_count: 3,
      members: [
        { agent: 'api', use_for: 'payments questions', directory: join(h.root, 'projects', 'api'), description: 'Payments API', healthy: true },
        // An empty description is omitted.
        { agent: 'web', directory: join(h.root, 'projects', 'web'), healthy: true },
        { agent: 'ghost', use_for: 'was removed', unknown: true },
      ],
    });
  });

  it('an unknown member does not crash and has no directory key', async () => {
    h.writeConfig(groupsConfig({}, [{ agent: 'ghost', use_for: '' }]));
    const { json, isError } = await h.call('inspect_group', { name: 'backend' });
    expect(isError).toBe(false);
    expect(json.members).toEqual([{ agent: 'ghost', unknown: true }]);
  });

  it('unknown group → error envelope naming the available groups', async () => {
    h.writeConfig(groupsConfig());
    const { json, isError } = await h.call('inspect_group', { name: 'nope' });
    expect(isError).toBe(true);
    expect(json.error).toBe("Unknown group: 'nope'. Available: backend, empty");
  });

  it('unknown group with no groups at all → (none configured)', async () => {
    const { json, isError } = await h.call('inspect_group', { name: 'nope' });
    expect(isError).toBe(true);
    expect(json.error).toBe("Unknown group: 'nope'. Available: (none configured)");
  });
});

describe('group tools and an unreadable / missing member directory', () => {
  it('only the affected member reports "UNREADABLE" / false; the others stay healthy', async () => {
    const loop = join(h.root, 'loop');
    symlinkSync(loop, loop);
    h.writeConfig(
      groupsConfig({ bad: { directory: loop }, gone: { directory: join(h.root, 'gone') } }, [
        { agent: 'api', use_for: '' },
        { agent: 'bad', use_for: '' },
        { agent: 'gone', use_for: '' },
      ]),
    );
    const listed = (await h.call('list_groups')).json[0].members;
    expect(listed).toEqual([
      { agent: 'api', healthy: true },
      { agent: 'bad', healthy: 'UNREADABLE' },
      { agent: 'gone', healthy: false },
    ]);
    const inspected = (await h.call('inspect_group', { name: 'backend' })).json.members;
    expect(inspected.map((m: { healthy: unknown }) => m.healthy)).toEqual([true, 'UNREADABLE', false]);
  });
});

describe('cache_stats / cache_clear (TestCacheTools)', () => {
  it('stats on a fresh server: the documented shape, max_size 1000, ttl 300', async () => {
    const { json, isError } = await h.call('cache_stats');
    expect(isError).toBe(false);
    expect(json).toEqual({ size: 0, max_size: 1000, hits: 0, misses: 0, evictions: 0, hit_rate: 0, ttl: 300 });
  });

  it('stats reflect lookups and drop expired entries first', async () => {
    h.writeConfig(configYaml({ agents: {}, settings: { cache: { enabled: true, ttl: 0, max_size: 10 } } }));
    const cache = h.context.cacheFor(h.context.config())!;
    cache.put({ agent: 'a', task: 't' }, { success: true });
    // ttl 0: the entry expires as soon as any time has passed.
    await new Promise((r) => setTimeout(r, 5));
    const { json } = await h.call('cache_stats');
    expect(json).toMatchObject({ size: 0, max_size: 10, ttl: 0 });
  });

  it('hit_rate is rounded to 3 places', async () => {
    const cache = h.context.cacheFor(h.context.config())!;
    cache.put({ agent: 'a', task: 't' }, { success: true });
    cache.get({ agent: 'a', task: 't' });
    cache.get({ agent: 'a', task: 't' });
    cache.get({ agent: 'a', task: 'other' });
    expect((await h.call('cache_stats')).json).toMatchObject({ size: 1, hits: 2, misses: 1, hit_rate: 0.667 });
  });

  it('cache_clear reports how many entries it dropped and resets the counters', async () => {
    const cache = h.context.cacheFor(h.context.config())!;
    cache.put({ agent: 'a', task: 't' }, { success: true });
    cache.get({ agent: 'a', task: 't' });
    expect((await h.call('cache_clear')).json).toEqual({ cleared: 1 });
    expect((await h.call('cache_stats')).json).toMatchObject({ size: 0, hits: 0, misses: 0, evictions: 0 });
    expect((await h.call('cache_clear')).json).toEqual({ cleared: 0 });
  });

  it('disabled in settings → {enabled: false, message} from both tools', async () => {
    h.writeConfig(configYaml({ agents: {}, settings: { cache: { enabled: false } } }));
    const expected = { enabled: false, message: 'Cache is disabled in settings' };
    const stats = await h.call('cache_stats');
    expect(stats.isError).toBe(false);
    expect(stats.json).toEqual(expected);
    expect((await h.call('cache_clear')).json).toEqual(expected);
  });

  it('changing ttl or max_size in settings re-creates (empties) the cache', async () => {
    h.context.cacheFor(h.context.config())!.put({ agent: 'a', task: 't' }, { success: true });
    expect((await h.call('cache_stats')).json.size).toBe(1);
    h.writeConfig(configYaml({ agents: {}, settings: { cache: { ttl: 60 } } }));
    expect((await h.call('cache_stats')).json).toMatchObject({ size: 0, ttl: 60, max_size: 1000 });
  });
});
