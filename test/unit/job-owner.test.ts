/**
 * Job ownership in the job layer itself (JobStore, JobService) and the CLI: a record keeps its owner, a scope
 * limits every call an HTTP user can make, the local scope sees everything; `agent-dispatch jobs` / `job` show
 * the owner. The same over MCP, with several sessions on one core: access-mcp.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { jobCommand, jobsCommand } from '../../src/cli/commands/jobs.js';
import { LOCAL_CALLER, userCaller } from '../../src/core/caller.js';
import { jobVisibleTo, ownerVisibleTo } from '../../src/dispatch/job-state.js';
import { JobStore } from '../../src/dispatch/job-store.js';
import { JobService, MAX_UNFINISHED_JOBS_PER_USER } from '../../src/dispatch/jobs.js';
import { appErrorOf } from '../helpers/app-error.js';
import { capture } from './cli-harness.js';

const SERVER = { server: '1:1:1', host: 'elsewhere' };
const RESULT = { agent: 'api', success: true, result: 'ok' };
const alice = userCaller('alice');
const bob = userCaller('bob');

let root: string;
let store: JobStore;
let jobs: JobService;
const removed: string[] = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-job-owner-'));
  store = new JobStore(join(root, 'jobs'));
  removed.length = 0;
  jobs = new JobService(store, {
    dispatch: async () => {
      throw new Error('no runs here');
    },
    removeJobContainers: async (job) => {
      removed.push(job);
      return 0;
    },
  });
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('the owner rule', () => {
  it('local sees every owner (and none); a user only their own', () => {
    expect(ownerVisibleTo(undefined, LOCAL_CALLER)).toBe(true);
    expect(ownerVisibleTo('bob', LOCAL_CALLER)).toBe(true);
    expect(ownerVisibleTo('alice', alice)).toBe(true);
    expect(ownerVisibleTo('bob', alice)).toBe(false);
    expect(ownerVisibleTo(undefined, alice)).toBe(false);
    expect(jobVisibleTo({ id: 'a'.repeat(32), agent: 'x', task: 't', status: 'done', created_at: 1, owner: 'alice' }, alice)).toBe(true);
  });
});

describe('JobStore keeps the owner', () => {
  it('in a pending job and in a stored ref, and not at all for the local user', async () => {
    const pending = await store.create({ agent: 'api', task: 't', owner: 'alice' }, SERVER);
    const ref = await store.createCompleted({ agent: 'api', task: 't', owner: 'bob', result: RESULT });
    const mine = await store.create({ agent: 'api', task: 't' }, SERVER);
    expect(store.get(pending.id)?.owner).toBe('alice');
    expect(store.get(ref.id)?.owner).toBe('bob');
    expect(store.get(mine.id)).not.toHaveProperty('owner');
    expect(JSON.parse(readFileSync(join(store.dir, `${ref.id}.json`), 'utf8')).owner).toBe('bob');
  });

  it('gc with a scope deletes only what that scope may see; the default (local) deletes all', async () => {
    const a = await store.createCompleted({ agent: 'api', task: 't', owner: 'alice', result: RESULT });
    const b = await store.createCompleted({ agent: 'api', task: 't', owner: 'bob', result: RESULT });
    const l = await store.createCompleted({ agent: 'api', task: 't', result: RESULT });
    expect(await store.gc(-10, alice)).toBe(1);
    expect([store.get(a.id), store.get(b.id), store.get(l.id)].map((j) => j?.id)).toEqual([undefined, b.id, l.id]);
    expect(await store.gc(-10)).toBe(2);
  });
});

describe('JobService with a scope', () => {
  it("status, wait and cancel of another user's job answer exactly like a missing job; nothing is cancelled", async () => {
    const theirs = await store.create({ agent: 'api', task: 't', owner: 'bob' }, SERVER);
    const missing = 'f'.repeat(32);
    for (const call of [
      (id: string) => jobs.status(id, alice),
      (id: string) => jobs.wait(id, 1, alice),
      (id: string) => jobs.cancel(id, alice),
    ]) {
      const hidden = await appErrorOf(() => call(theirs.id));
      const absent = await appErrorOf(() => call(missing));
      expect(hidden.code).toBe('JOB_NOT_FOUND');
      expect(hidden.message.replace(theirs.id, missing)).toBe(absent.message);
      expect(hidden.hint).toBe(absent.hint);
    }
    expect(store.get(theirs.id)?.status).toBe('pending');
    expect(removed).toEqual([]);
    expect(await jobs.cancel(theirs.id, bob)).toMatchObject({ outcome: 'cancelled' });
  });

  it('list shows a user their jobs only, with the owner; local lists all', async () => {
    const a = await store.create({ agent: 'api', task: 'a', owner: 'alice' }, SERVER);
    const b = await store.create({ agent: 'api', task: 'b', owner: 'bob' }, SERVER);
    expect(jobs.list('', 50, alice)).toEqual([expect.objectContaining({ id: a.id, owner: 'alice' })]);
    expect(jobs.list('pending', 50, bob).map((j) => j.id)).toEqual([b.id]);
    expect(jobs.list('', 50, LOCAL_CALLER).map((j) => j.id).sort()).toEqual([a.id, b.id].sort());
  });

  it("gc with a user's scope leaves other users' finished jobs", async () => {
    await store.createCompleted({ agent: 'api', task: 't', owner: 'alice', result: RESULT });
    const b = await store.createCompleted({ agent: 'api', task: 't', owner: 'bob', result: RESULT });
    expect(await jobs.gc(-10, alice)).toBe(1);
    expect(jobs.list('', 50, LOCAL_CALLER).map((j) => j.id)).toEqual([b.id]);
  });
});

describe('the CLI is the local user: it sees every job and shows its owner', () => {
  it('jobs lists all with the owner beside the agent; job ID has an owner row', async () => {
    vi.stubEnv('NO_COLOR', '1');
    const b = await store.create({ agent: 'api', task: 'bob task', owner: 'bob' }, SERVER);
    const l = await store.create({ agent: 'api', task: 'local task' }, SERVER);
    const listed = await capture(() => jobsCommand([], jobs));
    expect(listed.stdout).toContain(`${b.id}  pending    api  (bob)`);
    expect(listed.stdout).toMatch(new RegExp(`${l.id}  pending    api  +\\d+s  local task`));
    const shown = await capture(() => jobCommand([b.id], jobs));
    expect(shown.stdout).toContain('  owner:      bob\n');
    vi.unstubAllEnvs();
  });
});

describe('a limit on one user\'s unfinished async jobs', () => {
  it(`past ${MAX_UNFINISHED_JOBS_PER_USER} unfinished jobs a user's next is refused with LIMIT_REACHED; other users, the local user and a finished slot go on`, async () => {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const held = new JobService(store, {
      dispatch: async (_config, request) => {
        await released;
        return { agent: request.agent, success: true, result: 'ok' } as never;
      },
      removeJobContainers: async () => 0,
    });
    const start = (owner?: string) => held.start({} as never, { agent: 'api', task: 't', ...(owner ? { owner } : {}) }, { agent: 'api', task: 't', user: owner });
    for (let i = 0; i < MAX_UNFINISHED_JOBS_PER_USER; i++) await start('alice');
    const refused = await appErrorOf(() => start('alice'));
    expect(refused.code).toBe('LIMIT_REACHED');
    expect(refused.message).toBe(`You have ${MAX_UNFINISHED_JOBS_PER_USER} unfinished async jobs on this service (limit ${MAX_UNFINISHED_JOBS_PER_USER}); this one was not started.`);
    expect(refused.hint).toContain('dispatch_cancel');
    expect(store.list().filter((j) => j.owner === 'alice')).toHaveLength(MAX_UNFINISHED_JOBS_PER_USER);
    await start('bob');
    await start();
    release();
    await held.shutdown();
    await start('alice');
    await held.shutdown();
  });
});
