/**
 * Build the agent image (images/agent/Dockerfile) through the Docker engine, from a local base only.
 *
 * - Nothing is ever pulled: the base is inspected first (a `FROM` of a missing image would make the engine
 *   try a registry), and the build is never asked to pull.
 * - A local `claude` binary (air-gapped machines, tests) enters the build context as `claude-binary/claude`
 *   (mode 0755); without one the Dockerfile installs `@anthropic-ai/claude-code@<version>` with npm.
 * - The engine reports a failed step as an `error` event in the progress stream, not as a rejection: that
 *   event becomes an AppError IMAGE_BUILD_FAILED carrying the step and its output.
 */
import { accessSync, constants, createReadStream, existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import tar from 'tar-fs';
import { AppError, describeError } from '../errors.js';
import { engineUnreachable } from './engine-calls.js';

/** The image a policy runs when it names none (the default of `image` in src/policy/schema.ts). */
export const DEFAULT_AGENT_IMAGE = 'agent-dispatch/agent:latest';
/** The base `image build` uses without --base: made by scripts/base-images.sh (`ARG BASE` in the Dockerfile). */
export const DEFAULT_BASE_IMAGE = 'agent-dispatch-base/node:20';
/** The pinned Claude Code version (`ARG CLAUDE_VERSION` in the Dockerfile, the devDependency in package.json). */
export const DEFAULT_CLAUDE_VERSION = '2.1.197';
/** The image's build context: images/agent, two levels above this module both in src/sandbox and dist/sandbox. */
export const AGENT_IMAGE_DIR = fileURLToPath(new URL('../../images/agent/', import.meta.url));
/** Where the builder puts a supplied binary in the build context (the Dockerfile copies the folder's content). */
const BINARY_DIR = 'claude-binary';

export interface BuildAgentImageOptions {
  /** A local image to build FROM (default DEFAULT_BASE_IMAGE). Never pulled. */
  base?: string;
  /** A native Linux `claude` binary to bake in instead of installing Claude Code with npm. */
  claudeBinary?: string;
  /**
   * The version `claude --version` must print (the build checks it) and the image's
   * `agent-dispatch.claude-version` label. Default: the version of the npm package the binary sits in, if it
   * does (node_modules/@anthropic-ai/claude-code-linux-x64/claude), else DEFAULT_CLAUDE_VERSION.
   */
  claudeVersion?: string;
  /** Default DEFAULT_AGENT_IMAGE. */
  tag?: string;
  /** Build every step again instead of reusing the engine's build cache. */
  noCache?: boolean;
  /** Extra image labels (the Dockerfile's own labels cannot be overridden). */
  labels?: Record<string, string>;
  /** Each line of build output, as it arrives (no trailing newline). */
  onProgress?: (line: string) => void;
  docker?: Docker;
}

export interface BuiltImage {
  /** The full image id (`sha256:...`). */
  imageId: string;
  tag: string;
  claudeVersion: string;
}

/** The command that builds `image`, for "image missing" messages. */
export function imageBuildHint(image: string): string {
  const tag = image === DEFAULT_AGENT_IMAGE ? '' : ` --tag ${image}`;
  return `Build it: agent-dispatch image build${tag} (add --claude-binary PATH on a machine with no npm registry)`;
}

export async function buildAgentImage(options: BuildAgentImageOptions = {}): Promise<BuiltImage> {
  const base = options.base ?? DEFAULT_BASE_IMAGE;
  const tag = options.tag ?? DEFAULT_AGENT_IMAGE;
  const binary = options.claudeBinary === undefined ? undefined : checkBinary(options.claudeBinary);
  const claudeVersion = checkVersion(options.claudeVersion ?? (binary && versionBeside(binary)) ?? DEFAULT_CLAUDE_VERSION);
  if (!tag.trim() || /\s/.test(tag)) throw new AppError('INVALID_INPUT', `Invalid image tag '${tag}'`, { hint: 'Pass --tag NAME[:TAG], e.g. agent-dispatch/agent:latest.' });
  if (!base.trim() || /\s/.test(base)) throw new AppError('INVALID_INPUT', `Invalid base image '${base}'`, { hint: 'Pass --base with a local image name, e.g. agent-dispatch-base/node:20.' });
  if (!existsSync(join(AGENT_IMAGE_DIR, 'Dockerfile'))) {
    throw new AppError('INTERNAL', `The agent image Dockerfile is missing: ${join(AGENT_IMAGE_DIR, 'Dockerfile')}`, {
      hint: 'The agent-dispatch installation is incomplete; reinstall it.',
    });
  }

  const docker = options.docker ?? new Docker();
  await requireLocalBase(docker, base);
  const imageId = await runImageBuild(docker, context(binary), {
    tag,
    buildargs: { BASE: base, CLAUDE_VERSION: claudeVersion },
    labels: options.labels ?? {},
    noCache: options.noCache === true,
    onProgress: options.onProgress,
    failure: (failure, steps) => buildFailure(tag, base, binary, failure, steps),
  });
  return { imageId, tag, claudeVersion };
}

export interface ImageBuildRun {
  tag: string;
  buildargs: Record<string, string>;
  labels: Record<string, string>;
  noCache: boolean;
  onProgress: ((line: string) => void) | undefined;
  /** The error for a failed step (the engine's message and the step log). */
  failure: (failure: string, steps: StepLog) => AppError;
}

/** Send a build context to the engine (never pulling), follow its progress, and return the built image id. */
export async function runImageBuild(docker: Docker, buildContext: NodeJS.ReadableStream, run: ImageBuildRun): Promise<string> {
  const { tag } = run;
  const progress = lineSplitter(run.onProgress);
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(buildContext, {
      t: tag,
      buildargs: run.buildargs,
      labels: run.labels,
      rm: true,
      forcerm: true,
      ...(run.noCache ? { nocache: true } : {}),
    });
  } catch (error) {
    throw engineError(error, `The Docker engine refused to build ${tag}`);
  }

  const steps = new StepLog();
  let builtId: string | undefined;
  let failure: string | undefined;
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (error: Error | null) => {
        progress.flush();
        if (error) reject(new AppError('IMAGE_BUILD_FAILED', `The build of ${tag} broke off: ${describeError(error)}`, { cause: error, hint: 'Check that the Docker engine is still running, then retry.' }));
        else resolve();
      },
      (event: BuildEvent) => {
        if (typeof event.stream === 'string') {
          const text = stripAnsi(event.stream);
          progress.write(text);
          steps.write(text);
        } else if (typeof event.status === 'string') {
          progress.write(`${event.status}${event.progress ? ` ${event.progress}` : ''}\n`);
        }
        if (event.aux?.ID) builtId = event.aux.ID;
        if (event.error !== undefined || event.errorDetail !== undefined) {
          failure ??= stripAnsi(event.errorDetail?.message ?? event.error ?? 'unknown error').trim();
          progress.write(`${failure}\n`);
        }
      },
    );
  });

  if (failure !== undefined) throw run.failure(failure, steps);

  try {
    return (await docker.getImage(tag).inspect()).Id;
  } catch (error) {
    if (builtId) return builtId;
    throw engineError(error, `The build of ${tag} finished, but the image cannot be inspected`);
  }
}

