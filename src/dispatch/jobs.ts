import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DispatchConfig } from '../config/schema.js';
import type { Caller } from '../core/caller.js';
import { clampWhole } from '../core/validate.js';
import { AppError, describeError } from '../errors.js';
import { logger } from '../log.js';
import { ownerIsGone, serverIdentity, LABELS } from '../sandbox/owner.js';
import type { DispatchRequest } from './dispatcher.js';
import { jobVisibleTo } from './job-state.js';
import { isTerminal, JOB_STATUSES, requireJobId, type JobRecord, type JobStatus, type JobStore, type NewJob } from './job-store.js';
import type { ProgressEvent } from './stream-events.js';
import type { DispatchResult } from './types.js';

const log = logger('jobs');

export const PROGRESS_LINE_CHARS = 300;
export const PROGRESS_MAX_LINES = 20;
const PROGRESS_WRITE_INTERVAL_MS = 1000;
/** How often the owning server re-reads a running job (a cancel from the CLI) and proves it is alive. */
const WATCH_INTERVAL_MS = 1000;
const HEARTBEAT_INTERVAL_MS = 30_000;
/** A running job whose owner cannot be judged from here (another host) and whose file is this quiet is abandoned. */
export const STALE_RUNNING_SECONDS = 3600;
/** Pending jobs may queue behind another live server's budget: 24x longer before they count as abandoned. */
const STALE_PENDING_SECONDS = STALE_RUNNING_SECONDS * 24;
export const MIN_WAIT_SECONDS = 1;
export const MAX_WAIT_SECONDS = 3600;
export const MAX_JOBS_LIMIT = 1000;
const WAIT_POLL_MS = 250;
/**
 * Unfinished (pending or running) async jobs one HTTP user may have on this server. Past it dispatch_async is
 * refused: each job is a file and a queued run, and a loop of calls would otherwise fill the disk and memory
 * every user shares. The local user is not limited.
 */
export const MAX_UNFINISHED_JOBS_PER_USER = 100;

/** What the job layer needs from the dispatch service: a bounded dispatch and a way to kill a job's containers. */
export interface JobRunnerPort {
  dispatch(config: DispatchConfig, request: DispatchRequest, job: string, onSlot?: () => Promise<boolean>): Promise<DispatchResult>;
  removeJobContainers(job: string): Promise<number>;
}

export type CancelOutcome = 'cancelled' | 'cancelled_running' | 'already_terminal';

export interface CancelAnswer {
  job_id: string;
  outcome: CancelOutcome;
  status: JobStatus;
  message: string;
}

export interface JobSummary {
  id: string;
  agent: string;
  owner?: string;
  status: JobStatus;
  task: string;
  created_at: number;
  started_at?: number;
  completed_at?: number;
  success?: boolean;
  cost_usd?: number;
  last_progress?: string;
  error_type?: string;
}

/**
 * Async jobs: a pending job file, a background run through the shared concurrency budget, a rolling progress
 * tail, cancel (the container is killed, whoever started it), wait, list, gc and recovery after a crash.
 * The CLI reaches it as `new DispatchCore(env).jobs`. Every call a caller makes names its `scope` (the caller):
 * an HTTP user sees only the jobs they own, and another user's job answers exactly like a missing one.
 */
export class JobService {
  private readonly live = new Map<string, { abort: AbortController; settled: Promise<void>; owner: string | undefined }>();

  constructor(
    readonly store: JobStore,
    private readonly runner: JobRunnerPort,
  ) {}

  /** Create a pending job and start it in the background; returns at once. */
  async start(config: DispatchConfig, job: NewJob, request: DispatchRequest): Promise<JobRecord> {
    if (job.owner !== undefined) this.refuseOverLimit(job.owner);
    const record = await this.store.create(job, { server: serverIdentity(), host: hostname() });
    const abort = new AbortController();
    const settled = this.run(config, record.id, request, abort).finally(() => this.live.delete(record.id));
    this.live.set(record.id, { abort, settled, owner: job.owner });
    return record;
  }

  private refuseOverLimit(owner: string): void {
    let unfinished = 0;
    for (const run of this.live.values()) if (run.owner === owner) unfinished += 1;
    if (unfinished < MAX_UNFINISHED_JOBS_PER_USER) return;
    throw new AppError('LIMIT_REACHED', `You have ${unfinished} unfinished async jobs on this service (limit ${MAX_UNFINISHED_JOBS_PER_USER}); this one was not started.`, {
      hint: 'Wait for some to finish (dispatch_wait) or cancel those you no longer need (dispatch_cancel), then start it again; dispatch_jobs(status="pending") lists the queued ones.',
    });
  }

