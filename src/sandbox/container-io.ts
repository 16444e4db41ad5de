import { PassThrough } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type Docker from 'dockerode';
import { initFrame, INIT_READY_LINE } from './agent-init.js';
import { bounded } from './engine-calls.js';
import { LineCollector, type KeepRule } from './lines.js';
import { sandboxError } from './sandbox-error.js';

const STDERR_CAP = 64 * 1024;
/** Ordinary stdout kept per dispatch (progress events are seen as they stream, then dropped). */
const STDOUT_CAP = 1024 * 1024;
/** Marked stdout (claude's result line) kept per dispatch, whatever came before it. */
const KEPT_CAP = 16 * 1024 * 1024;
/** After the container exits, how long the attach stream may take to deliver its last bytes. */
const DRAIN_MS = 2000;
/** After a kill, how long to wait for the engine to report the exit before giving up on it (removal is forced). */
const KILL_GRACE_MS = 15_000;

export interface StartRequest {
  image: string;
  /** Each engine call before the container runs must answer within this. */
  stepMs: () => number;
}

export interface FeedRequest {
  /** The command's whole stdin (sent as the init's one frame: src/sandbox/agent-init.ts). */
  stdin: string;
  /** Epoch ms: the container is killed then (the whole tree). */
  deadline: number;
  onStdoutLine?: (line: string) => void;
  /** Lines kept under their own cap however much other output came first. */
  keepLine?: (line: string) => boolean;
  signal?: AbortSignal;
}

export type IoRequest = StartRequest & FeedRequest;

export interface IoOutcome {
  exitCode: number | null;
  stdoutLines: string[];
  /** Output past a cap was dropped. */
  stdoutTruncated: boolean;
  stderr: string;
  timedOut: boolean;
  cancelled: boolean;
}

type Exit = { StatusCode: number };

/**
 * A started container attached to this server, its command (behind the agent init) waiting for its input. The
 * exit is watched from before the start, so an exit is never missed, even by a container the engine removes
 * as it exits (AutoRemove). Output that arrives before `feed` is buffered, not lost.
 */
export class AttachedContainer {
  /** Set once the container has exited (before or after its input). */
  exitedWith: Exit | undefined;
  /** The init said the command went quiet before its input (claude has initialised). */
  ready = false;
  private readonly stdout = new PassThrough();
  private readonly stderr = new PassThrough();
  /** stderr before the input, without the init's readiness line. */
  private early = '';
  private readonly onEarlyStderr = (chunk: Buffer): void => {
    this.early = (this.early + chunk.toString('utf8')).slice(0, STDERR_CAP + INIT_READY_LINE.length + 1);
    if (!this.early.includes(`${INIT_READY_LINE}\n`)) return;
    this.early = this.early.replace(`${INIT_READY_LINE}\n`, '');
    this.ready = true;
  };

  private constructor(
    readonly container: Docker.Container,
    private readonly image: string,
    private readonly stream: NodeJS.ReadWriteStream,
    private readonly exit: Promise<Exit>,
    private readonly ended: Promise<void>,
  ) {
    container.modem.demuxStream(stream, this.stdout, this.stderr);
    this.stderr.on('data', this.onEarlyStderr);
    exit.then((status) => (this.exitedWith = status), () => undefined);
  }

  /** Attach, watch for the exit, start. On failure the caller removes the container. */
  static async start(container: Docker.Container, request: StartRequest): Promise<AttachedContainer> {
    const stream = await attach(container, request);
    const ended = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    const exit = container.wait({ condition: 'next-exit' }) as Promise<Exit>;
    exit.catch(() => undefined);
    const attached = new AttachedContainer(container, request.image, stream, exit, ended);
    try {
      await bounded(container.start(), request.stepMs(), 'start the container');
    } catch (error) {
      attached.detach();
      throw sandboxError(error, 'start the container', request.image);
    }
    return attached;
  }

  /** Calls `listener` once the container exits (at once when it already has). */
  onExit(listener: () => void): void {
    this.exit.then(listener, listener);
  }