interface BuildEvent {
  stream?: string;
  status?: string;
  progress?: string;
  aux?: { ID?: string };
  error?: string;
  errorDetail?: { code?: number; message?: string };
}

/** Split a chunked stream of text into whole lines for `onProgress`. */
function lineSplitter(onLine: ((line: string) => void) | undefined): { write(text: string): void; flush(): void } {
  let pending = '';
  return {
    write(text) {
      if (!onLine) return;
      pending += text;
      const lines = pending.split(/\r?\n/);
      pending = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    },
    flush() {
      if (onLine && pending) onLine(pending);
      pending = '';
    },
  };
}

/** The current `Step N/M : ...` line of the classic builder and what that step printed since. */
export class StepLog {
  step: string | undefined;
  output: string[] = [];
  private pending = '';

  write(text: string): void {
    this.pending += text;
    const lines = this.pending.split(/\r?\n/);
    this.pending = lines.pop() ?? '';
    for (const line of lines) {
      if (/^Step \d+\/\d+ : /.test(line)) {
        this.step = line;
        this.output = [];
      } else if (line.trim() && !/^ ---> /.test(line) && !/^Removing intermediate container /.test(line)) {
        this.output.push(line);
      }
    }
  }

  tail(max: number): string[] {
    const all = this.pending.trim() ? [...this.output, this.pending] : this.output;
    return all.length > max ? [`... (${all.length - max} earlier lines)`, ...all.slice(-max)] : all;
  }
}

function buildFailure(tag: string, base: string, binary: string | undefined, failure: string, steps: StepLog): AppError {
  const step = steps.step ? truncate(steps.step, 160) : 'before the first step';
  const output = steps.tail(40);
  // The classic builder repeats the whole RUN command before the exit code; the step line already shows it.
  const exit = /^The command '[\s\S]*' returned a non-zero code: (\d+)$/.exec(failure);
  const message = [
    `The build of ${tag} failed at ${step}`,
    `  ${exit ? `the command exited with code ${exit[1]}` : truncate(failure, 300)}`,
    ...(output.length ? ['Step output:', ...output.map((l) => `  ${l}`)] : []),
  ].join('\n');
  const hints = [`The step above failed in a build FROM ${base}.`];
  if (/\bgit is missing\b|no CA certificates|bash is missing/.test(output.join('\n'))) {
    hints.push(`Use a base with git, CA certificates and bash (bash scripts/base-images.sh builds ${DEFAULT_BASE_IMAGE}), or one with apt-get.`);
  } else if (!binary) {
    hints.push('Without --claude-binary the image installs Claude Code with npm, which needs npm in the base and the npm registry: on a machine without them pass --claude-binary PATH.');
  } else {
    hints.push('Check the step output; --claude-version must match what the binary prints for claude --version.');
  }
  return new AppError('IMAGE_BUILD_FAILED', message, { hint: hints.join(' ') });
}

