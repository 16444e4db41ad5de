/**
 * Per-user access and job ownership over the real MCP tools: several sessions (alice, bob, the admin carol, dave
 * who is granted nothing, and the local stdio user) share ONE DispatchCore, as the HTTP service's sessions do,
 * with a FAKE sandbox that records every run instead of starting a container.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { LOCAL_CALLER, userCaller, type Caller } from '../../src/core/caller.js';
import { DispatchCore } from '../../src/dispatch/core.js';
import { createServer } from '../../src/mcp/server.js';
import { FakeSandbox, gate, resultLine, succeeds, UNIT_OPEN_POLICY } from '../helpers/fake-sandbox.js';

const DECOY = 'agents: [this decoy must never be read\n';
const MISSING = 'e'.repeat(32);

interface Answer {
  text: string;
  json: any;
  isError: boolean;
}

interface Session {
  call(tool: string, args?: Record<string, unknown>): Promise<Answer>;
}

let root: string;
let configDir: string;
let configPath: string;
let env: NodeJS.ProcessEnv;
let sandbox: FakeSandbox;
let core: DispatchCore;
let closers: (() => Promise<void>)[];
let alice: Session;
let bob: Session;
let carol: Session;
let dave: Session;
let local: Session;

/** api: alice; web: bob; shared: both; ops: nobody but the admin carol. Group team = api + web; group ops-only = ops. */
function writeConfig(): void {
  const agent = (name: string, users?: string[]) => {
    const directory = join(root, 'projects', name);
    mkdirSync(directory, { recursive: true });
    return { directory, policy: 'open', description: `the ${name} agent`, ...(users ? { users } : {}) };
  };
  writeFileSync(
    configPath,
    stringify({
      agents: { api: agent('api', ['alice']), web: agent('web', ['bob']), shared: agent('shared', ['alice', 'bob']), ops: agent('ops') },
      groups: {
        team: { description: 'the team', shared_context: 'We ship on Fridays.', members: [{ agent: 'api' }, { agent: 'web' }] },
        'ops-only': { description: 'ops', shared_context: '', members: [{ agent: 'ops' }] },
      },
      settings: { admins: ['carol'] },
    }),
    { mode: 0o600 },
  );
}

async function connect(caller: Caller): Promise<Session> {
  const { server } = createServer(env, undefined, { core, caller });
  const client = new Client({ name: 'access-test', version: '0.0.0' });
  const [clientTransport, serverTransport] = InMemoryTransport.createLinkedPair();
  await Promise.all([server.connect(serverTransport), client.connect(clientTransport)]);
  closers.push(async () => {
    await client.close();
    await server.close();
  });
  return {
    async call(tool, args = {}) {
      const result = (await client.callTool({ name: tool, arguments: args })) as CallToolResult;
      const first = result.content[0];
      if (!first || first.type !== 'text') throw new Error(`${tool}: expected one text item`);
      return { text: first.text, json: JSON.parse(first.text), isError: result.isError === true };
    },
  };
}

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'ad-access-mcp-'));
  configDir = join(root, 'config');
  mkdirSync(join(configDir, 'policies'), { recursive: true });
  configPath = join(configDir, 'agents.yaml');
  writeFileSync(join(configDir, 'policies', 'open.yaml'), stringify(UNIT_OPEN_POLICY));
  writeConfig();
  mkdirSync(join(root, 'decoy'));
  writeFileSync(join(root, 'decoy', 'agents.yaml'), DECOY);
  vi.stubEnv('AGENT_DISPATCH_CONFIG', join(root, 'decoy', 'agents.yaml'));
  env = { AGENT_DISPATCH_CONFIG: configPath, ANTHROPIC_API_KEY: 'sk-unit' };
  sandbox = new FakeSandbox(succeeds([resultLine({ result: 'an answer' })]));
  core = new DispatchCore(env, sandbox);
  closers = [];
  alice = await connect(userCaller('alice'));
  bob = await connect(userCaller('bob'));
  carol = await connect(userCaller('carol'));
  dave = await connect(userCaller('dave'));
  local = await connect(LOCAL_CALLER);
});

