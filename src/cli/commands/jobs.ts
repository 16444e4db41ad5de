import { LOCAL_CALLER } from '../../core/caller.js';
import { DispatchCore } from '../../dispatch/core.js';
import { isValidJobId, JOB_STATUSES, type JobRecord, type JobStatus } from '../../dispatch/job-store.js';
import type { JobService } from '../../dispatch/jobs.js';
import { AppError, describeError } from '../../errors.js';
import { LABELS } from '../../sandbox/owner.js';
import { int, parse, str, UsageError } from '../args.js';
import { out, style, terminalSafe } from '../output.js';
import type { CommandSpec } from '../spec.js';

const JOB_ID_ARG = { name: 'ID', description: 'the job id (32 hex characters) dispatch_async returned' };
const RESULT_CHARS = 2000;
const PROGRESS_LINES = 10;

/** The job service over AGENT_DISPATCH_JOBS_DIR (else the jobs directory beside agents.yaml), as the server builds it. */
export function cliJobs(env: NodeJS.ProcessEnv = process.env): JobService {
  return new DispatchCore(env).jobs;
}

export const jobsSpec: CommandSpec = {
  name: 'jobs',
  summary: 'List async jobs (dispatch_async), most recent first',
  args: [],
  options: {
    status: { type: 'string', value: 'STATUS', description: `only jobs in this status: ${JOB_STATUSES.join(', ')}` },
    limit: { type: 'string', value: 'N', default: '20', description: 'show at most N jobs' },
  },
};

export const jobSpec: CommandSpec = {
  name: 'job',
  summary: "Show one job: its status, times, progress tail and result",
  args: [JOB_ID_ARG],
  options: {},
};

export const cancelSpec: CommandSpec = {
  name: 'cancel',
  summary: "Cancel a pending or running job; a running job's container is killed and removed",
  args: [JOB_ID_ARG],
  options: {},
  notes: ['A job that already finished is left as it is (exit 0).'],
};

export function jobsCommand(argv: string[], jobs: JobService = cliJobs()): number {
  const p = parse(jobsSpec, argv);
  const status = str(p, 'status');
  if (status !== undefined && !(JOB_STATUSES as readonly string[]).includes(status)) {
    throw new UsageError(`--status must be one of ${JOB_STATUSES.join(', ')} (got '${terminalSafe(status.slice(0, 40))}')`);
  }
  const limit = int(p, 'limit')!;
  if (limit < 1) throw new UsageError(`--limit must be at least 1 (got ${limit})`);
  const listed = jobs.list(status ?? '', limit, LOCAL_CALLER);
  if (listed.length === 0) {
    out(status ? `No ${status} jobs found.` : 'No jobs found.');
    return 0;
  }
  const now = Date.now() / 1000;
  for (const job of listed) {
    const task = terminalSafe(job.task.replace(/\s+/g, ' ')).slice(0, 60);
    const owner = job.owner ? `  (${terminalSafe(job.owner)})` : '';
    out(`${job.id}  ${statusLabel(job.status, 9)}  ${style.bold(terminalSafe(job.agent))}${owner}  ${age(now - job.created_at).padStart(4)}  ${task}`);
  }
  return 0;
}

export function jobCommand(argv: string[], jobs: JobService = cliJobs()): number {
  const id = jobIdOf(parse(jobSpec, argv));
  const job = jobs.status(id, LOCAL_CALLER);
  const now = Date.now() / 1000;
  const row = (label: string, value: string) => out(`  ${`${label}:`.padEnd(12)}${value}`);
  out(`${job.id} [${statusLabel(job.status)}]`);
  row('agent', terminalSafe(job.agent));
  if (job.owner) row('owner', terminalSafe(job.owner));
  row('task', terminalSafe(job.task.slice(0, 200)));
  for (const [label, at] of [['created', job.created_at], ['started', job.started_at], ['completed', job.completed_at]] as const) {
    if (at !== undefined) row(label, `${age(now - at)} ago`);
  }
  if (job.error) row('error', style.red(terminalSafe(job.error.slice(0, 300))));
  if (job.progress?.length) {
    out('  progress:');
    for (const line of job.progress.slice(-PROGRESS_LINES)) out(`    ${terminalSafe(line)}`);
  }
  printResult(job);
  return 0;
}

function printResult(job: JobRecord): void {
  const result = job.result;
  if (!result) return;
  const row = (label: string, value: string) => out(`  ${`${label}:`.padEnd(12)}${value}`);
  row('success', String(result.success));
  if (result.cost_usd !== undefined) row('cost_usd', `$${result.cost_usd.toFixed(4)}`);
  if (result.budget_exceeded) row('budget', style.yellow('EXCEEDED'));
  if (!result.result) return;
  out('  result:');
  out(terminalSafe(result.result.slice(0, RESULT_CHARS)));
  if (result.result.length > RESULT_CHARS) out(`… truncated (${result.result.length} chars total)`);
}

/**
 * Unlike the original (which refused a running job: its subprocess belonged to the server), a running job is
 * cancelled here too: its container is found by the job label on the engine and killed, whoever started it.
 */
export async function cancelCommand(argv: string[], jobs: JobService = cliJobs()): Promise<number> {
  const id = jobIdOf(parse(cancelSpec, argv));
  let answer;
  try {
    answer = await jobs.cancel(id, LOCAL_CALLER);
  } catch (error) {
    if (error instanceof AppError || jobs.status(id, LOCAL_CALLER).status !== 'cancelled') throw error;
    // Cancelled, but the engine could not remove its container: the server running the job stops it on its own.
    out(`Cancelled: ${id}`);
    const unreachable = ['ENOENT', 'ECONNREFUSED', 'EACCES'].includes((error as NodeJS.ErrnoException).code ?? '');
    throw new AppError(unreachable ? 'DOCKER_UNAVAILABLE' : 'SANDBOX_FAILED', `The job is cancelled, but its container could not be removed: ${describeError(error)}`, {
      hint: `The server running it stops it within seconds. To remove it by hand: docker rm -f $(docker ps -aq --filter label=${LABELS.job}=${id})`,
      cause: error,
    });
  }
  if (answer.outcome === 'already_terminal') out(answer.message);
  else if (answer.outcome === 'cancelled_running') out(`Cancelled: ${id} (it was running; its container was killed and removed)`);
  else out(`Cancelled: ${id}`);
  return 0;
}

/** The original's message and exit 1, checked before anything touches the jobs directory. */
function jobIdOf(p: ReturnType<typeof parse>): string {
  const id = p.positionals[0]!;
  const shown = terminalSafe(id.slice(0, 80));
  if (!isValidJobId(id)) throw new AppError('INVALID_INPUT', `Invalid job id: '${shown}' (expected 32 hex chars)`, { hint: "Run 'agent-dispatch jobs' to list the jobs." });
  return id;
}

const STATUS_COLOUR: Record<JobStatus, (t: string) => string> = {
  pending: (t) => style.yellow(t),
  running: (t) => style.cyan(t),
  done: (t) => style.green(t),
  failed: (t) => style.red(t),
  cancelled: (t) => style.yellow(t),
};

function statusLabel(status: JobStatus, width = 0): string {
  return (STATUS_COLOUR[status] ?? ((t: string) => t))(status.padEnd(width));
}

/** `3s`, `5m`, `2h`, `4d`, as the original printed ages. */
export function age(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}
