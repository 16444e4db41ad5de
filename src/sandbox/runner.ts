import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';
import { AppError, describeError } from '../errors.js';
import type { ContainerSpec, MountSpec } from '../policy/container-spec.js';
import * as layout from '../policy/layout.js';
import { logger } from '../log.js';
import { GATEWAY_SOCKET_DIR, type AllowRule, type EgressDecision } from '../gateway/protocol.js';
import { bridgeAddress } from './bridge.js';
import { initCommand } from './agent-init.js';
import { AttachedContainer, type IoOutcome } from './container-io.js';
import { bounded, removeQuietly } from './engine-calls.js';
import { engineDockerOptions, engineSharesFiles } from './engine-options.js';
import { SettingsVolumes } from './engine-settings.js';
import type { EngineSpec } from '../config/engine-spec.js';
import { DEFAULT_GATEWAY_IMAGE } from './gateway-image.js';
import { GatewayPool, type EgressLease } from './gateway-pool.js';
import { LABELS, ownerLabels } from './owner.js';
import { imageMissing, sandboxError } from './sandbox-error.js';
import { reapOrphans } from './reaper.js';
import { poolName, WarmPool, type WarmPoolSettings, type WarmSandbox } from './warm-pool.js';
import { removeJobContainers } from './job-containers.js';
import { prepareStateVolume } from './state-volume.js';
import { pruneSessionVolume, SESSION_MAX_DAYS, SESSION_MAX_MB, type PruneLimits, type SessionVolume } from './session-prune.js';
import { SessionQuota } from './session-quota.js';
import { OverlayVolumes } from './overlay-volume.js';

export interface SandboxRun {
  /** The compiled container spec; the runner adds Cmd, stdin, labels and the managed-settings mount. */
  spec: ContainerSpec;
  cmd: string[];
  /** Written to the process's stdin, which is then closed (claude reads the prompt from it). */
  stdin: string;
  /** Bind-mounted read-only at the managed-settings path: tool rules the repo cannot override. */
  managedSettings: unknown;
  job: string;
  timeoutMs: number;
  onStdoutLine?: (line: string) => void;
  /** Lines kept under their own cap however much other output came first (claude's result line). */
  keepLine?: (line: string) => boolean;
  signal?: AbortSignal;
  /**
   * Where the egress gateway may tunnel to (the policy's network.allow). Required when the spec mounts the
   * gateway socket volume: the container then runs behind the gateway, which must pass its canary first.
   */
  egressAllow?: AllowRule[];
  /**
   * A run a pre-started sandbox may serve (src/sandbox/warm-pool.ts): a fresh session whose argv is known
   * before its prompt. Absent: always a cold container (a resumed session, whose --resume id comes with the
   * call; an overlay of the repo, whose upper layer is the dispatch's own). No second
   * kind of pooled sandbox (a started container without claude) serves those: measured on a gateway dispatch
   * (bench/dispatch-overhead.mjs setup, 2 cores), the container's create, attach and start take 115-160 ms of a
   * ~900 ms cold dispatch, while claude's own start is ~600 ms of it, which only a pre-started claude removes.
   */
  warm?: WarmRun;
}

export interface WarmRun {
  /** The argv of a fresh session with this id (`cmd` is this with the dispatch's own id). */
  command(sessionId: string): string[];
  pool: WarmPoolSettings;
  /** The HTTP user the dispatch is for: their sandboxes mount their own session volume, so they pool apart. */
  lane?: string;
}

export interface SandboxOutcome extends IoOutcome {
  containerId: string;
  imageId: string;
  /** The gateway's decisions for this dispatch (gateway mode); undefined when it could not report them. */
  egress?: EgressDecision[] | undefined;
  /** A pre-started sandbox served the run: the session id its claude was started with (not the one in `cmd`). */
  sessionId?: string;
  /** The dispatch was killed because its session volume passed its quota (then pruned back under it). */
  sessionQuota?: { volume: string; bytes: number; capBytes: number };
}

