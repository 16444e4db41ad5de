import { PassThrough } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type Docker from 'dockerode';
import { bounded } from './engine-calls.js';
import { LineCollector, type KeepRule } from './lines.js';
import { sandboxError } from './sandbox-error.js';

const STDERR_CAP = 64 * 1024;
/** Ordinary stdout kept per dispatch (progress events are seen as they stream, then dropped). */
const STDOUT_CAP = 1024 * 1024;
/** Marked stdout (claude's result line, an overlay patch) kept per dispatch, whatever came before it. */
const KEPT_CAP = 16 * 1024 * 1024;
/** After the container exits, how long the attach stream may take to deliver its last bytes. */
const DRAIN_MS = 2000;
/** After a kill, how long to wait for the engine to report the exit before giving up on it (removal is forced). */
const KILL_GRACE_MS = 15_000;

export interface IoRequest {
  image: string;
  stdin: string;
  /** Epoch ms: the container is killed then (the whole tree). */
  deadline: number;
  /** Each engine call before the container runs must answer within this. */
  stepMs: () => number;
  onStdoutLine?: (line: string) => void;
  /** Lines kept under their own cap however much other output came first. */
  keepLine?: (line: string) => boolean;
  signal?: AbortSignal;
}

export interface IoOutcome {
  exitCode: number | null;
  stdoutLines: string[];
  /** Output past a cap was dropped. */
  stdoutTruncated: boolean;
  stderr: string;
  timedOut: boolean;
  cancelled: boolean;
}

/** Attach, start, write stdin and close it, wait for the exit or the deadline, and collect the output. */
export async function runAttached(container: Docker.Container, request: IoRequest): Promise<IoOutcome> {
  const output = collectOutput(container, request);
  const stream = await attach(container, request);
  const ended = output.pipe(stream);
  try {
    await bounded(container.start(), request.stepMs(), 'start the container');
  } catch (error) {
    stream.end();
    throw sandboxError(error, 'start the container', request.image);
  }
  stream.write(request.stdin);
  stream.end();
  const ending = await waitWithDeadline(container, request);
  await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, DRAIN_MS))]);
  return { ...ending, ...output.result() };
}

async function attach(container: Docker.Container, request: IoRequest): Promise<NodeJS.ReadWriteStream> {
  const attaching = container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true }) as Promise<NodeJS.ReadWriteStream>;
  try {
    return await bounded(attaching, request.stepMs(), 'attach to the container');
  } catch (error) {
    // An attach that completes after we gave up must not keep a socket open.
    attaching.then((late) => (late as unknown as { destroy?: () => void }).destroy?.(), () => undefined);
    throw sandboxError(error, 'attach to the container', request.image);
  }
}

function collectOutput(container: Docker.Container, request: IoRequest) {
  const keep: KeepRule | undefined = request.keepLine ? { test: request.keepLine, cap: KEPT_CAP } : undefined;
  const stdout = new LineCollector(STDOUT_CAP, request.onStdoutLine, keep);
  const stdoutOut = new PassThrough();
  stdoutOut.on('data', (chunk: Buffer) => stdout.push(chunk));
  const stderrOut = new PassThrough();
  const decoder = new StringDecoder('utf8');
  let stderr = '';
  stderrOut.on('data', (chunk: Buffer) => {
    if (stderr.length < STDERR_CAP) stderr += decoder.write(chunk).slice(0, STDERR_CAP - stderr.length);
  });
  return {
    /** Demultiplex the attach stream; resolves when it ends. */
    pipe(stream: NodeJS.ReadWriteStream): Promise<void> {
      const ended = new Promise<void>((resolve) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.on('error', () => resolve());
      });
      container.modem.demuxStream(stream, stdoutOut, stderrOut);
      return ended;
    },
    result() {
      stdout.flush();
      return { stdoutLines: stdout.lines, stdoutTruncated: stdout.truncated, stderr };
    },
  };
}

async function waitWithDeadline(container: Docker.Container, request: IoRequest): Promise<Pick<IoOutcome, 'exitCode' | 'timedOut' | 'cancelled'>> {
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
    // 'not-running' after start: a container that already exited answers at once (no lost exit).
    const exited = container.wait({ condition: 'not-running' }) as Promise<{ StatusCode: number }>;
    const status = await Promise.race([exited, stuck]);
    const exitCode = status === 'stuck' || timedOut || cancelled ? null : status.StatusCode;
    return { exitCode, timedOut, cancelled };
  } catch (error) {
    if (timedOut || cancelled) return { exitCode: null, timedOut, cancelled };
    throw sandboxError(error, 'wait for the container', request.image);
  } finally {
    clearTimeout(timer);
    clearTimeout(graceTimer);
    request.signal?.removeEventListener('abort', onAbort);
  }
}
