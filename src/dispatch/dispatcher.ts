import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../config/atomic-write.js';
import type { AgentConfig, DispatchConfig } from '../config/schema.js';
import { AppError, describeError, isAppError } from '../errors.js';
import { effectiveBudget } from '../policy/claude-args.js';
import type { CompiledSandbox } from '../policy/compile.js';
import { resolveAgentPolicy } from '../policy/resolve.js';
import { imageBuildHint } from '../sandbox/image.js';
import type { SandboxOutcome, SandboxRun } from '../sandbox/runner.js';
import { claudeCommand, isSessionFlagRejection } from './command.js';
import { extractPatch, OVERLAY_SETUP_FAILED, overlayCommand } from './overlay.js';
import { buildPrompt } from './prompt.js';
import { currentDepth, errorResult, hasResultEvent, recursionResult, resultFromRun } from './result.js';
import { progressFromLine, type ProgressEvent } from './stream-events.js';
import { makeResult, type DispatchResult } from './types.js';

/** The narrow view of the sandbox the dispatcher needs; tests can hand in a fake one. */
export interface Sandbox {
  run(run: SandboxRun): Promise<SandboxOutcome>;
}

export interface DispatchRequest {
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
  const job = deps.job ?? newJobId();
  const { config } = deps;
  const name = request.agent;
  const configured = config.agents[name];
  if (!configured) throw new AppError('AGENT_NOT_FOUND', `Unknown agent: '${name}'`);

  const depth = currentDepth(deps.env);
  if (depth >= config.settings.max_dispatch_depth) return recursionResult(name, depth, config.settings.max_dispatch_depth);

  const agent = withTimeoutOverride(configured, request.timeoutSeconds);
  if (!isDirectory(agent.directory)) {
    return errorResult(name, 'not_found', `Directory does not exist: ${agent.directory}`, {
      hint: `Point the agent at its project: agent-dispatch update ${name} ... or re-add it (agent-dispatch remove ${name} && agent-dispatch add ${name} <directory>).`,
    });
  }

  const compiled = compileFor(deps, name, agent);
  if ('error' in compiled) return compiled.error;
  const gate = networkGate(name, agent, compiled.sandbox);
  if (gate) return gate;

  const prompt = buildPrompt({
    task: request.task,
    ...optional('context', request.context),
    ...optional('caller', request.caller),
    ...optional('goal', request.goal),
    ...optional('responseFormat', request.responseFormat),
  });
  const fresh = request.sessionId ? undefined : randomUUID();
  const ctx = {
    agent: name,
    ...(request.sessionId ?? fresh ? { sessionFallback: (request.sessionId ?? fresh)! } : {}),
    ...(effectiveBudget(agent, config.settings) !== undefined ? { budget: effectiveBudget(agent, config.settings)! } : {}),
    ...optional('responseFormat', request.responseFormat),
    timeoutSeconds: compiled.sandbox.timeoutSeconds,
    resumed: request.sessionId !== undefined && request.sessionId !== '',
  };

  let cmd: string[];
  try {
    cmd = claudeCommand({ flags: compiled.sandbox.claudeArgs, ...optional('resume', request.sessionId), ...(fresh ? { sessionId: fresh } : {}) });
  } catch (error) {
    return errorResult(name, 'cli_error', describeError(error));
  }

  const run = (command: string[]): Promise<SandboxOutcome | DispatchResult> =>
    runInSandbox(deps, compiled.sandbox, {
      job,
      cmd: command,
      stdin: prompt,
      ...(request.onProgress ? { onProgress: request.onProgress } : {}),
      ...(request.signal ? { signal: request.signal } : {}),
      agent: name,
    });

