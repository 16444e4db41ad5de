/**
 * One running gateway container and its command channel: the server writes JSON-line commands to the
 * container's stdin and reads JSON-line events from its stdout (src/gateway/protocol.ts). The first line
 * written is the config, which carries the credential: stdin is the only way in that `docker inspect` does not
 * show. When the server goes away its attach stream closes, stdin ends and the gateway exits by itself.
 */
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { AppError, describeError } from '../errors.js';
import { GATEWAY_PROTOCOL, GATEWAY_SOCKET_DIR, type GatewayCommand, type GatewayConfig, type GatewayEvent } from '../gateway/protocol.js';
import { logger } from '../log.js';
import { LABEL_PREFIX } from '../policy/layout.js';
import { bounded, removeQuietly } from './engine-calls.js';

const log = logger('gateway');
/** The gateway's own user in its image (images/gateway/Dockerfile); it owns the socket volume. */
export const GATEWAY_UID = 10001;
const READY_MS = 15_000;
const STDERR_KEPT = 4096;

export const GATEWAY_ROLE_LABEL = `${LABEL_PREFIX}.role`;

export interface GatewayStart {
  image: string;
  /** The agent's socket volume (already owned by GATEWAY_UID). */
  volume: string;
  labels: Record<string, string>;
  upstream: string;
  credential: GatewayConfig['credential'];
  stepMs: number;
}

type Waiter = { resolve: (event: GatewayEvent) => void; reject: (error: Error) => void; timer: NodeJS.Timeout };

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
      gateway.listen(container, stream);
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

  /** Send a command and wait for its answer (or fail after `ms`, which marks the gateway dead). */
  async send(command: DistributiveOmit<GatewayCommand, 'id'>, ms: number): Promise<GatewayEvent> {
    if (this.deadReason) throw new Error(this.deadReason);
    const id = String(++this.counter);
    const answer = this.expect(id, ms);
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

  private expect(id: string, ms: number): Promise<GatewayEvent> {
    return new Promise<GatewayEvent>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        const reason = `the egress gateway did not answer within ${Math.ceil(ms / 1000)} s`;
        this.die(reason);
        reject(new Error(reason));
      }, ms);
      this.waiters.set(id, { resolve, reject, timer });
    });
  }

  private listen(container: Docker.Container, stream: NodeJS.ReadWriteStream): void {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    container.modem.demuxStream(stream, stdout, stderr);
    let pending = '';
    stdout.setEncoding('utf8');
    stdout.on('data', (chunk: string) => {
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) !== -1) {
        this.onLine(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
    });
    stderr.setEncoding('utf8');
    stderr.on('data', (chunk: string) => {
      this.stderrTail = (this.stderrTail + chunk).slice(-STDERR_KEPT);
    });
    const ended = (): void => this.die(`the egress gateway exited${this.stderr ? ` (${this.stderr.split('\n').at(-1)})` : ''}`);
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
    this.waiters.delete(key!);
    clearTimeout(waiter.timer);
    if (event.event === 'error') waiter.reject(new Error(`the egress gateway refused a command: ${event.message}`));
    else waiter.resolve(event);
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