afterEach(async () => {
  await core.shutdown();
  for (const close of closers) await close();
  expect(readFileSync(join(root, 'decoy', 'agents.yaml'), 'utf8')).toBe(DECOY);
  rmSync(root, { recursive: true, force: true });
});

const names = (answer: Answer) => (answer.json as { name: string }[]).map((a) => a.name);
/** `answer` with every `from` replaced by `to`: another user's id must answer exactly like a missing one. */
const renamed = (answer: Answer, from: string, to: string) => ({ isError: answer.isError, text: answer.text.split(from).join(to) });
const asked = (answer: Answer) => ({ isError: answer.isError, text: answer.text });

describe('agents and groups: each user sees only what is granted', () => {
  it('list_agents: alice, bob, the admin and the local user each see their own set', async () => {
    expect(names(await alice.call('list_agents'))).toEqual(['api', 'shared']);
    expect(names(await bob.call('list_agents'))).toEqual(['web', 'shared']);
    expect(names(await carol.call('list_agents'))).toEqual(['api', 'web', 'shared', 'ops']);
    expect(names(await local.call('list_agents'))).toEqual(['api', 'web', 'shared', 'ops']);
  });

  it('list_agents for a user granted nothing says so and whom to ask', async () => {
    const answer = await dave.call('list_agents');
    expect(answer.isError).toBe(true);
    expect(answer.json).toEqual({
      error: "No agents are granted to you (user 'dave').",
      hint: "Ask an admin of this dispatch service to add you ('dave') to agents.<name>.users (or groups.<name>.users) in agents.yaml.",
    });
  });

  it("inspect_agent: another user's agent answers exactly like a missing agent", async () => {
    const own = await alice.call('inspect_agent', { name: 'api' });
    expect(own.json).toMatchObject({ name: 'api', description: 'the api agent' });
    const hidden = await alice.call('inspect_agent', { name: 'web' });
    const missing = await alice.call('inspect_agent', { name: 'nope' });
    expect(hidden.json).toEqual({ error: "Unknown agent: 'web'. Available: api, shared", hint: expect.any(String) });
    expect(renamed(hidden, "'web'", "'nope'")).toEqual(asked(missing));
  });

  it('list_groups / inspect_group: only visible members; a group with none is not found', async () => {
    const groups = (await alice.call('list_groups')).json;
    expect(groups).toEqual([expect.objectContaining({ name: 'team', member_count: 1, members: [expect.objectContaining({ agent: 'api' })] })]);
    const team = (await bob.call('inspect_group', { name: 'team' })).json;
    expect(team).toMatchObject({ name: 'team', shared_context: 'We ship on Fridays.', member_count: 1, members: [{ agent: 'web' }] });
    const hidden = await alice.call('inspect_group', { name: 'ops-only' });
    const missing = await alice.call('inspect_group', { name: 'nope-only' });
    expect(hidden.json.error).toBe("Unknown group: 'ops-only'. Available: team");
    expect(renamed(hidden, 'ops-only', 'nope-only')).toEqual(asked(missing));
    expect(names(await carol.call('list_groups'))).toEqual(['team', 'ops-only']);
    expect((await dave.call('list_groups')).json.error).toBe("No groups with an agent granted to you (user 'dave').");
  });

  it("inspect_agent's last dispatch is the caller's own: bob does not see alice's", async () => {
    await alice.call('dispatch', { agent: 'shared', task: 'secret task', caller: 'alice-project' });
    expect((await alice.call('inspect_agent', { name: 'shared' })).json.last_dispatch).toMatchObject({ success: true });
    expect((await bob.call('inspect_agent', { name: 'shared' })).json).not.toHaveProperty('last_dispatch');
    expect((await local.call('inspect_agent', { name: 'shared' })).json.last_dispatch).toMatchObject({ success: true });
  });
});