  const overlay = compiled.sandbox.mounts.some((m) => m.mode === 'overlay');
  if (overlay) cmd = overlayCommand(cmd);
  let outcome = await run(cmd);
  if (!('stdoutLines' in outcome)) return outcome;
  if (fresh && !hasResult(outcome) && isSessionFlagRejection(outcome.stderr)) {
    // An old claude that does not know --session-id: retry once without it (the original's self-heal).
    const plain = claudeCommand({ flags: compiled.sandbox.claudeArgs });
    const retry = await run(overlay ? overlayCommand(plain) : plain);
    if (!('stdoutLines' in retry)) return retry;
    outcome = retry;
    delete (ctx as { sessionFallback?: string }).sessionFallback;
  }
  if (outcome.cancelled) return errorResult(name, 'cli_error', `Dispatch to '${name}' was cancelled; its container was killed.`);
  const notStarted = claudeDidNotStart(name, compiled.sandbox, outcome);
  if (notStarted) return notStarted;
  if (!overlay) return resultFromRun(outcome, ctx);
  if (outcome.exitCode === OVERLAY_SETUP_FAILED && !hasResult(outcome)) {
    return errorResult(name, 'sandbox', outcome.stderr.trim().slice(0, 1000) || 'The overlay copy of the repo could not be prepared.', {
      hint: 'The repo is copied into the container before claude runs: check it fits in the policy memory limit and that the image has git.',
    });
  }
  const { lines, patch } = extractPatch(outcome.stdoutLines);
  return withPatch(resultFromRun({ ...outcome, stdoutLines: lines }, ctx), patch, join(deps.configDir, 'patches', `${job}.patch`));
}

/** Inline patches up to this many characters; the whole patch is always in patch_file. */
const PATCH_INLINE_MAX = 100_000;

function withPatch(result: DispatchResult, patch: string | undefined, file: string): DispatchResult {
  if (!patch) return result;
  writeFileAtomic(file, patch);
  const truncated = patch.length > PATCH_INLINE_MAX;
  return makeResult({ ...result, patch: truncated ? patch.slice(0, PATCH_INLINE_MAX) : patch, patch_file: file, ...(truncated ? { patch_truncated: true } : {}) });
}

function compileFor(deps: DispatchDeps, name: string, agent: AgentConfig): { sandbox: CompiledSandbox } | { error: DispatchResult } {
  const agents = Object.assign(Object.create(null) as Record<string, AgentConfig>, deps.config.agents, { [name]: agent });
  const report = resolveAgentPolicy({ ...deps.config, agents }, name, { configDir: deps.configDir, hostEnv: deps.env, depth: currentDepth(deps.env) });
  const errors = report.findings.filter((f) => f.severity === 'error');
  if (!report.compiled || errors.length > 0) {
    const detail = errors.map((f) => `${f.code}: ${f.message}`).join('; ') || 'the policy could not be compiled';
    return {
      error: errorResult(name, 'policy', `Agent '${name}' has an unusable sandbox policy '${agent.policy}': ${detail}`, {
        hint: `Nothing was started. See agent-dispatch policy check --agent ${name}, fix the policy file, or point the agent at another policy (agent-dispatch update ${name} --policy default).`,
      }),
    };
  }
  return { sandbox: report.compiled };
}

/** Until the egress gateway exists, only a policy that asks for an open network may run (and says so). */
function networkGate(name: string, agent: AgentConfig, sandbox: CompiledSandbox): DispatchResult | undefined {
  if (sandbox.network.mode === 'open') return undefined;
  return errorResult(
    name,
    'sandbox',
    `Agent '${name}' runs under policy '${agent.policy}', whose network goes through the egress gateway, and the gateway is not built in this release. Nothing was started: a dispatch never gets more network than its policy allows.`,
    {
      hint: `Until the gateway lands, point the agent at a policy with network.mode: open and credentials: env (agent-dispatch policy check flags both as risks), e.g. agent-dispatch update ${name} --policy ./my-open-policy.yaml.`,
    },
  );
}

interface InSandbox {
  job: string;
  cmd: string[];
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
      ...(run.signal ? { signal: run.signal } : {}),
    });
  } catch (error) {
    if (!isAppError(error)) throw error;
    return errorResult(run.agent, 'sandbox', error.message, {
      hint: error.hint ?? 'Run agent-dispatch doctor: it checks the engine, the image and each policy.',
    });
  }
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