/** A local base image, or IMAGE_NOT_FOUND: never let `FROM` fall through to a registry. */
export async function requireLocalBase(docker: Docker, base: string): Promise<void> {
  try {
    await docker.getImage(base).inspect();
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 404) {
      throw new AppError('IMAGE_NOT_FOUND', `Base image ${base} is not present locally (agent-dispatch never pulls images)`, {
        hint: `Build the default base with: bash scripts/base-images.sh (it makes ${DEFAULT_BASE_IMAGE} from this machine's files), or pass --base IMAGE naming an image that is present locally (docker images).`,
      });
    }
    if (status === 400) {
      throw new AppError('INVALID_INPUT', `Invalid base image name '${base}': ${describeError(error)}`, { hint: 'Pass --base with a local image name, e.g. agent-dispatch-base/node:20.' });
    }
    throw engineError(error, `Could not inspect the base image ${base}`);
  }
}

/** An HTTP answer from the engine is its verdict on this build; anything else means it is not reachable. */
function engineError(error: unknown, what: string): AppError {
  const status = (error as { statusCode?: number }).statusCode;
  const reason = engineReason(error);
  if (status === 400 || /invalid reference format/.test(reason)) {
    return new AppError('INVALID_INPUT', `${what}: ${reason}`, { cause: error, hint: 'Check --tag and --base (NAME[:TAG], lower case).' });
  }
  if (status !== undefined) return new AppError('IMAGE_BUILD_FAILED', `${what}: ${reason}`, { cause: error });
  return engineUnreachable(error, reason);
}

function engineReason(error: unknown): string {
  const json = (error as { json?: { message?: string } | string }).json;
  if (json && typeof json === 'object' && json.message) return json.message.trim();
  return describeError(error).trim();
}

/** The binary's real path, once it is known to be an executable regular file. */
function checkBinary(path: string): string {
  const hint = 'Pass the native Linux claude binary, e.g. node_modules/@anthropic-ai/claude-code-linux-x64/claude (npm install @anthropic-ai/claude-code@' + DEFAULT_CLAUDE_VERSION + ').';
  let real: string;
  try {
    real = realpathSync(path);
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    throw new AppError('INVALID_INPUT', `--claude-binary ${path} ${missing ? 'does not exist' : `cannot be read: ${describeError(error)}`}`, { hint });
  }
  const stat = statSync(real);
  if (!stat.isFile()) throw new AppError('INVALID_INPUT', `--claude-binary ${path} is not a regular file`, { hint });
  if (stat.size === 0) throw new AppError('INVALID_INPUT', `--claude-binary ${path} is empty`, { hint });
  try {
    accessSync(real, constants.R_OK | constants.X_OK);
  } catch {
    throw new AppError('INVALID_INPUT', `--claude-binary ${path} is not readable and executable`, { hint: `chmod 0755 it. ${hint}` });
  }
  return real;
}

function checkVersion(version: string): string {
  if (!/^[0-9A-Za-z][0-9A-Za-z.+-]*$/.test(version)) {
    throw new AppError('INVALID_INPUT', `Invalid Claude Code version '${version}'`, { hint: `Pass --claude-version like ${DEFAULT_CLAUDE_VERSION}.` });
  }
  return version;
}

/** The version of the @anthropic-ai/claude-code* npm package the binary was installed from, if any. */
function versionBeside(binary: string): string | undefined {
  for (const dir of [dirname(binary), dirname(dirname(binary))]) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (typeof pkg.name === 'string' && pkg.name.startsWith('@anthropic-ai/claude-code') && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json there
    }
  }
  return undefined;
}

/**
 * images/agent as a tar stream, with its claude-binary/ folder replaced by an empty one or by the binary
 * (streamed from where it is, mode 0755, root-owned).
 */
function context(binary: string | undefined): NodeJS.ReadableStream {
  const inBinaryDir = (name: string) => {
    const rel = relative(AGENT_IMAGE_DIR, name);
    return rel === BINARY_DIR || rel.startsWith(BINARY_DIR + sep);
  };
  const pack = tar.pack(AGENT_IMAGE_DIR, {
    ignore: inBinaryDir,
    map: (header) => ({ ...header, uid: 0, gid: 0 }),
    finalize: false,
    finish(p) {
      const mtime = new Date();
      p.entry({ name: `${BINARY_DIR}/`, type: 'directory', mode: 0o755, uid: 0, gid: 0, mtime }, (error) => {
        if (error) return p.destroy(error);
        if (!binary) return p.finalize();
        const stat = statSync(binary);
        const entry = p.entry({ name: `${BINARY_DIR}/claude`, type: 'file', size: stat.size, mode: 0o755, uid: 0, gid: 0, mtime: stat.mtime }, (entryError) => {
          if (entryError) p.destroy(entryError);
          else p.finalize();
        });
        const source = createReadStream(binary);
        source.on('error', (readError) => p.destroy(readError));
        source.pipe(entry);
      });
    },
  });
  return pack as unknown as NodeJS.ReadableStream;
}

function stripAnsi(text: string): string {
  return text.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '');
}

function truncate(text: string, max: number): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max - 1)}…` : oneLine;
}