export interface RunnerOptions {
  /** Host directory for per-dispatch files (the managed settings); bind-mounted, so the engine must be local. */
  runDir: string;
  /** Added to every container and volume (e.g. a test run's cleanup label). */
  extraLabels?: Record<string, string>;
  /** The egress gateway image (default DEFAULT_GATEWAY_IMAGE). */
  gatewayImage?: string;
  /** The session volume's quota (default SESSION_MAX_MB): a dispatch that passes it is stopped. */
  sessionQuotaMb?: number;
  /**
   * false: the engine does not see this machine's files (tcp://, ssh://), so the managed settings reach the
   * container as a volume on it (src/sandbox/engine-settings.ts), not as a bind mount of the file in runDir.
   */
  sharesFiles?: boolean;
}

const log = logger('sandbox');
/** Each engine call before the container runs (inspect, volume, create, attach, start) must answer within this. */
const PREPARE_MS = 60_000;
/** Longer than the longest dispatch (7200 s) plus its grace: per-dispatch files older than this are stale. */
const STALE_RUN_FILES_MS = 3 * 3600_000;
/** A dispatch that runs this long gets its agent's pool refilled while it runs (else: when it ends). */
const REFILL_AFTER_CLAIM_MS = 2000;
/** The longest any dispatch may run (the policy schema's cap on resources.timeout). */
const LONGEST_DISPATCH_MS = 7200_000;
/** Stands for the session id in a pool key: every pre-started sandbox gets its own. */
const KEY_SESSION = '00000000-0000-4000-8000-000000000000';

/** A created, attached and started container with everything it holds, its command waiting for its input. */
interface Prepared {
  image: Docker.ImageInspectInfo;
  container: Docker.Container;
  attached: AttachedContainer;
  lease: EgressLease | undefined;
  settingsDir: string;
}

/**
 * One fresh container per dispatch: create, attach, start, feed stdin, wait (with a wall-clock kill), remove.
 * The container is removed on every path; a kill takes the whole process tree with it. A run that allows it
 * takes a pre-started one from the warm pool instead (same spec, settings and lease, started earlier), and
 * asks the pool to keep one ready for the agent's next dispatch.
 *
 * Every agent container runs behind the agent init (src/sandbox/agent-init.ts) with AutoRemove: when this
 * server dies its attach connections close, each container's init kills its processes, and the engine
 * removes the container, whether it was idle in the pool or running a dispatch.
 */
export class SandboxRunner {
  private readonly live = new Map<string, Docker.Container>();
  /** Containers of pre-started sandboxes now serving a dispatch, by the dispatch's job (their job label is the pool's). */
  private readonly serving = new Map<string, Docker.Container>();
  /** Session-volume preparations in flight, per volume: concurrent first dispatches of an agent share one. */
  private readonly preparing = new Map<string, Promise<void>>();
  private closed = false;
  /** Off until enableWarmPool: a one-shot CLI dispatch must not start a sandbox nobody will claim. */
  private warmEnabled = false;
  private readonly gateways: GatewayPool;
  private readonly quota: SessionQuota;
  /** Post-dispatch quota checks in flight, per session volume. */
  private readonly quotaChecks = new Map<string, Promise<void>>();
  readonly warmPool = new WarmPool();
  /** `repo: overlay` (src/sandbox/overlay-volume.ts); overlay runs are always cold. */
  readonly overlay: OverlayVolumes;
  private readonly settingsVolumes: SettingsVolumes | undefined;

  constructor(
    private readonly docker: Docker,
    private readonly options: RunnerOptions,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.gateways = new GatewayPool(docker, { image: this.gatewayImage, extraLabels: options.extraLabels ?? {}, env });
    this.quota = new SessionQuota(docker);
    this.overlay = new OverlayVolumes(docker, options.extraLabels ?? {});
    this.settingsVolumes = options.sharesFiles === false ? new SettingsVolumes(docker, options.extraLabels ?? {}) : undefined;
  }