describe('dispatching an agent that is not granted: unknown agent, and nothing starts', () => {
  const unknownWeb = "Unknown agent: 'web'. Available: api, shared";

  it.each([
    ['dispatch', { agent: 'web', task: 't' }],
    ['dispatch', { agent: 'api', task: 't', group: 'ops-only' }],
    ['dispatch_session', { agent: 'web', task: 't' }],
    ['dispatch_stream', { agent: 'web', task: 't' }],
    ['dispatch_async', { agent: 'web', task: 't' }],
    ['dispatch_parallel', { dispatches: JSON.stringify([{ agent: 'api', task: 'a' }, { agent: 'web', task: 'w' }]) }],
    ['dispatch_parallel', { dispatches: JSON.stringify([{ agent: 'api', task: 'a' }]), aggregate: 'web' }],
    ['dispatch_parallel', { dispatches: JSON.stringify([{ agent: 'api', task: 'a', group: 'ops-only' }]) }],
    ['dispatch_dialogue', { requester: 'api', responder: 'web', topic: 't' }],
    ['dispatch_dialogue', { requester: 'web', responder: 'api', topic: 't' }],
  ])('%s %j', async (tool, args) => {
    const answer = await alice.call(tool, args);
    expect(answer.isError).toBe(true);
    expect(answer.json.error).toMatch(/^Unknown (agent: 'web'\. Available: api, shared|group: 'ops-only'\. Available: team)$/);
    expect(sandbox.runs).toHaveLength(0);
    expect((await local.call('dispatch_jobs')).json).toEqual([]);
  });

  it('the answer is the one for an agent that does not exist', async () => {
    const hidden = await alice.call('dispatch', { agent: 'web', task: 't' });
    const missing = await alice.call('dispatch', { agent: 'zzz', task: 't' });
    expect(hidden.json.error).toBe(unknownWeb);
    expect(renamed(hidden, "'web'", "'zzz'")).toEqual(asked(missing));
  });

  it('a user granted nothing is told so on dispatch, the same for existing and missing agents', async () => {
    const existing = await dave.call('dispatch', { agent: 'api', task: 't' });
    const missing = await dave.call('dispatch', { agent: 'zzz', task: 't' });
    expect(existing.json.error).toBe("Unknown agent: 'api'. Available: (none granted to you)");
    expect(renamed(existing, "'api'", "'zzz'")).toEqual(asked(missing));
    expect(sandbox.runs).toHaveLength(0);
  });

  it('granted agents dispatch on every path; the admin may dispatch any agent', async () => {
    expect((await alice.call('dispatch', { agent: 'api', task: 't' })).json).toMatchObject({ agent: 'api', success: true });
    expect((await alice.call('dispatch', { agent: 'api', task: 't2', group: 'team' })).json).toMatchObject({ success: true });
    expect((await bob.call('dispatch_parallel', { dispatches: JSON.stringify([{ agent: 'web', task: 'a' }, { agent: 'shared', task: 'b' }]), aggregate: 'shared' })).json.aggregated).toMatchObject({ success: true });
    expect((await bob.call('dispatch_dialogue', { requester: 'web', responder: 'shared', topic: 't', max_rounds: 1 })).isError).toBe(false);
    expect((await carol.call('dispatch', { agent: 'ops', task: 't' })).json).toMatchObject({ agent: 'ops', success: true });
    expect(sandbox.runs.length).toBeGreaterThanOrEqual(7);
  });
});

