import { closeSync, constants, fstatSync, openSync, readdirSync, unlinkSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { readAtMost } from '../read-at-most.js';
import { ensurePrivateDir, writeFileAtomic } from '../config/atomic-write.js';
import { withFileLock } from '../config/lock.js';
import { AppError, describeError } from '../errors.js';
import { newJobId } from './dispatcher.js';
import { LOCAL_CALLER, type Caller } from '../core/caller.js';
import { applyTransition, isTerminal, jobVisibleTo, type JobEvent, type JobRecord, type JobRequest, type JobStatus } from './job-state.js';
import type { DispatchResult } from './types.js';

export { isTerminal, JOB_STATUSES, type JobRecord, type JobStatus } from './job-state.js';

/** Refs and job ids: 32 lowercase hex chars, checked before any file-system access (path traversal). */
const JOB_ID = /^[0-9a-f]{32}$/;
/** A job file larger than this is not ours (results are capped far below it): it is skipped, never read whole. */
const MAX_JOB_FILE_BYTES = 64 * 1024 * 1024;
const LOCK_FILE = '.jobs.lock';

export function isValidJobId(value: unknown): value is string {
  return typeof value === 'string' && JOB_ID.test(value);
}

export function requireJobId(value: unknown, what = 'ref'): string {
  if (!isValidJobId(value)) {
    const shown = typeof value === 'string' ? value.slice(0, 80) : String(value);
    throw new AppError('INVALID_INPUT', `Invalid ${what} format: '${shown}' (expected a 32-char hex id)`, {
      hint: `Pass the ${what} exactly as a dispatch returned it: 32 lowercase hex characters. dispatch_jobs() lists the jobs and refs this machine holds.`,
    });
  }
  return value as string;
}

export type NewJob = JobRequest & Pick<JobRecord, 'owner'>;

/** Who runs a job: the server's identity (`<pid>:<start>:<pid ns>`) and host, so a later server can tell it died. */
export interface JobServer {
  server: string;
  host: string;
}

/**
 * One JSON file per job in the jobs directory: 0600 files in a 0700 directory, atomic writes, and every
 * read-modify-write under a cross-process lock, so a CLI `cancel` and the server finishing the same job
 * cannot lose each other's update. Status moves pending → running → done | failed | cancelled, never back.
 */
export class JobStore {
  constructor(readonly dir: string) {}

  /** A pending job (dispatch_async). */
  async create(job: NewJob, server: JobServer, id: string = newJobId()): Promise<JobRecord> {
    requireJobId(id, 'job_id');
    const record: JobRecord = { id, ...definedJobFields(job), status: 'pending', created_at: now(), ...server };
    await this.locked(() => this.write(record));
    return record;
  }

  /** Persist a finished dispatch (what `return_ref` hands back a ref to). */
  async createCompleted(job: NewJob & { result: DispatchResult }, id: string = newJobId()): Promise<JobRecord> {
    requireJobId(id, 'job_id');
    const t = now();
    const record: JobRecord = {
      id,
      ...definedJobFields(job),
      status: job.result.success ? 'done' : 'failed',
      created_at: t,
      started_at: t,
      completed_at: t,
      result: job.result,
      ...(!job.result.success && job.result.error ? { error: job.result.error } : {}),
    };
    await this.locked(() => this.write(record));
    return record;
  }

  /** The job, or undefined when the id is invalid or no readable job file has it. Never reads outside the dir. */
  get(id: string): JobRecord | undefined {
    if (!isValidJobId(id)) return undefined;
    const text = this.readJobFile(`${id}.json`);
    return text === undefined ? undefined : parseRecord(text, id);
  }

  /** Every readable job, most recent first; `status` filters. Files that are not jobs are skipped. */
  list(status?: JobStatus): JobRecord[] {
    const jobs: JobRecord[] = [];
    for (const name of this.names()) {
      const id = name.slice(0, -'.json'.length);
      const text = this.readJobFile(name);
      const record = text === undefined ? undefined : parseRecord(text, id);
      if (record && (!status || record.status === status)) jobs.push(record);
    }
    return jobs.sort((a, b) => b.created_at - a.created_at);
  }

  /**
   * Apply one status event under the lock. Returns the new record, or undefined when the job is missing or the
   * event is not allowed from its current status (a finish never overwrites a cancel).
   */
  async transition(id: string, event: JobEvent): Promise<JobRecord | undefined> {
    requireJobId(id, 'job_id');
    return this.locked(() => {
      const current = this.get(id);
      if (!current) return undefined;
      const next = applyTransition(current, event, now());
      if (next) this.write(next);
      return next;
    });
  }

  /** Proof of life for a running job: the owning server touches its file (used when its owner cannot be judged). */
  touch(id: string): void {
    const t = new Date();
    try {
      utimesSync(this.path(id), t, t);
    } catch {
      // the job was deleted (gc --all) or the dir is gone: nothing to keep alive
    }
  }

  /** Delete terminal jobs finished more than `maxAgeSeconds` ago (0: every terminal job) that `scope` may see. Returns how many. */
  async gc(maxAgeSeconds: number, scope: Caller = LOCAL_CALLER): Promise<number> {
    return this.gcBefore(now() - maxAgeSeconds, scope);
  }

  /** Delete terminal jobs finished before `cutoff` (epoch seconds) that `scope` may see. */
  async gcBefore(cutoff: number, scope: Caller = LOCAL_CALLER): Promise<number> {
    return this.locked(() => {
      let removed = 0;
      for (const job of this.list()) {
        if (!isTerminal(job.status) || (job.completed_at ?? job.created_at) >= cutoff || !jobVisibleTo(job, scope)) continue;
        try {
          unlinkSync(this.path(job.id));
          removed += 1;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw this.ioError('delete', this.path(job.id), error);
        }
      }
      return removed;
    });
  }

  /** The job file's modification time in epoch seconds (the heartbeat), or undefined. */
  modifiedAt(id: string): number | undefined {
    const fd = this.openJobFile(`${requireJobId(id, 'job_id')}.json`);
    if (fd === undefined) return undefined;
    try {
      return fstatSync(fd).mtimeMs / 1000;
    } finally {
      closeSync(fd);
    }
  }

  private names(): string[] {
    try {
      return readdirSync(this.dir).filter((name) => name.endsWith('.json') && isValidJobId(name.slice(0, -5)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw this.ioError('list', this.dir, error);
    }
  }

  /** Regular files only, no symlink followed, never blocking on a FIFO, bounded in size. */
  private readJobFile(name: string): string | undefined {
    const fd = this.openJobFile(name);
    if (fd === undefined) return undefined;
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.size > MAX_JOB_FILE_BYTES) return undefined;
      return readAtMost(fd, st.size).toString('utf8');
    } catch (error) {
      throw this.ioError('read', join(this.dir, name), error);
    } finally {
      closeSync(fd);
    }
  }

  private openJobFile(name: string): number | undefined {
    try {
      return openSync(join(this.dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR') return undefined;
      throw this.ioError('read', join(this.dir, name), error);
    }
  }

  private write(record: JobRecord): void {
    const path = this.path(record.id);
    try {
      writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`);
    } catch (error) {
      throw this.ioError('write', path, error);
    }
  }

  private async locked<T>(fn: () => T): Promise<T> {
    try {
      ensurePrivateDir(this.dir);
    } catch (error) {
      throw this.ioError('create', this.dir, error);
    }
    return withFileLock(join(this.dir, LOCK_FILE), fn);
  }

  private path(id: string): string {
    return join(this.dir, `${requireJobId(id, 'job_id')}.json`);
  }

  private ioError(action: string, path: string, error: unknown): AppError {
    return new AppError('JOB_IO', `Could not ${action} ${path}: ${describeError(error)}`, {
      hint: `Check free space and permissions on ${this.dir} (it must be a directory this user can write; AGENT_DISPATCH_JOBS_DIR moves it), then retry.`,
      cause: error,
    });
  }
}

function parseRecord(text: string, id: string): JobRecord | undefined {
  try {
    const record = JSON.parse(text) as JobRecord;
    return record && typeof record === 'object' && record.id === id && typeof record.status === 'string' ? record : undefined;
  } catch {
    return undefined;
  }
}

function definedJobFields(job: NewJob): NewJob {
  return {
    agent: job.agent,
    task: job.task,
    ...(job.context ? { context: job.context } : {}),
    ...(job.caller ? { caller: job.caller } : {}),
    ...(job.goal ? { goal: job.goal } : {}),
    ...(job.response_format ? { response_format: job.response_format } : {}),
    ...(job.owner ? { owner: job.owner } : {}),
  };
}

function now(): number {
  return Date.now() / 1000;
}