  /**
   * The deadline counts from here (for a pre-started sandbox: from its claim): engine calls before the
   * container starts use up the dispatch's time, and each is bounded, so a slow or hung engine can never
   * stretch a dispatch past its timeout by much.
   */
  async run(request: SandboxRun): Promise<SandboxOutcome> {
    const deadline = Date.now() + request.timeoutMs;
    const stepMs = () => Math.max(1000, Math.min(PREPARE_MS, deadline - Date.now()));
    this.refuseWhen(request.signal);
    const warm = this.warmEnabled && request.warm && request.warm.pool.size > 0 ? request.warm : undefined;
    if (!warm) return this.runCold(request, deadline, stepMs);
    const [image, gatewayImageId] = await Promise.all([this.requireImage(request.spec.Image, stepMs()), this.gatewayImageId(request, stepMs())]);
    const agent = poolName(agentOf(request.spec), warm.lane);
    this.warmPool.revive(agent);
    const key = poolKey(request, warm, image.Id, gatewayImageId);
    const refill = (): void => {
      if (!this.closed) this.warmPool.want(agent, key, warm.pool, () => this.prestart(request, warm));
    };
    // Starting a claude competes for CPU with the dispatch's own: refill when the dispatch ends, or once it has
    // run for REFILL_AFTER_CLAIM_MS (its claude is past its busiest part by then).
    const early = setTimeout(refill, REFILL_AFTER_CLAIM_MS);
    try {
      const claimed = this.warmPool.claim(agent, key) as Prestarted | undefined;
      if (claimed && (await this.recheck(claimed))) return await this.runClaimed(claimed, request, deadline);
      return await this.runCold(request, deadline, stepMs, image);
    } finally {
      clearTimeout(early);
      refill();
    }
  }

  /** Prepare a fresh container for this run and feed it. */
  private async runCold(request: SandboxRun, deadline: number, stepMs: () => number, image?: Docker.ImageInspectInfo): Promise<SandboxOutcome> {
    const prepared = await this.prepare(request, { cmd: request.cmd, prime: request.warm !== undefined }, ownerLabels(request.job, request.timeoutMs), stepMs, image);
    return this.finish(prepared, request, deadline);
  }

  private async runClaimed(claimed: Prestarted, request: SandboxRun, deadline: number): Promise<SandboxOutcome> {
    this.serving.set(request.job, claimed.prepared.container);
    try {
      return { ...(await this.finish(claimed.prepared, request, deadline)), sessionId: claimed.sessionId };
    } finally {
      this.serving.delete(request.job);
    }
  }

  /** A claimed sandbox's gateway must still pass its ping and canary; one that does not is destroyed. */
  private async recheck(claimed: Prestarted): Promise<boolean> {
    if (this.closed) {
      await claimed.destroy();
      this.refuseWhen(undefined);
    }
    try {
      await claimed.prepared.lease?.recheck();
      return true;
    } catch (error) {
      log.warn(`a pre-started sandbox's gateway failed its check; starting a fresh sandbox: ${describeError(error)}`);
      await claimed.destroy();
      return false;
    }
  }

  /**
   * Start a sandbox for a later run like `request`, with its own session id. Labels cannot change once a
   * container exists, so its deadline label (what a later server's reaper goes by) is the latest it could
   * still be running legitimately: its idle limit plus the longest timeout any dispatch may have. The dispatch
   * it serves is still killed at claim + its own timeout by this server (and with this server, by its init).
   */
  private async prestart(request: SandboxRun, warm: WarmRun): Promise<Prestarted> {
    if (this.closed) throw new AppError('SANDBOX_FAILED', 'The server is shutting down.');
    const sessionId = randomUUID();
    const deadline = Date.now() + PREPARE_MS;
    const stepMs = () => Math.max(1000, deadline - Date.now());
    const job = randomUUID().replace(/-/g, '');
    // No job label: it serves no job yet (and an idle one is no running dispatch); the warm label says what it is.
    const owner: Record<string, string> = { ...ownerLabels(job, warm.pool.idle_minutes * 60_000 + LONGEST_DISPATCH_MS), [LABELS.warm]: 'pre-started', ...volumeScopeLabel(request.spec) };
    delete owner[LABELS.job];
    // Only what the sandbox is built from: nothing of the dispatch that asked for it (its signal, callbacks, prompt, timeout).
    const template: SandboxRun = { spec: request.spec, cmd: [], stdin: '', managedSettings: request.managedSettings, job, timeoutMs: LONGEST_DISPATCH_MS, ...(request.egressAllow ? { egressAllow: request.egressAllow } : {}) };
    const prepared = await this.prepare(template, { cmd: warm.command(sessionId), prime: true }, owner, stepMs);
    this.live.delete(prepared.container.id);
    return new Prestarted(prepared, sessionId, () => this.release(prepared));
  }