describe('jobs and refs belong to the user who made them', () => {
  it("alice cannot read, wait on, cancel or fetch bob's job: each answers exactly like a missing id", async () => {
    const g = gate();
    sandbox.scripts = [g.script];
    const { job_id } = (await bob.call('dispatch_async', { agent: 'web', task: 'bob task' })).json;
    await g.started;
    for (const [tool, args] of [
      ['dispatch_status', { job_id }],
      ['dispatch_wait', { job_id, timeout_seconds: 1 }],
      ['dispatch_cancel', { job_id }],
      ['fetch_result', { ref: job_id }],
    ] as const) {
      const theirs = await alice.call(tool, args);
      const missing = await alice.call(tool, { ...args, ...('ref' in args ? { ref: MISSING } : { job_id: MISSING }) });
      expect(theirs.isError, tool).toBe(true);
      expect(renamed(theirs, job_id, MISSING), tool).toEqual(asked(missing));
    }
    // alice's cancel did nothing: bob's job still runs, and bob sees it, then finishes it.
    expect((await bob.call('dispatch_status', { job_id })).json).toMatchObject({ id: job_id, status: 'running', owner: 'bob' });
    expect(sandbox.removedJobs).toEqual([]);
    g.release();
    expect((await bob.call('dispatch_wait', { job_id, timeout_seconds: 10 })).json).toMatchObject({ status: 'done' });
    expect((await bob.call('fetch_result', { ref: job_id })).json).toMatchObject({ result: 'gated answer' });
  });

  it('dispatch_jobs lists only the caller\'s jobs; the local user sees all, with their owners', async () => {
    const a = (await alice.call('dispatch_async', { agent: 'api', task: 'alice task' })).json.job_id;
    const b = (await bob.call('dispatch_async', { agent: 'web', task: 'bob task' })).json.job_id;
    await alice.call('dispatch_wait', { job_id: a, timeout_seconds: 10 });
    await bob.call('dispatch_wait', { job_id: b, timeout_seconds: 10 });
    expect((await alice.call('dispatch_jobs')).json.map((j: { id: string }) => j.id)).toEqual([a]);
    expect((await bob.call('dispatch_jobs')).json.map((j: { id: string }) => j.id)).toEqual([b]);
    expect((await carol.call('dispatch_jobs')).json).toEqual([]);
    const all = (await local.call('dispatch_jobs')).json as { id: string; owner?: string }[];
    expect(Object.fromEntries(all.map((j) => [j.id, j.owner]))).toEqual({ [a]: 'alice', [b]: 'bob' });
  });

  it("a ref (return_ref, and return_ref items of dispatch_parallel) is its user's alone", async () => {
    const ref = (await bob.call('dispatch', { agent: 'web', task: 'r', return_ref: true })).json.ref;
    const items = (await bob.call('dispatch_parallel', { dispatches: JSON.stringify([{ agent: 'shared', task: 'p', return_ref: true }]) })).json;
    const itemRef = items[0].ref;
    for (const id of [ref, itemRef]) {
      expect(id).toMatch(/^[0-9a-f]{32}$/);
      expect((await bob.call('fetch_result', { ref: id })).json).toMatchObject({ success: true, result: 'an answer' });
      expect(renamed(await alice.call('fetch_result', { ref: id }), id, MISSING)).toEqual(asked(await alice.call('fetch_result', { ref: MISSING })));
      expect((await local.call('fetch_result', { ref: id })).json).toMatchObject({ success: true });
    }
  });

  it("dispatch_gc purges only the caller's finished jobs", async () => {
    const a = (await alice.call('dispatch', { agent: 'api', task: 'r', return_ref: true })).json.ref;
    const b = (await bob.call('dispatch', { agent: 'web', task: 'r', return_ref: true })).json.ref;
    const jobFile = (id: string) => join(configDir, 'jobs', `${id}.json`);
    // Both finished long ago.
    for (const id of [a, b]) {
      const record = JSON.parse(readFileSync(jobFile(id), 'utf8'));
      writeFileSync(jobFile(id), JSON.stringify({ ...record, created_at: 1000, started_at: 1000, completed_at: 1000 }));
    }
    expect((await alice.call('dispatch_gc', { max_age_days: 1 })).json).toEqual({ purged: 1, max_age_days: 1 });
    expect((await alice.call('dispatch_jobs')).json).toEqual([]);
    expect((await bob.call('dispatch_jobs')).json.map((j: { id: string }) => j.id)).toEqual([b]);
  });

  it("the local user can read, wait on and cancel any user's job (stdio and the CLI see everything)", async () => {
    const g = gate();
    sandbox.scripts = [g.script];
    const { job_id } = (await bob.call('dispatch_async', { agent: 'web', task: 'bob task' })).json;
    await g.started;
    expect((await local.call('dispatch_status', { job_id })).json).toMatchObject({ owner: 'bob', status: 'running' });
    expect((await local.call('dispatch_cancel', { job_id })).json).toMatchObject({ outcome: 'cancelled_running' });
    expect(sandbox.removedJobs).toEqual([job_id]);
  });
});

