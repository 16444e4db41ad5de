/** What bounds the server's own files: audit rotation, patch pruning, the finished-job cap. */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendAudit, AUDIT_KEEP } from '../../src/dispatch/audit.js';
import { JobStore } from '../../src/dispatch/job-store.js';
import * as retention from '../../src/dispatch/retention.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-retention-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const line = (i: number) => ({ time: '2026-12-06T00:00:00Z', job: String(i), agent: 'api', success: true }) as never;

describe('audit.jsonl rotation', () => {
  it('past the size cap the file rotates; at most AUDIT_KEEP older generations stay, every record whole and private', () => {
    for (let i = 0; i < 60; i++) appendAudit(root, line(i), 200);
    const files = readdirSync(root).sort();
    expect(files).toEqual(['audit.jsonl', ...Array.from({ length: AUDIT_KEEP }, (_, i) => `audit.jsonl.${i + 1}`)]);
    for (const file of files) {
      expect(statSync(join(root, file)).mode & 0o777).toBe(0o600);
      for (const text of readFileSync(join(root, file), 'utf8').trim().split('\n')) expect(() => JSON.parse(text)).not.toThrow();
    }
    expect(readFileSync(join(root, 'audit.jsonl'), 'utf8')).toContain('"job":"59"');
    expect(statSync(join(root, 'audit.jsonl.1')).size).toBeLessThan(400);
  });
});

describe('pruneStateFiles', () => {
  const RESULT = { agent: 'api', success: true, result: 'ok' };

  it('removes patches older than the retention (30 days without one) and keeps recent ones; ignores what is not a patch file', async () => {
    const dir = join(root, 'patches');
    mkdirSync(dir);
    const now = Date.now();
    for (const [name, days] of [['old.patch', 40], ['recent.patch', 2], ['mid.patch', 10], ['notes.txt', 90]] as const) {
      writeFileSync(join(dir, name), 'diff');
      utimesSync(join(dir, name), (now - days * 86_400_000) / 1000, (now - days * 86_400_000) / 1000);
    }
    const jobs = new JobStore(join(root, 'jobs'));
    expect(await retention.pruneStateFiles({ patchesDir: dir, jobs, retentionDays: 0, now })).toEqual({ patches: 1, jobs: 0 });
    expect(readdirSync(dir).sort()).toEqual(['mid.patch', 'notes.txt', 'recent.patch']);
    expect(await retention.pruneStateFiles({ patchesDir: dir, jobs, retentionDays: 7, now })).toEqual({ patches: 1, jobs: 0 });
    expect(readdirSync(dir).sort()).toEqual(['notes.txt', 'recent.patch']);
  });

  it('keeps at most MAX_FINISHED_JOBS finished jobs (the newest); pending jobs are never removed', async () => {
    const jobs = new JobStore(join(root, 'jobs'));
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await jobs.createCompleted({ agent: 'api', task: `t${i}`, result: RESULT })).id);
      await new Promise((r) => setTimeout(r, 5));
    }
    const pending = await jobs.create({ agent: 'api', task: 'p' }, { server: 's', host: 'h' });
    expect((await retention.pruneStateFiles({ patchesDir: join(root, 'none'), jobs, retentionDays: 0, maxFinishedJobs: 3 })).jobs).toBe(2);
    expect(jobs.list().map((j) => j.id).sort()).toEqual([...ids.slice(2), pending.id].sort());
  });
});