  private async prepare(request: SandboxRun, command: { cmd: string[]; prime: boolean }, owner: Record<string, string>, stepMs: () => number, known?: Docker.ImageInspectInfo): Promise<Prepared> {
    const image = known ?? (await this.requireImage(request.spec.Image, stepMs()));
    const user = parseUser(request.spec.User);
    await bounded(this.prepareOnce(request.spec, user, owner), stepMs(), 'prepare the session volume');
    this.refuseWhen(request.signal);
    const lease = await this.openEgress(request, owner, stepMs());
    let settingsDir: string | undefined;
    let container: Docker.Container | undefined;
    try {
      settingsDir = this.writeManagedSettings(request.job, request.managedSettings);
      this.refuseWhen(request.signal);
      const wrapped = initCommand(lease ? lease.wrap(command.cmd) : command.cmd, command.prime);
      const spec = lease ? { ...request.spec, Env: [...request.spec.Env, ...lease.env] } : request.spec;
      container = await this.create(spec, wrapped, { ...this.options.extraLabels, ...owner }, settingsDir, stepMs());
      this.live.set(container.id, container);
      this.refuseWhen(request.signal);
      const attached = await AttachedContainer.start(container, { image: request.spec.Image, stepMs });
      return { image, container, attached, lease, settingsDir };
    } catch (error) {
      await this.release({ container, lease, settingsDir });
      throw error;
    }
  }

  /** Feed the prepared container its prompt, wait for it, and release everything it held. */
  private async finish(prepared: Prepared, request: SandboxRun, deadline: number): Promise<SandboxOutcome> {
    const { container, lease } = prepared;
    this.live.set(container.id, container);
    const sessions = request.spec.HostConfig.Mounts.find((m) => m.Type === 'volume' && m.Target === layout.CLAUDE_SESSIONS_DIR)?.Source;
    const capMb = this.options.sessionQuotaMb ?? SESSION_MAX_MB;
    const capBytes = capMb * 1024 * 1024;
    let quota: SandboxOutcome['sessionQuota'];
    const overQuota = new AbortController();
    const unwatch = sessions ? this.quota.watch(sessions, capBytes, (bytes) => ((quota = { volume: sessions, bytes, capBytes }), overQuota.abort())) : () => undefined;
    let io: IoOutcome;
    let egress: EgressDecision[] | undefined;
    try {
      io = await prepared.attached.feed({
        stdin: request.stdin,
        deadline,
        ...(request.onStdoutLine ? { onStdoutLine: request.onStdoutLine } : {}),
        ...(request.keepLine ? { keepLine: request.keepLine } : {}),
        signal: request.signal ? AbortSignal.any([request.signal, overQuota.signal]) : overQuota.signal,
      });
    } finally {
      unwatch();
      egress = await this.release(prepared);
    }
    if (sessions) {
      const volume = { name: sessions, image: request.spec.Image, owner: parseUser(request.spec.User), labels: { ...this.options.extraLabels } };
      const limits = { maxDays: SESSION_MAX_DAYS, maxMb: capMb };
      if (quota) await pruneSessionVolume(this.docker, volume, limits);
      else this.checkQuotaAfter(volume, capBytes, limits);
    }
    return { ...io, containerId: container.id, imageId: prepared.image.Id, ...(lease ? { egress } : {}), ...(quota ? { sessionQuota: quota } : {}) };
  }

  /**
   * A dispatch can write faster than the quota's poll: once it has ended, the volume is measured once more and
   * pruned if it is over, off the dispatch's critical path. The next preparation of that volume waits for it.
   */
  private checkQuotaAfter(volume: SessionVolume, capBytes: number, limits: PruneLimits): void {
    const previous = this.quotaChecks.get(volume.name) ?? Promise.resolve();
    const check = previous
      .then(async () => {
        const bytes = await this.quota.usage(volume.name);
        if (bytes !== undefined && bytes > capBytes) {
          log.warn(`the session volume ${volume.name} holds ${Math.round(bytes / 1048576)} MB, past its quota: pruning it`);
          await pruneSessionVolume(this.docker, volume, limits);
        }
      })
      .catch((error: unknown) => log.debug(`session quota check failed: ${describeError(error)}`))
      .finally(() => {
        if (this.quotaChecks.get(volume.name) === check) this.quotaChecks.delete(volume.name);
      });
    this.quotaChecks.set(volume.name, check);
  }

