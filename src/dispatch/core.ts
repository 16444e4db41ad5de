import { join } from 'node:path';
import { configPath, jobsDir, stateDir } from '../config/paths.js';
import { loadConfig, requireConfig } from '../config/load.js';
import type { DispatchConfig } from '../config/schema.js';
import { requireVisibleAgent, visibleConfig } from '../core/access.js';
import { callerUser, LOCAL_CALLER, type Caller } from '../core/caller.js';
import { AppError, describeError } from '../errors.js';
import { logger } from '../log.js';
import { DispatchCache } from './cache.js';
import { runDialogue, type DialogueOutcome } from './dialogue.js';
import type { DispatchRequest, Sandbox } from './dispatcher.js';
import { jobVisibleTo, type JobRequest } from './job-state.js';
import { requireJobId, JobStore } from './job-store.js';
import { JobService } from './jobs.js';
import { AGGREGATE_TASK, aggregationContext, parseDispatches, type ParallelItem } from './parallel.js';
import { agentFingerprint, DEFAULT_SUMMARY_CHARS, fetchedResult, mergeGroupContext, refPayload, requireGroupMember } from './refs.js';
import { pruneStateFiles } from './retention.js';
import { DispatchService } from './service.js';
import type { DispatchResult } from './types.js';

const log = logger('dispatch');

/** The fields every dispatch path takes (the MCP tools' common parameters). */
export interface DispatchInput extends JobRequest {
  timeout_seconds?: number | undefined;
  signal?: AbortSignal | undefined;
  /**
   * Who asks (not `caller`, the free text shown to the agent): decides which agents the call may use, owns its
   * job or ref, is named in the audit record and has cache entries of its own.
   */
  by: Caller;
}

export interface OneShotInput extends DispatchInput {
  return_ref?: boolean;
  summary_chars?: number | undefined;
  group?: string;
}

/** What a long call reports while it runs: the phase it is in (a progress notification resets a client's idle timer). */
export type PhaseReporter = (message: string) => void;

/**
 * The orchestration core: the one place that owns the result cache, the job store and refs, the concurrency
 * budget (through DispatchService) and every dispatch shape (one-shot, session, stream, parallel, dialogue,
 * async). The MCP tools and the CLI are thin adapters over these calls. Config is re-read on every call, so
 * new agents and policy edits apply without a restart.
 */