  /** Give the command its input, wait for the exit or the deadline, and collect the output. */
  async feed(request: FeedRequest): Promise<IoOutcome> {
    this.stderr.off('data', this.onEarlyStderr);
    const output = collectOutput(this.stdout, this.stderr, this.early, request);
    this.stream.write(initFrame(request.stdin));
    try {
      const ending = await waitWithDeadline(this.container, this.exit, this.image, request);
      await Promise.race([this.ended, new Promise((resolve) => setTimeout(resolve, DRAIN_MS))]);
      return { ...ending, ...output.result() };
    } finally {
      this.detach();
    }
  }

  /** Drop the attach connection: the container's stdin ends and its init kills everything in it. */
  detach(): void {
    (this.stream as unknown as { destroy?: () => void }).destroy?.();
  }
}

/** Attach, start, give the command its input, wait for the exit or the deadline, and collect the output. */
export async function runAttached(container: Docker.Container, request: IoRequest): Promise<IoOutcome> {
  return (await AttachedContainer.start(container, request)).feed(request);
}

async function attach(container: Docker.Container, request: StartRequest): Promise<NodeJS.ReadWriteStream> {
  const attaching = container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true }) as Promise<NodeJS.ReadWriteStream>;
  try {
    return await bounded(attaching, request.stepMs(), 'attach to the container');
  } catch (error) {
    // An attach that completes after we gave up must not keep a socket open.
    attaching.then((late) => (late as unknown as { destroy?: () => void }).destroy?.(), () => undefined);
    throw sandboxError(error, 'attach to the container', request.image);
  }
}

function collectOutput(stdoutIn: PassThrough, stderrIn: PassThrough, early: string, request: FeedRequest) {
  const keep: KeepRule | undefined = request.keepLine ? { test: request.keepLine, cap: KEPT_CAP } : undefined;
  const stdout = new LineCollector(STDOUT_CAP, request.onStdoutLine, keep);
  stdoutIn.on('data', (chunk: Buffer) => stdout.push(chunk));
  const decoder = new StringDecoder('utf8');
  let stderr = early.slice(0, STDERR_CAP);
  stderrIn.on('data', (chunk: Buffer) => {
    if (stderr.length < STDERR_CAP) stderr += decoder.write(chunk).slice(0, STDERR_CAP - stderr.length);
  });
  return {
    result() {
      stdout.flush();
      return { stdoutLines: stdout.lines, stdoutTruncated: stdout.truncated, stderr };
    },
  };
}

async function waitWithDeadline(container: Docker.Container, exited: Promise<Exit>, image: string, request: FeedRequest): Promise<Pick<IoOutcome, 'exitCode' | 'timedOut' | 'cancelled'>> {
  let timedOut = false;
  let cancelled = false;
  let giveUp: () => void = () => undefined;
  const stuck = new Promise<'stuck'>((resolve) => (giveUp = () => resolve('stuck')));
  let graceTimer: NodeJS.Timeout | undefined;
  const kill = (): void => {
    container.kill({ signal: 'SIGKILL' }).catch(() => undefined);
    graceTimer ??= setTimeout(giveUp, KILL_GRACE_MS);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, Math.max(0, request.deadline - Date.now()));
  const onAbort = (): void => {
    cancelled = true;
    kill();
  };
  request.signal?.addEventListener('abort', onAbort, { once: true });
  // A cancel that arrived while the container was being created, attached or started.
  if (request.signal?.aborted) onAbort();
  try {
    const status = await Promise.race([exited, stuck]);
    const exitCode = status === 'stuck' || timedOut || cancelled ? null : status.StatusCode;
    return { exitCode, timedOut, cancelled };
  } catch (error) {
    if (timedOut || cancelled) return { exitCode: null, timedOut, cancelled };
    throw sandboxError(error, 'wait for the container', image);
  } finally {
    clearTimeout(timer);
    clearTimeout(graceTimer);
    request.signal?.removeEventListener('abort', onAbort);
  }
}