  /**
   * Remove the container, then release the lease (with the container gone, the gateway's decisions for its
   * token are final) and the per-dispatch files. Never throws.
   */
  private async release(held: { container?: Docker.Container | undefined; lease?: EgressLease | undefined; settingsDir?: string | undefined; attached?: AttachedContainer }): Promise<EgressDecision[] | undefined> {
    held.attached?.detach();
    if (held.container) {
      this.live.delete(held.container.id);
      await removeQuietly(held.container);
    }
    const egress = held.lease ? await held.lease.release() : undefined;
    if (held.settingsDir) this.removeRunFiles(held.settingsDir);
    return egress;
  }

  /** Gateway mode: a lease on the agent's gateway, which has just passed its canary; else undefined. */
  private async openEgress(request: SandboxRun, owner: Record<string, string>, ms: number): Promise<EgressLease | undefined> {
    const mount = request.spec.HostConfig.Mounts.find((m) => m.Type === 'volume' && m.Target === GATEWAY_SOCKET_DIR);
    if (!mount?.Source) return undefined;
    if (!request.egressAllow) throw new AppError('SANDBOX_FAILED', 'The container spec routes through the egress gateway but the dispatch gave no allowlist; nothing was started.');
    const { [LABELS.deadline]: _deadline, [LABELS.job]: _job, [LABELS.warm]: _warm, ...gatewayOwner } = owner;
    return this.gateways.open({
      agent: request.spec.Labels[`${layout.LABEL_PREFIX}.agent`] ?? '?',
      volume: mount.Source,
      volumeLabels: mount.VolumeOptions?.Labels ?? {},
      allow: request.egressAllow,
      ownerLabels: gatewayOwner,
      stepMs: ms,
    });
  }

  private removeRunFiles(settingsDir: string): void {
    try {
      rmSync(settingsDir, { recursive: true, force: true });
    } catch (error) {
      log.warn(`could not remove ${settingsDir} (the next server start sweeps it): ${describeError(error)}`);
    }
  }

  /**
   * Keep pre-started sandboxes for the agents this runner dispatches to (settings.warm_pool): for a long-lived
   * server, which calls it at start.
   */
  enableWarmPool(): void {
    this.warmEnabled = true;
  }

  /** Remove dispatch containers left by a server that is gone (run once at server start). */
  reapOrphans(): Promise<number> {
    return reapOrphans(this.docker);
  }

  /** Remove per-dispatch files a killed server left (older than any dispatch can run). */
  sweepRunDir(now: number = Date.now()): number {
    let removed = 0;
    let names: string[];
    try {
      names = readdirSync(this.options.runDir);
    } catch {
      return 0;
    }
    for (const name of names) {
      const path = join(this.options.runDir, name);
      try {
        if (now - statSync(path).mtimeMs < STALE_RUN_FILES_MS) continue;
        rmSync(path, { recursive: true, force: true });
        removed += 1;
      } catch {
        // gone meanwhile, or not ours to remove
      }
    }
    return removed;
  }

