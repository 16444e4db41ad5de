import type { Caller } from '../core/caller.js';
import type { DispatchResult } from './types.js';

export const JOB_STATUSES = ['pending', 'running', 'done', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** What a dispatch was asked: the part of a request a job file keeps ('' and absent both mean "not set"). */
export interface JobRequest {
  agent: string;
  task: string;
  context?: string | undefined;
  caller?: string | undefined;
  goal?: string | undefined;
  response_format?: string | undefined;
}

/** What a job file holds. Never a secret: no environment, token or credential is ever copied into it. */
export interface JobRecord extends JobRequest {
  id: string;
  status: JobStatus;
  /** Epoch seconds. */
  created_at: number;
  started_at?: number;
  completed_at?: number;
  result?: DispatchResult;
  error?: string;
  /** Rolling tail of the run's progress lines, kept after completion as a post-mortem. */
  progress?: string[];
  progress_updated_at?: number;
  /** The server running the job (`<pid>:<start time>:<pid namespace>`) and its host. */
  server?: string;
  host?: string;
  /** The HTTP user who started the job or stored the ref; absent for the local (stdio / CLI) user. */
  owner?: string;
}

/**
 * Whether the caller may see (read, wait on, cancel, fetch, list, purge) a job: the local caller sees every job,
 * an HTTP user only their own. To everyone else the job answers like a missing one.
 */
export function jobVisibleTo(job: JobRecord, caller: Caller): boolean {
  return ownerVisibleTo(job.owner, caller);
}

/** The rule for anything a user owns (jobs, refs, audit records): the local caller sees all, a user their own. */
export function ownerVisibleTo(owner: string | undefined, caller: Caller): boolean {
  return caller.kind === 'local' || owner === caller.user;
}

export type JobEvent =
  | { kind: 'start' }
  | { kind: 'progress'; lines: string[] }
  | { kind: 'finish'; result: DispatchResult }
  | { kind: 'fail'; error: string }
  | { kind: 'cancel'; error: string };

export function isTerminal(status: JobStatus): boolean {
  return status === 'done' || status === 'failed' || status === 'cancelled';
}

/**
 * The status machine: pending → running → done | failed | cancelled, with no way back. `start` only from
 * pending (a cancelled job is never resurrected by a late worker); progress, finish and fail only before a
 * terminal state (a finish never overwrites a cancel); cancel from pending or running. Returns the new
 * record, or undefined when the event does not apply.
 */
export function applyTransition(job: JobRecord, event: JobEvent, now: number): JobRecord | undefined {
  if (isTerminal(job.status)) return undefined;
  switch (event.kind) {
    case 'start':
      return job.status === 'pending' ? { ...job, status: 'running', started_at: now } : undefined;
    case 'progress':
      return { ...job, progress: event.lines, progress_updated_at: now };
    case 'finish': {
      const failed = !event.result.success;
      const { error: _previous, ...rest } = job;
      return { ...rest, status: failed ? 'failed' : 'done', completed_at: now, result: event.result, ...(failed ? { error: event.result.error ?? 'The dispatch failed.' } : {}) };
    }
    case 'fail':
      return { ...job, status: 'failed', completed_at: now, error: event.error };
    case 'cancel':
      return { ...job, status: 'cancelled', completed_at: now, error: event.error };
  }
}
