import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/atomic-write.js';
import { AppError } from '../errors.js';
import { newJobId } from './dispatcher.js';
import type { DispatchResult } from './types.js';

/** Refs and job ids: 32 lowercase hex chars, checked before any file-system access (path traversal). */
const JOB_ID = /^[0-9a-f]{32}$/;

export function isValidJobId(value: unknown): value is string {
  return typeof value === 'string' && JOB_ID.test(value);
}

export function requireJobId(value: string, what = 'ref'): string {
  if (!isValidJobId(value)) throw new AppError('INVALID_INPUT', `Invalid ${what} format: '${value}' (expected a 32-char hex id)`);
  return value;
}

export interface JobRecord {
  id: string;
  agent: string;
  task: string;
  context?: string;
  caller?: string;
  goal?: string;
  status: 'pending' | 'running' | 'done' | 'failed' | 'cancelled';
  created_at: number;
  started_at?: number;
  completed_at?: number;
  result?: DispatchResult;
  error?: string;
}

export interface CompletedJob {
  agent: string;
  task: string;
  context?: string | undefined;
  caller?: string | undefined;
  goal?: string | undefined;
  result: DispatchResult;
}

/** One JSON file per job in the jobs directory (0600 files, 0700 dir, atomic writes). */
export class JobStore {
  constructor(private readonly dir: string) {}

  /** Persist a finished dispatch (what `return_ref` hands back a ref to). */
  createCompleted(job: CompletedJob, id: string = newJobId()): JobRecord {
    const now = Date.now() / 1000;
    const record: JobRecord = {
      id,
      agent: job.agent,
      task: job.task,
      ...(job.context ? { context: job.context } : {}),
      ...(job.caller ? { caller: job.caller } : {}),
      ...(job.goal ? { goal: job.goal } : {}),
      status: job.result.success ? 'done' : 'failed',
      created_at: now,
      started_at: now,
      completed_at: now,
      result: job.result,
      ...(!job.result.success && job.result.error ? { error: job.result.error } : {}),
    };
    writeFileAtomic(this.path(id), `${JSON.stringify(record, null, 2)}\n`);
    return record;
  }

  /** The job, or undefined when the id is invalid, the file is missing or unreadable as a job. */
  get(id: string): JobRecord | undefined {
    if (!isValidJobId(id)) return undefined;
    let text: string;
    try {
      text = readFileSync(this.path(id), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const record = JSON.parse(text) as JobRecord;
      return record && typeof record === 'object' && record.id === id ? record : undefined;
    } catch {
      return undefined;
    }
  }

  private path(id: string): string {
    return join(this.dir, `${requireJobId(id, 'job_id')}.json`);
  }
}