  status(id: string, scope: Caller): JobRecord {
    const job = this.store.get(requireJobId(id, 'job_id'));
    if (!job || !jobVisibleTo(job, scope)) throw notFound(id);
    return job;
  }

  /** Poll until the job is terminal or `timeoutSeconds` (clamped 1..3600) pass; `onTick` runs every poll. */
  async wait(id: string, timeoutSeconds: number, scope: Caller, options: { signal?: AbortSignal; onTick?: (job: JobRecord) => void } = {}): Promise<JobRecord & { timed_out_waiting?: true }> {
    const seconds = clampWhole(timeoutSeconds, MIN_WAIT_SECONDS, MAX_WAIT_SECONDS, 60);
    const deadline = Date.now() + seconds * 1000;
    for (;;) {
      const job = this.status(id, scope);
      if (isTerminal(job.status)) return job;
      if (Date.now() >= deadline || options.signal?.aborted) return { ...job, timed_out_waiting: true };
      options.onTick?.(job);
      await sleep(Math.min(WAIT_POLL_MS, Math.max(0, deadline - Date.now())));
    }
  }

  /**
   * Pending → cancelled. Running → cancelled, then its containers are killed and removed (also when another
   * process runs it: the CLI cancels what the server started); this server's own run is aborted too.
   */
  async cancel(id: string, scope: Caller): Promise<CancelAnswer> {
    const current = this.status(id, scope);
    if (isTerminal(current.status)) {
      return { job_id: id, outcome: 'already_terminal', status: current.status, message: `Job already ${current.status}; nothing to cancel.` };
    }
    const wasRunning = current.status === 'running';
    const error = wasRunning ? 'Cancelled while running — its container was killed' : 'Cancelled before execution';
    const cancelled = await this.store.transition(id, { kind: 'cancel', error });
    if (!cancelled) {
      const now = this.status(id, scope);
      return { job_id: id, outcome: 'already_terminal', status: now.status, message: `Job already ${now.status}; nothing to cancel.` };
    }
    this.live.get(id)?.abort.abort();
    await this.runner.removeJobContainers(id);
    return wasRunning
      ? { job_id: id, outcome: 'cancelled_running', status: 'cancelled', message: 'Job was running; its container has been killed and removed.' }
      : { job_id: id, outcome: 'cancelled', status: 'cancelled', message: 'Job was cancelled before it started.' };
  }

  /** Most recent first; `status` '' means every status; `limit` is clamped to 1..1000. */
  list(status: string, limit: number, scope: Caller): JobSummary[] {
    const filter = status.trim().toLowerCase();
    if (filter && !(JOB_STATUSES as readonly string[]).includes(filter)) {
      throw new AppError('INVALID_INPUT', `Invalid status: '${status.slice(0, 40)}'. Use one of: ${[...JOB_STATUSES].sort().join(', ')} or empty.`, {
        hint: "Pass one of the statuses, or '' for every job.",
      });
    }
    const cap = clampWhole(limit, 1, MAX_JOBS_LIMIT, 50);
    const visible = this.store.list((filter || undefined) as JobStatus | undefined).filter((job) => jobVisibleTo(job, scope));
    return visible.slice(0, cap).map(summarise);
  }

  async gc(maxAgeSeconds: number, scope: Caller): Promise<number> {
    return this.store.gc(maxAgeSeconds, scope);
  }

  /**
   * After a crash: jobs left pending or running by a server that is provably gone are failed with a reason
   * (its containers are reaped by the sandbox's own sweep). Jobs whose server cannot be judged from here are
   * failed only when their file has been quiet for an hour (a live owner touches it every 30 s).
   */
  async recover(now: number = Date.now() / 1000): Promise<number> {
    let failed = 0;
    for (const job of this.store.list()) {
      if (isTerminal(job.status) || this.live.has(job.id)) continue;
      const reason = abandonReason(job, now, this.store.modifiedAt(job.id));
      if (!reason) continue;
      if (await this.store.transition(job.id, { kind: 'fail', error: reason })) {
        failed += 1;
        await this.runner.removeJobContainers(job.id).catch((error) => log.debug(`could not remove containers of job ${job.id}: ${describeError(error)}`));
      }
    }
    return failed;
  }

  /** Abort every run this server owns (shutdown); their jobs end as failed by the runs themselves. */
  async shutdown(): Promise<void> {
    const runs = [...this.live.values()];
    for (const run of runs) run.abort.abort();
    await Promise.allSettled(runs.map((r) => r.settled));
  }

