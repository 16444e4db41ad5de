import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/atomic-write.js';
import { warmPoolConfig, type AgentConfig, type DispatchConfig } from '../config/schema.js';
import { AppError, describeError, isAppError } from '../errors.js';
import { effectiveBudget } from '../policy/claude-args.js';
import type { CompiledSandbox } from '../policy/compile.js';
import { blockingFindings } from '../policy/lint.js';
import { resolveAgentPolicy } from '../policy/resolve.js';
import { imageBuildHint } from '../sandbox/image.js';
import type { SandboxOutcome, SandboxRun, WarmRun } from '../sandbox/runner.js';
import { BRIDGE_ENV } from '../gateway/protocol.js';
import { logger } from '../log.js';
import { LABEL_PREFIX } from '../policy/layout.js';
import { appendAudit, resultFacts, summariseEgress, type AuditRecord } from './audit.js';
import { claudeCommand, isSessionFlagRejection } from './command.js';
import { OVERLAY_ENGINE_HINT, OverlayLayer, skippedNote, type OverlayChanges, type OverlayEngine } from './overlay.js';
import { buildPrompt } from './prompt.js';
import { withUserSessions } from './user-sessions.js';
import { currentDepth, errorResult, hasResultEvent, recursionResult, resultFromRun, type PolicyBounds, type ResultContext } from './result.js';
import { progressFromLine, type ProgressEvent } from './stream-events.js';
import { makeResult, type DispatchResult } from './types.js';

const log = logger('dispatch');

/** The narrow view of the sandbox the dispatcher needs; tests can hand in a fake one. */
export interface Sandbox {
  run(run: SandboxRun): Promise<SandboxOutcome>;
  /** Kill and remove every container of a job, whichever process started it (cancel). */
  removeJobContainers?(job: string): Promise<number>;
  /** `repo: overlay` needs it (the real runner has it); without it an overlay dispatch is refused. */
  overlay?: OverlayEngine;
}

export interface DispatchRequest {
  /** The HTTP user who asked (the audit record names them); absent for the local user. */
  user?: string | undefined;
  agent: string;
  task: string;
  context?: string | undefined;
  caller?: string | undefined;
  goal?: string | undefined;
  responseFormat?: string | undefined;
  /** Resume this Claude session (`--resume`); without it a fresh session id is pre-assigned. */
  sessionId?: string | undefined;
  /** A one-off timeout (clamped to 10..7200 s, then capped by the policy); 0 or absent keeps the agent's. */
  timeoutSeconds?: number | undefined;
  onProgress?: ((event: ProgressEvent) => void) | undefined;
  signal?: AbortSignal | undefined;
}

export interface DispatchDeps {
  config: DispatchConfig;
  /** Where user policies live (beside agents.yaml). */
  configDir: string;
  /** The server's environment: depth counter, env.pass values, credentials for `credentials: env`. */
  env: Readonly<Record<string, string | undefined>>;
  sandbox: Sandbox;
  /** Job id for container labels (32 hex chars). */
  job?: string;
}

export const MIN_TIMEOUT_OVERRIDE = 10;
export const MAX_TIMEOUT_OVERRIDE = 7200;

export function newJobId(): string {
  return randomUUID().replace(/-/g, '');
}

/** Apply a per-call timeout to a copy of the agent; the shared config is never mutated. */
export function withTimeoutOverride(agent: AgentConfig, seconds: number | undefined): AgentConfig {
  if (!seconds || !Number.isFinite(seconds) || seconds <= 0) return agent;
  const timeout = Math.min(MAX_TIMEOUT_OVERRIDE, Math.max(MIN_TIMEOUT_OVERRIDE, Math.trunc(seconds)));
  return { ...agent, timeout };
}

/**
 * One sandboxed dispatch. Expected failures come back as a DispatchResult with an error_type, never as an
 * exception; the only throw is an unknown agent (the caller validates names first).
 */
