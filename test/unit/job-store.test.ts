/** The job status machine, the store's file handling, crash recovery and the progress helpers, without an engine. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { applyTransition, JOB_STATUSES, type JobEvent, type JobRecord, type JobStatus } from '../../src/dispatch/job-state.js';
import { JobStore } from '../../src/dispatch/job-store.js';
import { abandonReason, JobService, ProgressTail, STALE_RUNNING_SECONDS } from '../../src/dispatch/jobs.js';
import { DispatchCore } from '../../src/dispatch/core.js';
import { serverIdentity } from '../../src/sandbox/owner.js';
import { progressChannel } from '../../src/mcp/progress.js';

const RESULT = { agent: 'api', success: true, result: 'ok' };
const EVENTS: JobEvent[] = [
  { kind: 'start' },
  { kind: 'progress', lines: ['x'] },
  { kind: 'finish', result: RESULT },
  { kind: 'fail', error: 'e' },
  { kind: 'cancel', error: 'c' },
];

function job(status: JobStatus, fields: Partial<JobRecord> = {}): JobRecord {
  return { id: 'a'.repeat(32), agent: 'api', task: 't', status, created_at: 1000, ...fields };
}

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-jobs-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('the status machine', () => {
  const allowed: Record<JobStatus, JobEvent['kind'][]> = {
    pending: ['start', 'progress', 'finish', 'fail', 'cancel'],
    running: ['progress', 'finish', 'fail', 'cancel'],
    done: [],
    failed: [],
    cancelled: [],
  };
  for (const status of JOB_STATUSES) {
    for (const event of EVENTS) {
      const ok = allowed[status].includes(event.kind);
      it(`${status} + ${event.kind} → ${ok ? 'applies' : 'refused'}`, () => {
        const next = applyTransition(job(status), event, 2000);
        expect(next === undefined).toBe(!ok);
      });
    }
  }

  it('start sets running and started_at; finish keeps the result and the error of a failure; cancel never turns back', () => {
    const running = applyTransition(job('pending'), { kind: 'start' }, 2000)!;
    expect(running).toMatchObject({ status: 'running', started_at: 2000 });
    const failed = applyTransition(running, { kind: 'finish', result: { ...RESULT, success: false, error: 'boom' } }, 3000)!;
    expect(failed).toMatchObject({ status: 'failed', completed_at: 3000, error: 'boom' });
    const cancelled = applyTransition(running, { kind: 'cancel', error: 'stop' }, 3000)!;
    for (const event of EVENTS) expect(applyTransition(cancelled, event, 4000)).toBeUndefined();
  });
});

describe('JobStore files', () => {
  it('a job I/O failure names the path and the fix, never "a bug"', async () => {
    const notADir = join(root, 'file');
    writeFileSync(notADir, '');
    const store = new JobStore(join(notADir, 'jobs'));
    const error = await store.createCompleted({ agent: 'api', task: 't', result: RESULT }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'JOB_IO', message: expect.stringContaining(join(notADir, 'jobs')), hint: expect.stringContaining('AGENT_DISPATCH_JOBS_DIR') });
    expect(String((error as Error).message)).not.toMatch(/bug/i);
  });

  it('a job file that is a symlink or a FIFO is skipped without following or blocking', async () => {
    const dir = join(root, 'jobs');
    const store = new JobStore(dir);
    const real = await store.createCompleted({ agent: 'api', task: 't', result: RESULT });
    const secret = join(root, 'secret.json');
    writeFileSync(secret, JSON.stringify({ ...real, id: 'b'.repeat(32), task: 'SECRET' }));
    symlinkSync(secret, join(dir, `${'b'.repeat(32)}.json`));
    execFileSync('mkfifo', [join(dir, `${'c'.repeat(32)}.json`)]);
    expect(store.get('b'.repeat(32))).toBeUndefined();
    expect(store.get('c'.repeat(32))).toBeUndefined();
    expect(store.list().map((j) => j.id)).toEqual([real.id]);
  });

  it('list skips files that are not jobs (other names, broken JSON, a record naming another id)', async () => {
    const store = new JobStore(join(root, 'jobs'));
    const real = await store.createCompleted({ agent: 'api', task: 't', result: RESULT });
    writeFileSync(join(root, 'jobs', 'notes.json'), '{}');
    writeFileSync(join(root, 'jobs', `${'d'.repeat(32)}.json`), '{ broken');
    writeFileSync(join(root, 'jobs', `${'e'.repeat(32)}.json`), JSON.stringify({ ...real, id: 'f'.repeat(32) }));
    expect(store.list().map((j) => j.id)).toEqual([real.id]);
  });
});

describe('recovery after a crash', () => {
  const now = 10_000_000;
  const dead = `999999999:12345:${serverIdentity().split(':')[2]}`;

  it('a job of a server that is provably gone is abandoned at once, naming its pid', () => {
    expect(abandonReason(job('running', { server: dead, host: hostname(), started_at: now - 5 }), now, now)).toMatch(/pid 999999999\) stopped while it was running/);
  });

  it('a job of this (live) server, or of another host with a fresh file, is left alone', () => {
    expect(abandonReason(job('running', { server: serverIdentity(), host: hostname(), started_at: now - 99_999 }), now, now)).toBeUndefined();
    expect(abandonReason(job('running', { server: dead, host: 'elsewhere', started_at: now - 99_999 }), now, now - 10)).toBeUndefined();
  });

  it('a job whose owner cannot be judged is abandoned once it and its file are quiet for an hour (pending: a day)', () => {
    const old = now - STALE_RUNNING_SECONDS - 1;
    expect(abandonReason(job('running', { host: 'elsewhere', server: dead, started_at: old }), now, old)).toMatch(/Abandoned in 'running'/);
    expect(abandonReason(job('pending', { created_at: old }), now, old)).toBeUndefined();
    const day = now - STALE_RUNNING_SECONDS * 24 - 1;
    expect(abandonReason(job('pending', { created_at: day }), now, day)).toMatch(/Abandoned in 'pending'/);
  });

  it('JobService.recover fails the dead server’s jobs and asks for their containers to go; terminal jobs stay', async () => {
    const store = new JobStore(join(root, 'jobs'));
    const removed: string[] = [];
    const service = new JobService(store, { dispatch: async () => RESULT, removeJobContainers: async (id) => (removed.push(id), 1) });
    const orphan = await store.create({ agent: 'api', task: 't' }, { server: dead, host: hostname() });
    await store.transition(orphan.id, { kind: 'start' });
    const done = await store.createCompleted({ agent: 'api', task: 't', result: RESULT });
    expect(await service.recover()).toBe(1);
    expect(store.get(orphan.id)).toMatchObject({ status: 'failed', error: expect.stringContaining('crashed or killed') });
    expect(removed).toEqual([orphan.id]);
    expect(store.get(done.id)?.status).toBe('done');
  });

  it('server start applies settings.job_retention_days', async () => {
    const configPath = join(root, 'agents.yaml');
    writeFileSync(configPath, 'agents: {}\nsettings:\n  job_retention_days: 2\n');
    const core = new DispatchCore({ AGENT_DISPATCH_CONFIG: configPath }, { run: async () => { throw new Error('no runs'); } });
    const old = await core.jobs.store.createCompleted({ agent: 'api', task: 'old', result: RESULT });
    const fresh = await core.jobs.store.createCompleted({ agent: 'api', task: 'fresh', result: RESULT });
    const path = join(root, 'jobs', `${old.id}.json`);
    writeFileSync(path, JSON.stringify({ ...old, completed_at: Date.now() / 1000 - 3 * 86_400 }));
    await core.startup();
    expect(readdirSync(join(root, 'jobs')).filter((n) => n.endsWith('.json'))).toEqual([`${fresh.id}.json`]);
  });
});

describe('progress helpers', () => {
  it('ProgressTail keeps the last 20 lines of at most 300 chars and writes at most once a second', async () => {
    vi.useFakeTimers();
    try {
      const writes: string[][] = [];
      const tail = new ProgressTail((lines) => void writes.push(lines));
      for (let i = 0; i < 30; i++) tail.add(`${i} ${'x'.repeat(400)}`);
      await vi.advanceTimersByTimeAsync(0);
      expect(writes).toHaveLength(1);
      await vi.advanceTimersByTimeAsync(1000);
      expect(writes).toHaveLength(2);
      expect(writes[1]).toHaveLength(20);
      expect(writes[1]![0]!.startsWith('10 ')).toBe(true);
      expect(writes[1]!.every((l) => l.length === 300)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a long call repeats its phase as a progress notification while it runs, only for a caller with a token', async () => {
    vi.useFakeTimers();
    try {
      const sent: { method: string; params: Record<string, unknown> }[] = [];
      const extra = { _meta: { progressToken: 7 }, sendNotification: async (n: never) => void sent.push(n) } as never;
      const channel = progressChannel(extra, { keepaliveMs: 25_000 });
      channel.phase('dispatch_parallel: 0/3 finished');
      await vi.advanceTimersByTimeAsync(60_000);
      await channel.done();
      const progress = sent.filter((n) => n.method === 'notifications/progress').map((n) => n.params['message']);
      expect(progress).toEqual(['dispatch_parallel: 0/3 finished', 'dispatch_parallel: 0/3 finished (still working)', 'dispatch_parallel: 0/3 finished (still working)']);
      const silent: unknown[] = [];
      const without = progressChannel({ _meta: {}, sendNotification: async (n: never) => void silent.push(n) } as never);
      without.phase('x');
      await without.done();
      expect(silent.every((n) => (n as { method: string }).method === 'notifications/message')).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