  private async run(config: DispatchConfig, id: string, request: DispatchRequest, abort: AbortController): Promise<void> {
    const progress = new ProgressTail((lines) => void this.store.transition(id, { kind: 'progress', lines }).catch(() => undefined));
    const watch = this.watch(id, abort);
    try {
      const result = await this.runner.dispatch(
        config,
        { ...request, signal: abort.signal, onProgress: (event: ProgressEvent) => progress.add(event.message) },
        id,
        async () => (await this.store.transition(id, { kind: 'start' })) !== undefined,
      );
      await progress.flush();
      await this.store.transition(id, { kind: 'finish', result });
      log.info(`job ${id} ${result.success ? 'done' : 'failed'}`, { agent: request.agent });
    } catch (error) {
      log.warn(`job ${id} crashed: ${describeError(error)}`);
      await this.store.transition(id, { kind: 'fail', error: `The dispatch could not run: ${describeError(error)}` }).catch(() => undefined);
    } finally {
      clearInterval(watch);
    }
  }

  /** While this server runs the job: abort when another process cancelled it, and keep its file fresh. */
  private watch(id: string, abort: AbortController): NodeJS.Timeout {
    let lastBeat = Date.now();
    const timer = setInterval(() => {
      try {
        if (this.store.get(id)?.status === 'cancelled') abort.abort();
        if (Date.now() - lastBeat >= HEARTBEAT_INTERVAL_MS) {
          this.store.touch(id);
          lastBeat = Date.now();
        }
      } catch (error) {
        log.debug(`job ${id} watch: ${describeError(error)}`);
      }
    }, WATCH_INTERVAL_MS);
    timer.unref();
    return timer;
  }
}

/** Why a non-terminal job is abandoned, or undefined while it may still be alive. */
export function abandonReason(job: JobRecord, now: number, modifiedAt: number | undefined): string | undefined {
  const state = job.status;
  if (job.server && job.host && ownerIsGone({ [LABELS.server]: job.server, [LABELS.host]: job.host })) {
    const pid = job.server.split(':')[0];
    return `The server that ran this job (pid ${pid}) stopped while it was ${state} (crashed or killed); its container was removed. Re-dispatch if you still need it.`;
  }
  const since = state === 'running' ? (job.started_at ?? job.created_at) : job.created_at;
  const threshold = state === 'running' ? STALE_RUNNING_SECONDS : STALE_PENDING_SECONDS;
  const age = now - since;
  if (age <= threshold || (modifiedAt !== undefined && now - modifiedAt <= threshold)) return undefined;
  return `Abandoned in '${state}' for ${Math.round(age)}s with no sign of its server — likely a server restart. Re-dispatch if still needed.`;
}

function summarise(job: JobRecord): JobSummary {
  const summary: JobSummary = { id: job.id, agent: job.agent, ...(job.owner ? { owner: job.owner } : {}), status: job.status, task: job.task.slice(0, 120), created_at: job.created_at };
  if (job.started_at !== undefined) summary.started_at = job.started_at;
  if (job.completed_at !== undefined) summary.completed_at = job.completed_at;
  if (job.result) {
    summary.success = job.result.success;
    if (job.result.cost_usd !== undefined) summary.cost_usd = job.result.cost_usd;
  }
  if (job.status === 'running' && job.progress?.length) summary.last_progress = job.progress.at(-1)!;
  if (job.error) summary.error_type = job.result?.error_type ?? 'cli_error';
  return summary;
}

/** The last 20 progress lines (300 chars each), written at most once a second, the first one at once. */
export class ProgressTail {
  private lines: string[] = [];
  private lastWrite = 0;
  private pending: NodeJS.Timeout | undefined;
  private writes: Promise<void> = Promise.resolve();

  constructor(private readonly write: (lines: string[]) => void | Promise<void>) {}

  add(line: string): void {
    this.lines.push(line.slice(0, PROGRESS_LINE_CHARS));
    if (this.lines.length > PROGRESS_MAX_LINES) this.lines = this.lines.slice(-PROGRESS_MAX_LINES);
    const wait = this.lastWrite + PROGRESS_WRITE_INTERVAL_MS - Date.now();
    if (wait <= 0) this.persist();
    else this.pending ??= setTimeout(() => this.persist(), wait);
  }

  async flush(): Promise<void> {
    if (this.pending) this.persist();
    await this.writes;
  }

  private persist(): void {
    clearTimeout(this.pending);
    this.pending = undefined;
    this.lastWrite = Date.now();
    const snapshot = [...this.lines];
    this.writes = this.writes.then(() => this.write(snapshot)).catch(() => undefined);
  }
}

function notFound(id: string): AppError {
  return new AppError('JOB_NOT_FOUND', `Job not found: ${id}`, {
    hint: 'Job ids come from dispatch_async (or dispatch(return_ref=true)) on this machine; dispatch_jobs() lists them. A job is gone once dispatch_gc or the retention removed it.',
  });
}