  /** Containers this server started that are still there (a job label of ours); 0 after every dispatch. */
  async leftoverContainers(job: string): Promise<number> {
    return (await this.docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.job}=${job}`] }) })).length;
  }

  /** Kill and remove the containers of one job, wherever they were started from (dispatch_cancel, `cancel ID`). */
  async removeJobContainers(job: string): Promise<number> {
    // A pre-started sandbox serving the job carries the pool's job label, not the job's.
    const serving = this.serving.get(job);
    const [byLabel] = await Promise.all([removeJobContainers(this.docker, job), serving ? removeQuietly(serving) : undefined]);
    return byLabel + (serving ? 1 : 0);
  }

  /** Containers of an agent (dispatches and its gateway) that still exist. */
  async agentContainers(agent: string): Promise<number> {
    return (await this.docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.agent}=${agent}`] }) })).length;
  }

  /** The host address of the default bridge: what a container on it reaches host services through. */
  bridgeAddress(): Promise<string> {
    return bridgeAddress(this.docker);
  }

  /** Kill and remove every container this runner still has running (server shutdown). */
  async shutdown(): Promise<void> {
    this.closed = true;
    await this.warmPool.shutdown();
    await Promise.all([...this.live.values()].map((c) => removeQuietly(c)));
    this.live.clear();
    await this.gateways.shutdown();
    await Promise.allSettled([...this.quotaChecks.values()]);
  }

  private get gatewayImage(): string {
    return this.options.gatewayImage ?? DEFAULT_GATEWAY_IMAGE;
  }

  /** Gateway mode: the id of the gateway image now (part of a pool key: a rebuilt gateway image changes it). */
  private async gatewayImageId(request: SandboxRun, ms: number): Promise<string | null> {
    if (!request.spec.HostConfig.Mounts.some((m) => m.Type === 'volume' && m.Target === GATEWAY_SOCKET_DIR)) return null;
    try {
      return (await bounded(this.docker.getImage(this.gatewayImage).inspect(), ms, `inspect the image ${this.gatewayImage}`)).Id;
    } catch {
      return null; // the gateway pool reports a missing image with its own hint when the dispatch opens its lease
    }
  }

  private prepareOnce(spec: ContainerSpec, user: { uid: number; gid: number }, owner: Record<string, string>): Promise<void> {
    const key = `${spec.HostConfig.Mounts.find((m) => m.Target === layout.CLAUDE_SESSIONS_DIR)?.Source ?? ''}`;
    const inFlight = this.preparing.get(key);
    if (inFlight) return inFlight;
    const checked = this.quotaChecks.get(key) ?? Promise.resolve();
    const preparation = checked.then(() => prepareStateVolume(this.docker, spec, user, this.options.extraLabels ?? {}, owner)).finally(() => this.preparing.delete(key));
    this.preparing.set(key, preparation);
    return preparation;
  }

  /**
   * No container may start after shutdown began or once the caller cancelled (one being created meanwhile is
   * removed by run's finally).
   */
  private refuseWhen(signal: AbortSignal | undefined): void {
    if (this.closed) throw new AppError('SANDBOX_FAILED', 'The server is shutting down; the dispatch was not started.', { hint: 'Retry once the server is back.' });
    if (signal?.aborted) throw new AppError('SANDBOX_CANCELLED', 'The dispatch was cancelled before its container started.');
  }

  private async requireImage(image: string, ms: number): Promise<Docker.ImageInspectInfo> {
    try {
      return await bounded(this.docker.getImage(image).inspect(), ms, `inspect the image ${image}`);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) throw imageMissing(image, error);
      throw sandboxError(error, `inspect the image ${image}`, image);
    }
  }

  private writeManagedSettings(job: string, settings: unknown): string {
    let dir: string | undefined;
    try {
      mkdirSync(this.options.runDir, { recursive: true, mode: 0o700 });
      dir = mkdtempSync(join(this.options.runDir, `${job}-`));
      // 0644: the container user (not the server's uid) must read it; it holds tool rules, no secret.
      writeFileSync(join(dir, layout.MANAGED_SETTINGS_FILE), JSON.stringify(settings), { mode: 0o644 });
    } catch (error) {
      if (dir) rmSync(dir, { recursive: true, force: true });
      throw new AppError('SANDBOX_FAILED', `Could not write the managed settings for the container: ${describeError(error)}`, {
        hint: `Check free space and permissions of ${this.options.runDir}.`,
      });
    }
    return dir;
  }

  private async create(source: ContainerSpec, cmd: string[], labels: Record<string, string>, settingsDir: string, ms: number): Promise<Docker.Container> {
    const volumes = this.settingsVolumes;
    if (!volumes) return this.createWith(source, cmd, labels, { Type: 'bind', Source: join(settingsDir, layout.MANAGED_SETTINGS_FILE), Target: layout.MANAGED_SETTINGS_PATH, ReadOnly: true }, ms);
    // A second round only when a gc removed the settings volume between its fill and this container (see held).
    for (let round = 1; ; round++) {
      const settings = await volumes.mount(settingsDir, source, ms);
      const container = await this.createWith(source, cmd, labels, settings, ms);
      if (await volumes.held(settings, container, ms)) return container;
      if (round === 2) throw new AppError('SANDBOX_FAILED', `The managed-settings volume ${settings.Source} was removed twice while the container was made.`, { hint: "Retry; do not run 'agent-dispatch gc --volumes' in a loop while dispatching." });
    }
  }

  private async createWith(source: ContainerSpec, cmd: string[], labels: Record<string, string>, settings: MountSpec, ms: number): Promise<Docker.Container> {
    const spec = structuredClone(source);
    const body = {
      ...spec,
      Cmd: cmd,
      OpenStdin: true,
      StdinOnce: true,
      AttachStdin: true,
      Labels: { ...spec.Labels, ...labels },
      HostConfig: {
        ...spec.HostConfig,
        // The engine removes it when it exits, also when no server is left to do it (see the class comment).
        AutoRemove: true,
        Mounts: [
          ...spec.HostConfig.Mounts.map((m) =>
            m.Type === 'volume' ? { ...m, VolumeOptions: { ...m.VolumeOptions, Labels: { ...m.VolumeOptions?.Labels, ...this.options.extraLabels } } } : m,
          ),
          settings,
        ],
      },
    };
    const creating = this.docker.createContainer(body as unknown as Docker.ContainerCreateOptions);
    try {
      return await bounded(creating, ms, 'create the container');
    } catch (error) {
      // A container the engine creates after we gave up waiting would be nobody's: remove it when it appears.
      creating.then((late) => removeQuietly(late), () => undefined);
      throw sandboxError(error, 'create the container', spec.Image);
    }
  }

}