export class DispatchCore {
  readonly service: DispatchService;
  readonly jobs: JobService;
  private cache: DispatchCache | undefined;

  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    sandbox?: Sandbox,
  ) {
    this.service = new DispatchService(env, sandbox);
    this.jobs = new JobService(new JobStore(jobsDir(env)), this.service);
  }

  config(): DispatchConfig {
    return requireConfig(loadConfig(configPath(this.env)));
  }

  configDir(): string {
    return stateDir(this.env);
  }

  /** The live cache, re-created (emptied) when ttl or max_size change; undefined when caching is off. */
  cacheFor(config: DispatchConfig): DispatchCache | undefined {
    const settings = config.settings.cache;
    if (!settings.enabled) return undefined;
    if (!this.cache || this.cache.ttl !== settings.ttl || this.cache.maxSize !== settings.max_size) {
      this.cache = new DispatchCache(settings.ttl, settings.max_size);
    }
    return this.cache;
  }

  /** Drop an agent's cached results after a config change, without re-reading a config that may be broken. */
  invalidateAgent(name: string): void {
    this.cache?.invalidateAgent(name);
  }

  /** The agent was removed: nothing of it stays cached or pre-started. */
  async forgetAgent(name: string): Promise<void> {
    this.invalidateAgent(name);
    await this.service.forgetAgent(name);
  }

  /** `dispatch`: group context, cache, and `return_ref` (the full result stays behind a ref). */
  async dispatch(input: OneShotInput, config: DispatchConfig = this.config(), onPhase?: PhaseReporter): Promise<Record<string, unknown>> {
    const agent = requireVisibleAgent(config, input.agent, input.by);
    const group = input.group ?? '';
    if (group) requireGroupMember(visibleConfig(config, input.by), group, input.agent);
    const context = mergeGroupContext(config, group, input.context ?? '');
    const cache = this.cacheFor(config);
    const key = {
      user: callerUser(input.by) ?? '',
      agent: input.agent,
      task: input.task,
      context,
      caller: input.caller ?? '',
      goal: input.goal ?? '',
      response_format: input.response_format ?? '',
      fingerprint: agentFingerprint(agent, config.settings, this.configDir()),
    };
    const hit = cache?.get(key) as DispatchResult | undefined;
    let result: DispatchResult;
    if (hit) {
      onPhase?.(`Cache hit for ${input.agent} — returning cached result`);
      result = hit;
    } else {
      onPhase?.(`Dispatching to ${input.agent}: ${input.task.slice(0, 80)}...`);
      result = await this.service.dispatch(config, request({ ...input, context }));
      cache?.put(key, { ...result });
    }
    const body = input.return_ref ? await this.storeRef({ ...input, context }, result) : { ...result };
    return hit ? { ...body, cached: true } : body;
  }

  /** `dispatch_session`: never cached; an empty session id starts a new session. */
  async session(input: DispatchInput & { session_id?: string }, config: DispatchConfig = this.config()): Promise<DispatchResult> {
    requireVisibleAgent(config, input.agent, input.by);
    return this.service.dispatch(config, { ...request(input), sessionId: input.session_id || undefined });
  }

  /** `dispatch_stream`: each progress event goes to `onProgress` as it happens. */
  async stream(input: DispatchInput, onProgress: NonNullable<DispatchRequest['onProgress']>, config: DispatchConfig = this.config()): Promise<DispatchResult> {
    requireVisibleAgent(config, input.agent, input.by);
    return this.service.dispatch(config, { ...request(input), onProgress });
  }

  /**
   * `dispatch_parallel`: every item validated before any starts, all through the one budget, results in input
   * order; an item that throws becomes a cli_error result. `aggregate` then synthesises every result.
   */
  async parallel(dispatches: string, aggregate: string, options: { by: Caller; signal?: AbortSignal; onPhase?: PhaseReporter }): Promise<unknown> {
    const { by } = options;
    const { config, items } = parseDispatches(dispatches, () => this.config(), by);
    if (aggregate) requireVisibleAgent(config, aggregate, by);
    let finished = 0;
    options.onPhase?.(`dispatch_parallel: ${items.length} dispatch(es) started (max_concurrency ${config.settings.max_concurrency})`);
    const results = await Promise.all(
      items.map(async (item) => {
        const one = await this.parallelItem({ ...item, by, signal: options.signal }, config);
        finished += 1;
        options.onPhase?.(`dispatch_parallel: ${finished}/${items.length} finished (${item.agent}: ${one['success'] === true ? 'ok' : 'failed'})`);
        return one;
      }),
    );
    if (!aggregate) return results;
    options.onPhase?.(`dispatch_parallel: aggregating ${results.length} result(s) with ${aggregate}`);
    const aggregated = await this.service.dispatch(
      config,
      request({ agent: aggregate, task: AGGREGATE_TASK, context: aggregationContext(results), caller: 'dispatch_parallel', goal: 'aggregate parallel dispatch results', signal: options.signal, by }),
    );
    return { individual_results: results, aggregated };
  }

  /** `dispatch_dialogue`: two agents alternate, each in its own session, until one says [RESOLVED]. */
  async dialogue(
    options: { requester: string; responder: string; topic: string; max_rounds: number; by: Caller; signal?: AbortSignal; onPhase?: PhaseReporter },
  ): Promise<DialogueOutcome> {
    const config = this.config();
    requireVisibleAgent(config, options.requester, options.by);
    requireVisibleAgent(config, options.responder, options.by);
    return runDialogue({ requester: options.requester, responder: options.responder, topic: options.topic, maxRounds: options.max_rounds }, (turn) => {
      options.onPhase?.(`dispatch_dialogue: round ${turn.round}, ${turn.role} ${turn.agent} is answering`);
      return this.service.dispatch(config, {
        ...request({ agent: turn.agent, task: turn.task, caller: turn.caller, goal: turn.goal, signal: options.signal, by: options.by }),
        sessionId: turn.sessionId,
      });
    });
  }

  /** `dispatch_async`: a pending job that runs in the background; returns at once. */
  async startAsync(input: DispatchInput): Promise<{ job_id: string; status: string; agent: string }> {
    const config = this.config();
    requireVisibleAgent(config, input.agent, input.by);
    const { signal: _ignored, ...rest } = input;
    const job = await this.jobs.start(
      config,
      { agent: input.agent, task: input.task, context: input.context, caller: input.caller, goal: input.goal, response_format: input.response_format, owner: callerUser(input.by) },
      request(rest),
    );
    return { job_id: job.id, status: job.status, agent: job.agent };
  }

  /** `fetch_result`: a stored result (cut to `maxChars` when asked), or the job record while it has none. Another user's ref is not found. */
  fetch(ref: string, maxChars: number, by: Caller): Record<string, unknown> {
    const id = requireJobId(ref);
    const job = this.jobs.store.get(id);
    if (!job || !jobVisibleTo(job, by)) {
      throw new AppError('JOB_NOT_FOUND', `Ref not found: ${id}`, {
        hint: 'Refs come from dispatch(return_ref=true) or dispatch_async on this machine; dispatch_jobs() lists them. A ref is kept until dispatch_gc or the retention removes it.',
      });
    }
    return job.result ? fetchedResult(job.result, maxChars) : { ...job };
  }

  /**
   * Server start, best effort: remove containers of a server that died, fail the jobs it left running, and
   * apply `settings.job_retention_days`. A broken config skips retention (never guesses), not recovery.
   */
  async startup(): Promise<void> {
    await this.service.startup();
    try {
      const failed = await this.jobs.recover();
      if (failed > 0) log.info(`marked ${failed} job(s) failed: their server stopped before they finished`);
    } catch (error) {
      log.warn(`job recovery skipped: ${describeError(error)}`);
    }
    let days: number | undefined;
    try {
      days = this.config().settings.job_retention_days;
      if (days > 0) {
        const purged = await this.jobs.gc(days * 86_400, LOCAL_CALLER);
        if (purged > 0) log.info(`removed ${purged} finished job(s) older than ${days} day(s) (settings.job_retention_days)`);
      }
    } catch (error) {
      log.debug(`job retention skipped: ${describeError(error)}`);
    }
    try {
      const pruned = await pruneStateFiles({ patchesDir: join(this.configDir(), 'patches'), jobs: this.jobs.store, retentionDays: days ?? 0 });
      if (pruned.patches + pruned.jobs > 0) log.info(`pruned ${pruned.patches} old patch file(s) and ${pruned.jobs} finished job(s) over the cap`);
    } catch (error) {
      log.debug(`pruning skipped: ${describeError(error)}`);
    }
  }

  async shutdown(): Promise<void> {
    await this.jobs.shutdown();
    await this.service.shutdown();
  }

  private async parallelItem(item: ParallelItem & Pick<DispatchInput, 'by' | 'signal'>, config: DispatchConfig): Promise<Record<string, unknown>> {
    try {
      return await this.dispatch(item, config);
    } catch (error) {
      return { agent: item.agent, success: false, result: '', error: describeError(error), error_type: 'cli_error' };
    }
  }

  private async storeRef(input: OneShotInput & { context: string }, result: DispatchResult): Promise<Record<string, unknown>> {
    const job = await this.jobs.store.createCompleted({ agent: input.agent, task: input.task, context: input.context, caller: input.caller, goal: input.goal, owner: callerUser(input.by), result });
    return refPayload(job.id, result, input.summary_chars ?? DEFAULT_SUMMARY_CHARS);
  }
}

function request(input: DispatchInput): DispatchRequest {
  return {
    user: callerUser(input.by),
    agent: input.agent,
    task: input.task,
    context: input.context,
    caller: input.caller,
    goal: input.goal,
    responseFormat: input.response_format,
    timeoutSeconds: input.timeout_seconds,
    signal: input.signal,
  };
}
