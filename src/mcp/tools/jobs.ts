import { z } from 'zod';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { AppError } from '../../errors.js';
import { boundedString } from '../../limits.js';
import { guarded, jsonResult } from '../envelope.js';
import type { ServerContext } from '../context.js';
import { withProgress } from '../progress.js';
import { dispatchFields } from './dispatch-fields.js';

const jobId = boundedString('job_id', 'job_id').describe('The 32-hex job id dispatch_async returned');
const SECONDS_PER_DAY = 86_400;

/** The async job tools: start, look, wait, cancel, list and purge (one store, shared with return_ref refs). */
export function registerJobTools(server: McpServer, ctx: ServerContext): void {
  const jobs = () => ctx.dispatcher.jobs;

  server.registerTool(
    'dispatch_async',
    {
      description:
        'Start a dispatch in the background and return at once with a job_id. Poll dispatch_status (state + live progress tail), block with dispatch_wait, stop it with dispatch_cancel (its container is killed). Never cached. The job survives the call; its result is kept until dispatch_gc or the retention removes it.',
      inputSchema: dispatchFields,
    },
    (args) => guarded('dispatch_async', async () => jsonResult(await ctx.dispatcher.startAsync({ ...args, by: ctx.caller }))),
  );

  server.registerTool(
    'dispatch_status',
    {
      description: "A job's record without waiting: status (pending, running, done, failed, cancelled), progress (the last 20 lines of what the agent is doing), and the result once it has one.",
      inputSchema: { job_id: jobId },
    },
    (args) => guarded('dispatch_status', () => jsonResult(jobs().status(args.job_id, ctx.caller))),
  );

  server.registerTool(
    'dispatch_wait',
    {
      description:
        'Wait until a job finishes (or timeout_seconds, clamped to 1..3600, pass) and return its record; on timeout the record carries timed_out_waiting: true and the job keeps running. Sends a progress notification with the latest progress line at least every 30 s.',
      inputSchema: { job_id: jobId, timeout_seconds: z.number().default(60).describe('How long to wait, clamped to 1..3600 s') },
    },
    (args, extra) =>
      guarded('dispatch_wait', () =>
        withProgress(extra, async (progress) => {
          let last = '';
          progress.phase(`dispatch_wait: waiting for job ${args.job_id.slice(0, 8)}`);
          const job = await jobs().wait(args.job_id, args.timeout_seconds, ctx.caller, {
            signal: extra.signal,
            onTick: (j) => {
              const line = `dispatch_wait: job ${j.id.slice(0, 8)} ${j.status}${j.progress?.length ? `: ${j.progress.at(-1)}` : ''}`;
              if (line !== last) progress.phase((last = line));
            },
          });
          return jsonResult(job);
        }),
      ),
  );

  server.registerTool(
    'dispatch_cancel',
    {
      description: 'Cancel a job: a pending one never starts; a running one is marked cancelled and its container is killed and removed (also when another agent-dispatch process started it).',
      inputSchema: { job_id: jobId },
    },
    (args) => guarded('dispatch_cancel', async () => jsonResult(await jobs().cancel(args.job_id, ctx.caller))),
  );

  server.registerTool(
    'dispatch_jobs',
    {
      description: "List jobs (and stored refs), most recent first: id, agent, status, task (first 120 chars), times, success, cost, a running job's last progress line.",
      inputSchema: {
        status: z.string().max(40).default('').describe("pending, running, done, failed, cancelled, or '' for all"),
        limit: z.number().default(50).describe('At most this many, clamped to 1..1000'),
      },
    },
    (args) => guarded('dispatch_jobs', () => jsonResult(jobs().list(args.status, args.limit, ctx.caller))),
  );

  server.registerTool(
    'dispatch_gc',
    {
      description: 'Delete finished jobs (done, failed, cancelled) older than max_age_days; pending and running jobs are never touched.',
      inputSchema: { max_age_days: z.number().default(7).describe('Age threshold in days (> 0)') },
    },
    (args) =>
      guarded('dispatch_gc', async () => {
        if (!(args.max_age_days > 0)) throw new AppError('INVALID_INPUT', 'max_age_days must be > 0', { hint: 'Pass a positive number of days, e.g. 7; the CLI `agent-dispatch gc --all` purges every finished job on purpose.' });
        const seconds = args.max_age_days * SECONDS_PER_DAY;
        if (!Number.isFinite(seconds)) throw new AppError('INVALID_INPUT', 'max_age_days is too large (non-finite)', { hint: 'Pass a number of days below 1e300.' });
        return jsonResult({ purged: await jobs().gc(seconds, ctx.caller), max_age_days: args.max_age_days });
      }),
  );
}
