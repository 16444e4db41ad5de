/**
 * src/core/access.ts, pure: who sees which agents and groups, the answer for a hidden agent (the same as for a
 * missing one), admin-only changes; and the users/admins keys of agents.yaml (validated, written back as they were).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { isAdmin, noAgentGranted, requireAdmin, requireVisibleAgent, visibleAgents, visibleConfig } from '../../src/core/access.js';
import { requireAgent } from '../../src/core/agents.js';
import { LOCAL_CALLER, userCaller } from '../../src/core/caller.js';
import { requireGroup } from '../../src/core/groups.js';
import { loadConfig } from '../../src/config/load.js';
import { renderConfig } from '../../src/config/save.js';
import { configSchema, type DispatchConfig } from '../../src/config/schema.js';
import { appErrorOf } from '../helpers/app-error.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ad-access-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const alice = userCaller('alice');
const bob = userCaller('bob');
const carol = userCaller('carol');
const dave = userCaller('dave');

/**
 * api: alice; web: bob; db: nobody directly, but group "data" grants its members (db, api) to bob; ops: carol is
 * an admin. Group "front" holds web and a member that is no agent; group "empty" has no members.
 */
function config(): DispatchConfig {
  return configSchema.parse({
    agents: {
      api: { directory: dir, users: ['alice'] },
      web: { directory: dir, users: ['bob'] },
      db: { directory: dir },
      ops: { directory: dir },
    },
    groups: {
      data: { members: [{ agent: 'db' }, { agent: 'api' }], users: ['bob'] },
      front: { shared_context: 'front-end', members: [{ agent: 'web' }, { agent: 'ghost' }] },
      empty: {},
    },
    settings: { admins: ['carol'] },
  });
}

describe('visibleAgents', () => {
  it('the local caller and admins see every agent, in config order', () => {
    expect(visibleAgents(config(), LOCAL_CALLER)).toEqual(['api', 'web', 'db', 'ops']);
    expect(visibleAgents(config(), carol)).toEqual(['api', 'web', 'db', 'ops']);
  });

  it('a user sees the agents granted to them directly and through groups, in config order', () => {
    expect(visibleAgents(config(), alice)).toEqual(['api']);
    expect(visibleAgents(config(), bob)).toEqual(['api', 'web', 'db']);
  });

  it('a user granted nothing sees nothing; a user name is matched exactly', () => {
    expect(visibleAgents(config(), dave)).toEqual([]);
    expect(visibleAgents(config(), userCaller('Alice'))).toEqual([]);
  });

  it('a group grant covers only configured agents (a member that is no agent grants nothing)', () => {
    const c = config();
    c.groups['front']!.users = ['dave'];
    expect(visibleAgents(c, dave)).toEqual(['web']);
  });
});

describe('isAdmin', () => {
  it('local and settings.admins are admins; other users are not, nor is anyone when admins is absent', () => {
    expect(isAdmin(config(), LOCAL_CALLER)).toBe(true);
    expect(isAdmin(config(), carol)).toBe(true);
    expect(isAdmin(config(), alice)).toBe(false);
    const none = configSchema.parse({ agents: {} });
    expect(isAdmin(none, carol)).toBe(false);
    expect(isAdmin(none, LOCAL_CALLER)).toBe(true);
  });
});

describe('visibleConfig', () => {
  it('is the config itself for the local caller and admins', () => {
    const c = config();
    expect(visibleConfig(c, LOCAL_CALLER)).toBe(c);
    expect(visibleConfig(c, carol)).toBe(c);
  });

  it("a user's view: their agents, and groups cut to their members; a group without one is gone", () => {
    const view = visibleConfig(config(), alice);
    expect(Object.keys(view.agents)).toEqual(['api']);
    expect(Object.keys(view.groups)).toEqual(['data']);
    expect(view.groups['data']!.members.map((m) => m.agent)).toEqual(['api']);
    const bobs = visibleConfig(config(), bob);
    expect(Object.keys(bobs.groups)).toEqual(['data', 'front']);
    expect(bobs.groups['front']).toMatchObject({ shared_context: 'front-end', members: [{ agent: 'web', use_for: '' }] });
    expect(bobs.settings).toEqual(config().settings);
  });

  it('never changes the config it was given', () => {
    const c = config();
    const before = structuredClone(c);
    visibleConfig(c, alice);
    expect(c).toEqual(before);
  });

  it("the view's records answer only for their own names (no Object.prototype members)", () => {
    const view = visibleConfig(config(), alice);
    expect('toString' in view.agents).toBe(false);
    expect('constructor' in view.groups).toBe(false);
  });

  it('a hidden group answers like a missing group', async () => {
    const hidden = await appErrorOf(() => requireGroup(visibleConfig(config(), alice), 'front'));
    const missing = await appErrorOf(() => requireGroup(visibleConfig(config(), alice), 'nosuch'));
    expect(hidden.code).toBe('GROUP_NOT_FOUND');
    expect(hidden.message).toBe("Unknown group: 'front'. Available: data");
    expect(missing.message).toBe("Unknown group: 'nosuch'. Available: data");
    expect(hidden.hint).toBe(missing.hint);
  });
});

