/**
 * One running gateway container and its command channel: the server writes JSON-line commands to the
 * container's stdin and reads JSON-line events from its stdout (src/gateway/protocol.ts). The first line
 * written is the config, which carries the credential: stdin is the only way in that `docker inspect` does not
 * show. When the server goes away its attach stream closes, stdin ends and the gateway exits by itself.
 */
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { AppError, describeError } from '../errors.js';
import { GATEWAY_PROTOCOL, GATEWAY_SOCKET_DIR, type EgressDecision, type GatewayCommand, type GatewayConfig, type GatewayEvent } from '../gateway/protocol.js';
import { logger } from '../log.js';
import { ROLE_LABEL } from '../policy/layout.js';
import { bounded, removeQuietly } from './engine-calls.js';
import { demuxer, LineSplitter } from './lines.js';

const log = logger('gateway');
/** The gateway's own user in its image (images/gateway/Dockerfile); it owns the socket volume. */
export const GATEWAY_UID = 10001;
const READY_MS = 15_000;
const STDERR_KEPT = 4096;
/** The longest event line read: the gateway sends a release answer in parts of at most 64 KiB. */
export const MAX_EVENT_LINE = 1024 * 1024;
/** Decisions taken from one release answer (the gateway keeps 2 000 distinct ones per dispatch). */
export const MAX_ANSWER_DECISIONS = 10_000;

export const GATEWAY_ROLE_LABEL = ROLE_LABEL;

export interface GatewayStart {
  image: string;
  /** The agent's socket volume (already owned by GATEWAY_UID). */
  volume: string;
  labels: Record<string, string>;
  upstream: string;
  credential: GatewayConfig['credential'];
  stepMs: number;
}

type Waiter = {
  resolve: (event: GatewayEvent) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  /** The `decisions` parts received so far of a release answer. */
  parts: EgressDecision[];
};

export class GatewayContainer {
  /** Why the gateway can no longer be used (it exited, stopped answering, or failed its canary). */
  deadReason: string | undefined;
  private readonly waiters = new Map<string, Waiter>();
  private stderrTail = '';
  private counter = 0;

  private constructor(
    readonly container: Docker.Container,
    readonly socketPath: string,
    private readonly stdin: NodeJS.WritableStream,
  ) {}