export async function runDispatch(deps: DispatchDeps, request: DispatchRequest): Promise<DispatchResult> {
  const started = Date.now();
  const job = deps.job ?? newJobId();
  const trail: Trail = {};
  let result = await dispatchOnce(deps, request, job, trail);
  if (trail.checked?.sandbox.network.mode === 'gateway' && trail.outcome) result = makeResult({ ...result, egress: summariseEgress(trail.outcome.egress) });
  try {
    appendAudit(deps.configDir, auditRecord(request, job, started, trail, result));
  } catch (error) {
    log.warn(`could not write the audit record of a dispatch to '${request.agent}': ${describeError(error)}`);
  }
  return result;
}

/** What a dispatch got as far as, for its audit record. */
interface Trail {
  checked?: Checked;
  outcome?: SandboxOutcome;
}

async function dispatchOnce(deps: DispatchDeps, request: DispatchRequest, job: string, trail: Trail): Promise<DispatchResult> {
  const checked = preflight(deps, request);
  if ('success' in checked) return checked;
  trail.checked = checked;
  if (!checked.overlay) return runChecked(deps, request, job, trail, checked);
  const layer = await openOverlay(deps, checked, job, request.agent);
  if (!(layer instanceof OverlayLayer)) return layer;
  try {
    const mounted = { ...checked, sandbox: { ...checked.sandbox, container: layer.spec(checked.sandbox.container) }, layer };
    return withOverlayHint(await runChecked(deps, request, job, trail, mounted));
  } finally {
    await layer.close();
  }
}