describe('changing agents is for admins', () => {
  it.each([
    ['add_agent', () => ({ name: 'new', directory: join(root, 'projects', 'api') })],
    ['update_agent', () => ({ name: 'api', description: 'changed' })],
    ['remove_agent', () => ({ name: 'api' })],
    ['cache_clear', () => ({})],
  ])('%s by a user: FORBIDDEN, nothing changed', async (tool, args) => {
    const before = readFileSync(configPath, 'utf8');
    const answer = await alice.call(tool, args());
    expect(answer.isError).toBe(true);
    expect(answer.json.error).toBe(`${tool} is for admins of this dispatch service; user 'alice' is not one.`);
    expect(answer.json.hint).toContain('An admin must do this');
    expect(readFileSync(configPath, 'utf8')).toBe(before);
  });

  it("an admin may: carol's update_agent and add_agent change the config, and the policy change's record names her", async () => {
    expect((await carol.call('update_agent', { name: 'api', description: 'changed', policy: 'open' })).json).toEqual({ updated: 'api', fields: ['description', 'policy'] });
    expect((await carol.call('add_agent', { name: 'fresh', directory: join(root, 'projects', 'web') })).json).toMatchObject({ added: 'fresh' });
    const config = parseYaml(readFileSync(configPath, 'utf8'));
    expect(config.agents.api).toMatchObject({ description: 'changed', users: ['alice'] });
    expect(config.settings.admins).toEqual(['carol']);
    expect((await carol.call('cache_clear')).json).toEqual({ cleared: 0 });
    const changes = auditLines().filter((r) => r.kind === 'config-change');
    expect(changes.map((r) => [r.tool, r.agent, r.user])).toEqual([
      ['update_agent', 'api', 'carol'],
      ['add_agent', 'fresh', 'carol'],
    ]);
  });

  it("cache_stats stays open to users, counting only their own entries and lookups: alice learns nothing of bob's dispatches", async () => {
    expect((await alice.call('cache_stats')).json).toMatchObject({ size: 0 });
    await bob.call('dispatch', { agent: 'web', task: 'b' });
    await bob.call('dispatch', { agent: 'web', task: 'b' });
    await alice.call('dispatch', { agent: 'api', task: 'a' });
    expect((await alice.call('cache_stats')).json).toMatchObject({ size: 1, hits: 0, misses: 1, hit_rate: 0 });
    expect((await bob.call('cache_stats')).json).toMatchObject({ size: 1, hits: 1, misses: 1, hit_rate: 0.5 });
    expect((await dave.call('cache_stats')).json).toMatchObject({ size: 0, hits: 0, misses: 0 });
    for (const whole of [carol, local]) expect((await whole.call('cache_stats')).json).toMatchObject({ size: 2, hits: 1, misses: 2 });
  });
});