  static async start(docker: Docker, start: GatewayStart): Promise<GatewayContainer> {
    const socketPath = `${GATEWAY_SOCKET_DIR}/gw-${process.pid}-${randomBytes(6).toString('hex')}.sock`;
    const creating = docker.createContainer({
      Image: start.image,
      User: `${GATEWAY_UID}:${GATEWAY_UID}`,
      Labels: { ...start.labels, [GATEWAY_ROLE_LABEL]: 'gateway' },
      Tty: false,
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      HostConfig: {
        NetworkMode: 'bridge',
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        Privileged: false,
        Init: true,
        // Gone with its server too: when the attach stream closes the gateway exits, and the engine removes it.
        AutoRemove: true,
        Memory: 256 * 1024 * 1024,
        MemorySwap: 256 * 1024 * 1024,
        NanoCpus: 1e9,
        PidsLimit: 128,
        Ulimits: [{ Name: 'nofile', Soft: 8192, Hard: 8192 }],
        Tmpfs: { '/tmp': 'rw,nosuid,nodev,noexec,size=16m' },
        Mounts: [{ Type: 'volume', Source: start.volume, Target: GATEWAY_SOCKET_DIR, ReadOnly: false, VolumeOptions: { NoCopy: true } }],
      },
    } as unknown as Docker.ContainerCreateOptions);
    let container: Docker.Container;
    try {
      container = await bounded(creating, start.stepMs, 'create the egress gateway container');
    } catch (error) {
      creating.then((late) => removeQuietly(late), () => undefined);
      throw error;
    }
    try {
      const stream = (await bounded(
        container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true }) as Promise<NodeJS.ReadWriteStream>,
        start.stepMs,
        'attach to the egress gateway',
      )) as NodeJS.ReadWriteStream;
      const gateway = new GatewayContainer(container, socketPath, stream);
      gateway.listen(stream);
      const ready = gateway.expect('ready', READY_MS);
      await bounded(container.start(), start.stepMs, 'start the egress gateway');
      const config: GatewayConfig = { protocol: GATEWAY_PROTOCOL, socketPath, upstream: start.upstream, credential: start.credential };
      stream.write(`${JSON.stringify(config)}\n`);
      await ready;
      return gateway;
    } catch (error) {
      await removeQuietly(container);
      throw error;
    }
  }

  get id(): string {
    return this.container.id;
  }

  /**
   * Send a command and wait for its answer, or fail after `ms`. A command unanswered in time marks the gateway
   * dead, except `release`: one dispatch's late answer (say, after a flood of its own) loses only that
   * dispatch's decisions, and the gateway's health is for the next ping and canary to tell.
   */
  async send(command: DistributiveOmit<GatewayCommand, 'id'>, ms: number): Promise<GatewayEvent> {
    if (this.deadReason) throw new Error(this.deadReason);
    const id = String(++this.counter);
    const answer = this.expect(id, ms, command.op !== 'release');
    this.stdin.write(`${JSON.stringify({ ...command, id })}\n`);
    return answer;
  }

  /** Stop and remove the container; pending commands fail. */
  async remove(reason: string): Promise<void> {
    this.die(reason);
    this.stdin.end();
    await removeQuietly(this.container);
  }

  /** The gateway's last stderr output (diagnostics; it never holds the credential). */
  get stderr(): string {
    return this.stderrTail.trim();
  }

  private expect(id: string, ms: number, fatal = true): Promise<GatewayEvent> {
    return new Promise<GatewayEvent>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        const reason = `the egress gateway did not answer within ${Math.ceil(ms / 1000)} s`;
        if (fatal) this.die(reason);
        reject(new Error(reason));
      }, ms);
      this.waiters.set(id, { resolve, reject, timer, parts: [] });
    });
  }

  /** Reads the attach stream in one pass (lines.ts): no event line is held past MAX_EVENT_LINE. */
  private listen(stream: NodeJS.ReadWriteStream): void {
    const lines = new LineSplitter(MAX_EVENT_LINE, (line, cut) => {
      if (cut) return log.warn(`egress gateway ${this.id.slice(0, 12)} wrote an event line over ${MAX_EVENT_LINE} characters; it was dropped`);
      this.onLine(line);
    });
    const split = demuxer(
      (piece) => lines.push(piece),
      (piece) => (this.stderrTail = (this.stderrTail + piece.subarray(-STDERR_KEPT).toString('utf8')).slice(-STDERR_KEPT)),
    );
    stream.on('data', (chunk: Buffer) => split(chunk));
    const ended = (): void => {
      lines.flush();
      this.die(`the egress gateway exited${this.stderr ? ` (${this.stderr.split('\n').at(-1)})` : ''}`);
    };
    stream.on('end', ended);
    stream.on('close', ended);
    stream.on('error', (error) => this.die(`the connection to the egress gateway broke: ${describeError(error)}`));
  }

  private onLine(line: string): void {
    let event: GatewayEvent;
    try {
      event = JSON.parse(line) as GatewayEvent;
    } catch {
      log.debug(`gateway ${this.id.slice(0, 12)} wrote a line that is not an event`);
      return;
    }
    if (event.event === 'fatal') return this.die(`the egress gateway failed: ${event.message}`);
    const key = event.event === 'ready' ? 'ready' : 'id' in event ? event.id : undefined;
    const waiter = key === undefined ? undefined : this.waiters.get(key);
    if (!waiter) {
      if (event.event === 'error') log.warn(`egress gateway: ${event.message}`);
      return;
    }
    if (event.event === 'decisions') return void this.gather(waiter, event.decisions);
    this.waiters.delete(key!);
    clearTimeout(waiter.timer);
    if (event.event === 'error') waiter.reject(new Error(`the egress gateway refused a command: ${event.message}`));
    else if (event.event === 'released') waiter.resolve({ ...event, decisions: this.gather(waiter, event.decisions) });
    else waiter.resolve(event);
  }

  /** One part of a release answer added to the earlier ones, up to MAX_ANSWER_DECISIONS; all of them so far. */
  private gather(waiter: Waiter, part: unknown): EgressDecision[] {
    if (!Array.isArray(part)) return waiter.parts;
    const room = MAX_ANSWER_DECISIONS - waiter.parts.length;
    if (part.length > room) log.warn(`egress gateway ${this.id.slice(0, 12)} reported over ${MAX_ANSWER_DECISIONS} decisions for one dispatch; the rest were dropped`);
    for (const decision of part.slice(0, Math.max(0, room))) waiter.parts.push(decision as EgressDecision);
    return waiter.parts;
  }

  private die(reason: string): void {
    this.deadReason ??= reason;
    for (const [id, waiter] of this.waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new Error(this.deadReason));
      this.waiters.delete(id);
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** For messages: a gateway failure is a sandbox failure, and the dispatch did not start. */
export function gatewayFailure(agent: string, reason: string, hint: string): AppError {
  return new AppError('SANDBOX_FAILED', `The egress gateway for agent '${agent}' is not usable: ${reason}. Nothing was started: a dispatch never runs without its gateway.`, { hint });
}