async function runChecked(deps: DispatchDeps, request: DispatchRequest, job: string, trail: Trail, checked: Checked): Promise<DispatchResult> {
  const plan = planRun(deps, request, checked);
  if ('success' in plan) return plan;
  const run = (sessionId: string | undefined) =>
    runInSandbox(deps, checked.sandbox, {
      job,
      cmd: plan.command(sessionId),
      stdin: plan.prompt,
      agent: request.agent,
      // A fresh session's argv is known before its prompt: a pre-started sandbox may serve it (not an overlay: its mount is the dispatch's own).
      ...(sessionId && !checked.overlay ? { warm: { command: (id: string) => plan.command(id), pool: warmPoolConfig(deps.config.settings), ...(request.user !== undefined ? { lane: request.user } : {}) } } : {}),
      ...(request.onProgress ? { onProgress: request.onProgress } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
    });

  let outcome = await run(plan.freshSessionId);
  if (!('stdoutLines' in outcome)) return outcome;
  trail.outcome = outcome;
  let ctx = plan.ctx;
  if (outcome.sessionId) ctx = { ...ctx, sessionFallback: outcome.sessionId };
  if (plan.freshSessionId && !hasResult(outcome) && isSessionFlagRejection(outcome.stderr)) {
    // An old claude that does not know --session-id: retry once without it (the original's self-heal).
    const first = outcome;
    outcome = await run(undefined);
    if (!('stdoutLines' in outcome)) return outcome;
    // Both containers went through the gateway: the audit keeps the decisions of both (lost if either was lost).
    trail.outcome = 'egress' in first ? { ...outcome, egress: first.egress && outcome.egress ? [...first.egress, ...outcome.egress] : undefined } : outcome;
    const { sessionFallback: _dropped, ...rest } = ctx;
    ctx = rest;
  }
  return interpret(outcome, ctx, checked, join(deps.configDir, 'patches', `${job}.patch`));
}

interface Checked {
  agent: AgentConfig;
  sandbox: CompiledSandbox;
  overlay: boolean;
  /** The overlay mounted for this dispatch (its patch is read back after the run). */
  layer?: OverlayLayer;
  /** What the agent's policy lets `agent-dispatch update` grant, for the permission hints. */
  policy: PolicyBounds;
}

/** Everything that can refuse a dispatch before a container exists, in the original's order. */
function preflight(deps: DispatchDeps, request: DispatchRequest): Checked | DispatchResult {
  const { config } = deps;
  const name = request.agent;
  const configured = config.agents[name];
  if (!configured) throw new AppError('AGENT_NOT_FOUND', `Unknown agent: '${name}'`);
  const depth = currentDepth(deps.env);
  if (depth >= config.settings.max_dispatch_depth) return recursionResult(name, depth, config.settings.max_dispatch_depth);
  const agent = withTimeoutOverride(configured, request.timeoutSeconds);
  if (!isDirectory(agent.directory)) {
    return errorResult(name, 'not_found', `Directory does not exist: ${agent.directory}`, {
      hint: `Re-add it with its directory (agent-dispatch remove ${name} && agent-dispatch add ${name} <directory>).`,
    });
  }
  const compiled = compileFor(deps, name, agent);
  if ('error' in compiled) return compiled.error;
  const sandbox = withUserSessions(compiled.sandbox, request.user);
  return { agent, sandbox, overlay: sandbox.mounts.some((m) => m.mode === 'overlay'), policy: compiled.policy };
}

interface Plan {
  prompt: string;
  freshSessionId: string | undefined;
  command: (sessionId: string | undefined) => string[];
  ctx: ResultContext;
}

function planRun(deps: DispatchDeps, request: DispatchRequest, checked: Checked): Plan | DispatchResult {
  const name = request.agent;
  const resume = request.sessionId || undefined;
  const freshSessionId = resume ? undefined : randomUUID();
  const budget = effectiveBudget(checked.agent, deps.config.settings);
  const command = (sessionId: string | undefined): string[] => {
    return claudeCommand({ flags: checked.sandbox.claudeArgs, ...(resume ? { resume } : {}), ...(sessionId ? { sessionId } : {}) });
  };
  try {
    command(freshSessionId);
  } catch (error) {
    return errorResult(name, 'cli_error', describeError(error), isAppError(error) && error.hint ? { hint: error.hint } : {});
  }
  return {
    prompt: buildPrompt({
      task: request.task,
      ...optional('context', request.context),
      ...optional('caller', request.caller),
      ...optional('goal', request.goal),
      ...optional('responseFormat', request.responseFormat),
    }),
    freshSessionId,
    command,
    ctx: {
      agent: name,
      ...optional('sessionFallback', resume ?? freshSessionId),
      ...(budget !== undefined ? { budget } : {}),
      ...optional('responseFormat', request.responseFormat),
      timeoutSeconds: checked.sandbox.timeoutSeconds,
      timeoutCappedByPolicy: checked.sandbox.timeoutSeconds < (checked.agent.timeout || deps.config.settings.default_timeout),
      resumed: resume !== undefined,
      policy: checked.policy,
    },
  };
}

async function interpret(outcome: SandboxOutcome, ctx: ResultContext, checked: Checked, patchFile: string): Promise<DispatchResult> {
  const name = ctx.agent;
  // A result that arrived before the cancel is kept (it is paid for and complete).
  if (outcome.sessionQuota) return sessionQuotaResult(name, outcome.sessionQuota);
  if (outcome.cancelled && !hasResult(outcome)) return cancelledResult(name, true);
  const notStarted = claudeDidNotStart(name, checked.sandbox, outcome);
  if (notStarted) return notStarted;
  const result = noteTruncation(resultFromRun(outcome, ctx), outcome);
  if (!checked.layer) return result;
  let changes: OverlayChanges;
  try {
    changes = await checked.layer.collect();
  } catch (error) {
    // The answer is kept, but the dispatch failed: what the agent changed could not be returned.
    const hint = isAppError(error) && error.hint ? error.hint : 'Nothing was applied to the repo; retry the dispatch.';
    return makeResult({ ...result, success: false, error: describeError(error), error_type: 'sandbox', hint });
  }
  const note = skippedNote(changes.skipped);
  return withPatch(note ? makeResult({ ...result, hint: result.hint ? `${result.hint} ${note}` : note }) : result, changes.patch, patchFile);
}

/** Make this dispatch's overlay, or the sandbox error that says why it cannot have one. */
async function openOverlay(deps: DispatchDeps, checked: Checked, job: string, name: string): Promise<OverlayLayer | DispatchResult> {
  const engine = deps.sandbox.overlay;
  const repo = checked.agent.directory;
  if (!engine) return errorResult(name, 'sandbox', `This sandbox cannot mount a copy-on-write overlay of ${repo}; nothing was started.`, { hint: OVERLAY_ENGINE_HINT });
  try {
    return await OverlayLayer.create({ engine, stateDir: deps.configDir, job, repo, image: checked.sandbox.container.Image, labels: checked.sandbox.container.Labels });
  } catch (error) {
    return errorResult(name, 'sandbox', describeError(error), { hint: isAppError(error) && error.hint ? error.hint : OVERLAY_ENGINE_HINT });
  }
}

/** An engine that could not mount the overlay says so in engine words; the hint says what the overlay needs. */
function withOverlayHint(result: DispatchResult): DispatchResult {
  if (result.error_type !== 'sandbox' || !/\bmount/i.test(result.error ?? '') || result.hint === OVERLAY_ENGINE_HINT) return result;
  return makeResult({ ...result, hint: OVERLAY_ENGINE_HINT });
}

/**
 * Inline patches up to this many characters (as UTF-8 text: a binary or non-UTF-8 hunk reads oddly there);
 * patch_file always holds the exact bytes. patch_truncated: the inline patch was cut.
 */
const PATCH_INLINE_MAX = 100_000;

function withPatch(result: DispatchResult, patch: Buffer, file: string): DispatchResult {
  if (patch.length === 0) return result;
  const text = patch.toString('utf8');
  const truncated = text.length > PATCH_INLINE_MAX;
  const inline = { ...result, patch: text.slice(0, PATCH_INLINE_MAX), ...(truncated ? { patch_truncated: true } : {}) };
  try {
    writeFileAtomic(file, patch);
    return makeResult({ ...inline, patch_file: file });
  } catch (error) {
    const note = `The patch could not be saved to ${file} (${describeError(error)}); only the inline part is returned.`;
    return makeResult({ ...inline, hint: result.hint ? `${result.hint} ${note}` : note });
  }
}

function compileFor(deps: DispatchDeps, name: string, agent: AgentConfig): { sandbox: CompiledSandbox; policy: PolicyBounds } | { error: DispatchResult } {
  const agents = Object.assign(Object.create(null) as Record<string, AgentConfig>, deps.config.agents, { [name]: agent });
  const report = resolveAgentPolicy({ ...deps.config, agents }, name, { configDir: deps.configDir, hostEnv: deps.env, depth: currentDepth(deps.env) });
  const errors = blockingFindings(report.findings);
  if (!report.compiled || errors.length > 0 || report.load.kind !== 'ok') {
    const detail = errors.map((f) => `${f.code}: ${f.message}`).join('; ') || 'the policy could not be compiled';
    return {
      error: errorResult(name, 'policy', `Agent '${name}' has an unusable sandbox policy '${agent.policy}': ${detail}`, {
        hint: `Nothing was started. See agent-dispatch policy check --agent ${name}, fix the policy file, or point the agent at a working policy (agent-dispatch update ${name} --policy NAME|PATH).`,
      }),
    };
  }
  const { tools } = report.load.policy;
  return {
    sandbox: report.compiled,
    policy: { name: agent.policy, toolsAllow: tools.allow, toolsDeny: tools.deny, modeCap: tools.permission_mode },
  };
}

interface InSandbox {
  job: string;
  cmd: string[];
  warm?: WarmRun;
  stdin: string;
  agent: string;
  onProgress?: (event: ProgressEvent) => void;
  signal?: AbortSignal;
}

async function runInSandbox(deps: DispatchDeps, sandbox: CompiledSandbox, run: InSandbox): Promise<SandboxOutcome | DispatchResult> {
  const onProgress = run.onProgress;
  try {
    return await deps.sandbox.run({
      spec: sandbox.container,
      cmd: run.cmd,
      stdin: run.stdin,
      managedSettings: sandbox.managedSettings,
      job: run.job,
      timeoutMs: sandbox.timeoutSeconds * 1000,
      ...(onProgress ? { onStdoutLine: (line: string) => progressFromLine(line).forEach(onProgress) } : {}),
      keepLine: keptLines(),
      ...(run.signal ? { signal: run.signal } : {}),
      ...(sandbox.network.mode === 'gateway' ? { egressAllow: sandbox.network.allow } : {}),
      ...(run.warm ? { warm: run.warm } : {}),
    });
  } catch (error) {
    if (!isAppError(error)) throw error;
    if (error.code === 'SANDBOX_CANCELLED') return cancelledResult(run.agent, false);
    return errorResult(run.agent, 'sandbox', error.message, {
      hint: error.hint ?? 'Run agent-dispatch doctor: it checks the engine, the image and each policy.',
    });
  }
}

function auditRecord(request: DispatchRequest, job: string, started: number, trail: Trail, result: DispatchResult): AuditRecord {
  const { checked, outcome } = trail;
  const sandbox = checked?.sandbox;
  const gateway = sandbox?.network.mode === 'gateway';
  return {
    time: new Date(started).toISOString(),
    job,
    ...optional('user', request.user),
    agent: request.agent,
    ...optional('caller', request.caller),
    ...optional('goal', request.goal),
    ...(checked && sandbox
      ? {
          policy: { name: checked.agent.policy, hash: sandbox.container.Labels[`${LABEL_PREFIX}.policy-hash`] ?? '' },
          image: { name: sandbox.container.Image, ...(outcome ? { id: outcome.imageId } : {}) },
          mounts: sandbox.mounts.map((m) => ({ source: m.source, target: m.target, mode: m.mode })),
          env_names: [...sandbox.envNames, ...(gateway ? Object.values(BRIDGE_ENV) : [])].sort(),
          network: sandbox.network.mode,
        }
      : {}),
    ...(gateway && outcome ? (outcome.egress ? { egress: outcome.egress } : { egress_lost: true }) : {}),
    ...(outcome ? { exit_code: outcome.exitCode } : {}),
    ...resultFacts(result),
    duration_ms: Date.now() - started,
  };
}

/** Killed for writing past its session volume's quota; the volume was pruned back under it. */
function sessionQuotaResult(agent: string, quota: NonNullable<SandboxOutcome['sessionQuota']>): DispatchResult {
  const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
  return errorResult(agent, 'sandbox', `Dispatch to '${agent}' was stopped: its session volume ${quota.volume} passed its ${mb(quota.capBytes)} MB quota (${mb(quota.bytes)} MB). Its oldest files were removed to bring it back under the quota.`, {
    hint: 'Session transcripts live on that volume; an agent that writes large files there (or a task that makes claude log huge outputs) hits the quota. Write big outputs to the repo (repo: rw or overlay) or /tmp instead, and retry.',
  });
}

/** A cancel by the caller: before the container started (nothing ran), or while it ran (it was killed). */
export function cancelledResult(agent: string, started: boolean): DispatchResult {
  return errorResult(agent, 'cli_error', started ? `Dispatch to '${agent}' was cancelled; its container was killed.` : `Dispatch to '${agent}' was cancelled before its container started.`);
}

/**
 * claude's result line is kept whatever precedes it: verbose stream-json repeats every tool output, which must
 * not push the answer out of the bounded output buffer.
 */
function keptLines(): (line: string) => boolean {
  return (line) => line.startsWith('{"type":"result"');
}

/** A failure with no result after output was dropped says so (the answer may have been in what was cut). */
function noteTruncation(result: DispatchResult, outcome: SandboxOutcome): DispatchResult {
  if (result.success || !outcome.stdoutTruncated || hasResult(outcome)) return result;
  const note = 'The agent produced more output than the sandbox keeps; the part that was dropped may have held the answer.';
  return makeResult({ ...result, hint: result.hint ? `${result.hint} ${note}` : note });
}

function hasResult(outcome: SandboxOutcome): boolean {
  return hasResultEvent(outcome.stdoutLines);
}

/** The image's init could not execute claude at all (exit 127): the image is not an agent image. */
function claudeDidNotStart(name: string, sandbox: CompiledSandbox, outcome: SandboxOutcome): DispatchResult | undefined {
  if (outcome.exitCode !== 127 || hasResult(outcome) || !/exec .*failed|not found|no such file/i.test(outcome.stderr)) return undefined;
  const image = sandbox.container.Image;
  return errorResult(name, 'not_found', `Claude Code could not be started in the sandbox image ${image}: ${outcome.stderr.trim().slice(0, 500)}`, {
    hint: `The image has no working claude binary. ${imageBuildHint(image)}.`,
  });
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** `{ key: value }` when the value is a non-empty string, else `{}` (empty strings mean "not set"). */
function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return value ? ({ [key]: value } as { [P in K]: string }) : {};
}