function auditLines(): Record<string, any>[] {
  return readFileSync(join(configDir, 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

describe('audit and cache', () => {
  it("a dispatch's audit record names the user; the local user's has no user", async () => {
    await alice.call('dispatch', { agent: 'api', task: 'a' });
    await bob.call('dispatch_async', { agent: 'web', task: 'b' }).then((a) => bob.call('dispatch_wait', { job_id: a.json.job_id, timeout_seconds: 10 }));
    await local.call('dispatch', { agent: 'ops', task: 'c' });
    expect(auditLines().map((r) => [r.agent, r.user])).toEqual([
      ['api', 'alice'],
      ['web', 'bob'],
      ['ops', undefined],
    ]);
  });

  it("one user is never answered from another user's cache entry", async () => {
    const ask = { agent: 'shared', task: 'same question' };
    expect((await alice.call('dispatch', ask)).json).not.toHaveProperty('cached');
    expect((await bob.call('dispatch', ask)).json).not.toHaveProperty('cached');
    expect((await local.call('dispatch', ask)).json).not.toHaveProperty('cached');
    expect(sandbox.runs).toHaveLength(3);
    expect((await alice.call('dispatch', ask)).json.cached).toBe(true);
    expect((await bob.call('dispatch', ask)).json.cached).toBe(true);
    expect(sandbox.runs).toHaveLength(3);
  });
});

describe('a shared agent keeps its users apart', () => {
  const sessionVolume = (index: number) => sandbox.runs[index]!.spec.HostConfig.Mounts.find((m) => m.Target.endsWith('/.claude/projects'))?.Source;

  it("each user's dispatches get their own Claude session volume: bob's transcripts are not in alice's container, so she cannot read or resume them", async () => {
    await bob.call('dispatch', { agent: 'shared', task: 'bob secret' });
    const bobSession = (await bob.call('dispatch_session', { agent: 'shared', task: 'go on' })).json.session_id;
    await alice.call('dispatch_session', { agent: 'shared', task: 'resume his', session_id: bobSession });
    await carol.call('dispatch', { agent: 'shared', task: 'admin' });
    await local.call('dispatch', { agent: 'shared', task: 'local' });
    const [bobVolume, bobAgain, aliceVolume, carolVolume, localVolume] = [0, 1, 2, 3, 4].map(sessionVolume);
    expect(localVolume).toMatch(/^agent-dispatch-claude\.shared\.[0-9a-f]{12}$/);
    expect(bobVolume).toBe(`${localVolume}.user.bob`);
    expect(bobAgain).toBe(bobVolume);
    expect(aliceVolume).toBe(`${localVolume}.user.alice`);
    expect(carolVolume).toBe(`${localVolume}.user.carol`);
    // The volume keeps the agent's labels, so removing the agent removes every user's volume too.
    const labels = (index: number) => sandbox.runs[index]!.spec.HostConfig.Mounts.find((m) => m.Source === sessionVolume(index))?.VolumeOptions?.Labels;
    expect(labels(2)).toEqual(labels(4));
    expect(labels(4)).toMatchObject({ 'agent-dispatch.agent': 'shared' });
    // The audit record shows the volume the dispatch really had.
    const aliceRecord = auditLines().find((r) => r.user === 'alice')!;
    expect(aliceRecord.mounts.map((m: { source: string }) => m.source)).toContain(aliceVolume);
    // Pre-started sandboxes mount a session volume too: each user's fresh sessions pool in their own lane (alice's
    // resume of a session id is never served by a pre-started sandbox; the local user has the agent's own pool).
    expect(sandbox.runs.map((r) => r.warm?.lane)).toEqual(['bob', 'bob', undefined, 'carol', undefined]);
  });
});

describe('one budget, taken in turns', () => {
  it("alice's backlog of async jobs does not put bob's dispatch behind all of it: freed slots go to the users in turn", async () => {
    const config = parseYaml(readFileSync(configPath, 'utf8'));
    writeFileSync(configPath, stringify({ ...config, settings: { ...config.settings, max_concurrency: 1 } }));
    const g = gate();
    sandbox.scripts = [g.script, succeeds([resultLine()])];
    const ids = [];
    for (const task of ['a1', 'a2', 'a3']) ids.push((await alice.call('dispatch_async', { agent: 'api', task })).json.job_id);
    await g.started;
    ids.push((await bob.call('dispatch_async', { agent: 'web', task: 'b1' })).json.job_id);
    g.release();
    for (const job_id of ids) await local.call('dispatch_wait', { job_id, timeout_seconds: 10 });
    expect(sandbox.runs.map((run) => run.stdin.match(/\b[ab]\d\b/)?.[0])).toEqual(['a1', 'a2', 'b1', 'a3']);
  });
});