/** A runner on the engine an agent names (src/config/engine-spec.ts); absent: DOCKER_HOST, else the local socket. */
export function createSandboxRunner(options: RunnerOptions, env: NodeJS.ProcessEnv = process.env, engine?: EngineSpec): SandboxRunner {
  return new SandboxRunner(new Docker(engineDockerOptions(engine, env)), { ...options, sharesFiles: engineSharesFiles(engine) }, env);
}

function parseUser(user: string): { uid: number; gid: number } {
  const [uid, gid] = user.split(':').map(Number);
  return { uid: uid ?? layout.CONTAINER_UID, gid: gid ?? uid ?? layout.CONTAINER_GID };
}

/** The session volume's scope label: removing the agent (src/sandbox/volumes.ts) finds its pre-started sandboxes by it. */
function volumeScopeLabel(spec: ContainerSpec): Record<string, string> {
  const key = `${layout.LABEL_PREFIX}.scope`;
  const scope = spec.HostConfig.Mounts.find((m) => m.Target === layout.CLAUDE_SESSIONS_DIR)?.VolumeOptions?.Labels?.[key];
  return scope ? { [key]: scope } : {};
}

function agentOf(spec: ContainerSpec): string {
  return spec.Labels[LABELS.agent] ?? '?';
}

/**
 * Everything a pre-started sandbox is built from: two runs with one key get identical sandboxes. Not the
 * timeout: it is counted from the claim, so a per-call timeout can still use the pool.
 */
function poolKey(request: SandboxRun, warm: WarmRun, imageId: string, gatewayImageId: string | null): string {
  const material = [imageId, gatewayImageId, request.spec, warm.command(KEY_SESSION), request.managedSettings, request.egressAllow ?? null];
  return createHash('sha256').update(JSON.stringify(material)).digest('hex');
}

class Prestarted implements WarmSandbox {
  private destroyed: Promise<void> | undefined;

  constructor(
    readonly prepared: Prepared,
    readonly sessionId: string,
    private readonly releaseAll: () => Promise<unknown>,
  ) {}

  alive(): boolean {
    return this.destroyed === undefined && this.prepared.attached.exitedWith === undefined;
  }

  ready(): boolean {
    return this.prepared.attached.ready;
  }

  onExit(listener: () => void): void {
    this.prepared.attached.onExit(listener);
  }

  destroy(): Promise<void> {
    this.destroyed ??= this.releaseAll().then(() => undefined);
    return this.destroyed;
  }
}