describe('requireVisibleAgent', () => {
  it('returns the agent the caller may see', () => {
    const c = config();
    expect(requireVisibleAgent(c, 'api', alice)).toBe(c.agents['api']);
    expect(requireVisibleAgent(config(), 'db', bob).directory).toBe(dir);
    expect(requireVisibleAgent(config(), 'ops', carol).directory).toBe(dir);
  });

  it("a hidden agent answers exactly like a missing one, listing only the caller's agents", async () => {
    const hidden = await appErrorOf(() => requireVisibleAgent(config(), 'web', alice));
    const missing = await appErrorOf(() => requireVisibleAgent(config(), 'nosuch', alice));
    expect(hidden.code).toBe('AGENT_NOT_FOUND');
    expect(hidden.message).toBe("Unknown agent: 'web'. Available: api");
    expect(missing.message).toBe("Unknown agent: 'nosuch'. Available: api");
    expect(hidden.hint).toBe(missing.hint);
  });

  it('the local caller gets requireAgent unchanged', async () => {
    const local = await appErrorOf(() => requireVisibleAgent(config(), 'nosuch', LOCAL_CALLER));
    const plain = await appErrorOf(() => requireAgent(config(), 'nosuch'));
    expect(local.message).toBe(plain.message);
    expect(local.message).toBe("Unknown agent: 'nosuch'. Available: api, web, db, ops");
    expect(local.hint).toBe(plain.hint);
  });

  it('a user granted nothing: the same answer for every name, saying none are granted and whom to ask', async () => {
    const existing = await appErrorOf(() => requireVisibleAgent(config(), 'api', dave));
    const missing = await appErrorOf(() => requireVisibleAgent(config(), 'nosuch', dave));
    expect(existing.code).toBe('AGENT_NOT_FOUND');
    expect(existing.message).toBe("Unknown agent: 'api'. Available: (none granted to you)");
    expect(missing.message).toBe("Unknown agent: 'nosuch'. Available: (none granted to you)");
    expect(existing.hint).toBe(missing.hint);
    expect(existing.hint).toBe("Ask an admin of this dispatch service to add you ('dave') to agents.<name>.users (or groups.<name>.users) in agents.yaml.");
  });

  it('noAgentGranted: the list answer for a user without agents', () => {
    const error = noAgentGranted('dave');
    expect(error.code).toBe('AGENT_NOT_FOUND');
    expect(error.message).toBe("No agents are granted to you (user 'dave').");
  });
});

describe('requireAdmin', () => {
  it('passes the local caller and admins', () => {
    expect(() => requireAdmin(config(), LOCAL_CALLER, 'update_agent')).not.toThrow();
    expect(() => requireAdmin(config(), carol, 'update_agent')).not.toThrow();
  });

  it('refuses every other user with FORBIDDEN and a hint that an admin must do it', async () => {
    const error = await appErrorOf(() => requireAdmin(config(), bob, 'remove_agent'));
    expect(error.code).toBe('FORBIDDEN');
    expect(error.message).toBe("remove_agent is for admins of this dispatch service; user 'bob' is not one.");
    expect(error.hint).toContain('An admin must do this');
    expect(error.hint).toContain('CLI');
    expect(error.hint).toContain('settings.admins');
  });
});

describe('agents.yaml: users and admins', () => {
  const load = (data: unknown) => {
    const path = join(dir, 'agents.yaml');
    writeFileSync(path, typeof data === 'string' ? data : stringify(data));
    return loadConfig(path);
  };

  it('are read and written back unchanged', () => {
    const data = {
      agents: { api: { directory: dir, description: 'x', timeout: 300, policy: 'default', users: ['alice', 'bob'] } },
      groups: { data: { description: '', shared_context: '', members: [{ agent: 'api', use_for: '' }], users: ['carol'] } },
      settings: { admins: ['root-user'] },
    };
    const first = load(data);
    expect(first.kind).toBe('ok');
    const text = renderConfig((first as { config: DispatchConfig }).config);
    const again = load(text);
    expect(again.kind).toBe('ok');
    const config = (again as { config: DispatchConfig }).config;
    expect(config.agents['api']!.users).toEqual(['alice', 'bob']);
    expect(config.groups['data']!.users).toEqual(['carol']);
    expect(config.settings.admins).toEqual(['root-user']);
    expect(renderConfig(config)).toBe(text);
  });

  it('a config without them is written back without them', () => {
    const loaded = load({ agents: { api: { directory: dir } }, groups: { g: { members: [{ agent: 'api' }] } } });
    const text = renderConfig((loaded as { config: DispatchConfig }).config);
    expect(text).not.toMatch(/users|admins/);
  });

  it.each([
    ['agents.api.users', { agents: { api: { directory: '/tmp', users: ['al ice'] } } }],
    ['groups.g.users', { agents: {}, groups: { g: { users: ['-x'] } } }],
    ['settings.admins', { agents: {}, settings: { admins: ['a/b'] } }],
  ])('%s: a user name outside the name rule is refused', (_where, data) => {
    const result = load(data);
    expect(result.kind).toBe('invalid');
    expect(JSON.stringify(result)).toContain('Invalid user name');
  });

  it('a users entry that is not a list is refused', () => {
    expect(load({ agents: { api: { directory: dir, users: 'alice' } } }).kind).toBe('invalid');
  });
});
