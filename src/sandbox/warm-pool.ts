/**
 * Pre-started, single-use sandboxes per agent: each is a started agent container whose `claude -p` (with the
 * agent's fixed arguments and its own pre-assigned session id) has initialised and waits for its prompt, with
 * its gateway lease and managed settings in place. A dispatch whose sandbox would be identical (same key: image
 * ids, compiled spec, argv, managed settings, allowlist, timeout) takes one; nothing else can take it after
 * that, and it is destroyed when its dispatch ends. Its gateway token, registered with the allowlist when it was
 * started, is its own, so one token still means one dispatch; the claim re-runs the gateway's ping and canary.
 * A different key for the agent (a policy or agents.yaml edit, a rebuilt image) makes every pooled sandbox of
 * that agent go at the next claim, before it could be used.
 *
 * Each HTTP user of an agent has a lane of their own (their sandboxes mount their own session volume), so
 * users who take turns on one agent do not destroy each other's sandboxes as a changed key would.
 *
 * Bounds: `size` per agent and lane, kept only for agents dispatched within `idle_minutes` (a sandbox idle that long is
 * destroyed and not replaced), and a memory budget for all idle sandboxes together. The runner asks for a
 * refill when a dispatch ends, or a little after a claim when the dispatch runs longer (src/sandbox/runner.ts);
 * fills run one at a time per agent, off every dispatch's path.
 */
import { describeError } from '../errors.js';
import { logger } from '../log.js';

const log = logger('warm-pool');

/**
 * What one idle sandbox holds, measured with the engine's stats (cgroup memory usage) on the test agent image
 * (claude 2.1.197 initialised and waiting for its prompt): 102 MiB under an open-network policy, 108 MiB behind
 * the gateway (with the in-container bridge). Rounded up; the budget counts each idle sandbox as this much.
 */
export const IDLE_SANDBOX_BYTES = 128 * 1024 * 1024;
/** At shutdown, how long a sandbox still starting may take before the server stops waiting for it. */
const SHUTDOWN_FILL_WAIT_MS = 20_000;

/** settings.warm_pool of agents.yaml (src/config/schema.ts). */
export interface WarmPoolSettings {
  /** Idle sandboxes kept per recently dispatched agent; 0 disables the pool. */
  size: number;
  idle_minutes: number;
  /** All idle sandboxes together; a refill that would pass it is skipped. */
  memory_mb: number;
}

/** A started sandbox waiting for its prompt. `destroy` removes it and releases what it holds; never throws. */
export interface WarmSandbox {
  readonly sessionId: string;
  /** False once its container exited (it is then never handed out). */
  alive(): boolean;
  /** Its claude has finished initialising (a claim before that still gains what was done). */
  ready(): boolean;
  onExit(listener: () => void): void;
  destroy(): Promise<void>;
}

interface Idle {
  key: string;
  sandbox: WarmSandbox;
  since: number;
  expiry: NodeJS.Timeout;
}

interface Wanted {
  key: string;
  settings: WarmPoolSettings;
  fill: () => Promise<WarmSandbox>;
  filling: boolean;
  /** Bumped when the key changes: a fill of an older key that completes is destroyed, not pooled. */
  generation: number;
}

/** Separates an agent from a user's lane in a pool name; no agent or user name can contain it. */
const LANE_SEPARATOR = '\u0000';

/** The pool a sandbox belongs to: the agent's own, or an HTTP user's lane of it (`lane` = the user). */
export function poolName(agent: string, lane?: string): string {
  return lane === undefined ? agent : `${agent}${LANE_SEPARATOR}${lane}`;
}

function splitPool(pool: string): { agent: string; lane?: string } {
  const at = pool.indexOf(LANE_SEPARATOR);
  return at === -1 ? { agent: pool } : { agent: pool.slice(0, at), lane: pool.slice(at + 1) };
}

export interface AgentPoolStatus {
  agent: string;
  /** The HTTP user whose lane this is; absent for the agent's own pool (the local user). */
  lane?: string;
  idle: number;
  /** Idle and initialised. */
  ready: number;
  filling: boolean;
  size: number;
  /** Age of the oldest idle sandbox, seconds. */
  oldestIdleSeconds?: number;
}

export class WarmPool {
  /** Removed agents: no sandbox is started for them (see forget). */
  private readonly forgotten = new Set<string>();
  private readonly idle = new Map<string, Idle[]>();
  private readonly wanted = new Map<string, Wanted>();
  private readonly destroying = new Set<Promise<void>>();
  private readonly fills = new Set<Promise<void>>();
  private closed = false;
  /** Sandboxes handed to a dispatch so far. */
  claimed = 0;

  /**
   * `agent` below is a pool name (poolName: the agent, or a user's lane of it).
   * Take an idle sandbox of `key` for `agent` out of the pool, synchronously, so two dispatches can never get
   * the same one. The agent's sandboxes of any other key are destroyed first: they were built from a policy,
   * config or image that no longer holds.
   */
  claim(agent: string, key: string): WarmSandbox | undefined {
    this.invalidate(agent, key);
    const list = this.idle.get(agent) ?? [];
    for (let entry = list.shift(); entry; entry = list.shift()) {
      clearTimeout(entry.expiry);
      if (entry.sandbox.alive()) {
        if (list.length === 0) this.idle.delete(agent);
        this.claimed += 1;
        return entry.sandbox;
      }
      this.discard(entry.sandbox, 'its container had exited');
    }
    this.idle.delete(agent);
    return undefined;
  }

  /** A dispatch of `agent` (sandbox `key`) has ended: keep `settings.size` sandboxes of its kind ready. */
  want(agent: string, key: string, settings: WarmPoolSettings, fill: () => Promise<WarmSandbox>): void {
    if (this.closed || this.forgotten.has(splitPool(agent).agent)) return;
    this.invalidate(agent, key);
    const previous = this.wanted.get(agent);
    if (previous?.key === key) Object.assign(previous, { settings, fill });
    // A fill of the previous key that is still running ends up destroyed (its generation is stale).
    else this.wanted.set(agent, { key, settings, fill, filling: false, generation: (previous?.generation ?? 0) + 1 });
    this.refill(agent);
  }

  status(): AgentPoolStatus[] {
    const now = Date.now();
    return [...this.wanted.entries()].map(([agent, wanted]) => {
      const idle = this.idle.get(agent) ?? [];
      const oldest = idle.reduce((min, e) => Math.min(min, e.since), now);
      return { ...splitPool(agent), idle: idle.length, ready: idle.filter((e) => e.sandbox.ready()).length, filling: wanted.filling, size: wanted.settings.size, ...(idle.length ? { oldestIdleSeconds: Math.round((now - oldest) / 1000) } : {}) };
    });
  }

  /** Idle sandboxes across all agents. */
  get idleCount(): number {
    let n = 0;
    for (const list of this.idle.values()) n += list.length;
    return n;
  }

  /**
   * Resolves once no fill is running and every idle sandbox has initialised, or after `maxMs` (benchmarks and
   * tests wait for a full, quiet pool with it).
   */
  async settled(maxMs = 60_000): Promise<void> {
    const until = Date.now() + maxMs;
    const busy = () => [...this.wanted.values()].some((w) => w.filling) || [...this.idle.values()].some((list) => list.some((e) => !e.sandbox.ready()));
    while (busy() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  }

  /**
   * The agent was removed: its idle sandboxes go, one still starting is destroyed once it has started, and a
   * dispatch of it that was already running asks for no more (until `revive`, when it is dispatched again).
   * Resolves once none of its sandboxes exists, so its volumes can be removed.
   */
  async forget(agent: string): Promise<void> {
    this.forgotten.add(agent);
    const pools = new Set([...this.wanted.keys(), ...this.idle.keys()].filter((pool) => splitPool(pool).agent === agent));
    for (const pool of pools) {
      this.wanted.delete(pool);
      this.drop(pool, 'the agent was removed');
    }
    await Promise.race([Promise.all([...this.fills]), new Promise((resolve) => setTimeout(resolve, SHUTDOWN_FILL_WAIT_MS).unref())]);
    await Promise.all([...this.destroying]);
  }

  /** A dispatch of `agent` (a pool name) starts: a removed agent of that name was added again. */
  revive(agent: string): void {
    this.forgotten.delete(splitPool(agent).agent);
  }

  /** Destroy every idle sandbox, and each one still starting once it has started. */
  async shutdown(): Promise<void> {
    this.closed = true;
    for (const agent of [...this.idle.keys()]) this.drop(agent, 'the server is shutting down');
    this.wanted.clear();
    await Promise.race([Promise.all([...this.fills]), new Promise((resolve) => setTimeout(resolve, SHUTDOWN_FILL_WAIT_MS).unref())]);
    await Promise.all([...this.destroying]);
  }

  private refill(agent: string): void {
    const wanted = this.wanted.get(agent);
    if (!wanted || wanted.filling || this.closed) return;
    const have = this.idle.get(agent)?.length ?? 0;
    if (have >= wanted.settings.size) return;
    if ((this.idleCount + 1) * IDLE_SANDBOX_BYTES > wanted.settings.memory_mb * 1024 * 1024) {
      log.debug(`no warm sandbox for '${agent}': the idle pool's memory budget is used up`);
      return;
    }
    wanted.filling = true;
    const { generation } = wanted;
    const filled = new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
      wanted
        .fill()
        .then(
          (sandbox) => this.add(agent, wanted, generation, sandbox),
          (error: unknown) => {
            if (this.closed) log.debug(`a sandbox for '${agent}' was still starting at shutdown: ${describeError(error)}`);
            else log.warn(`could not pre-start a sandbox for '${agent}' (its next dispatch starts cold): ${describeError(error)}`);
            return false;
          },
        )
        .then((added) => {
          wanted.filling = false;
          this.fills.delete(filled);
          // A failure is not retried in a loop: the agent's next dispatch asks again.
          if (added && this.wanted.get(agent) === wanted) this.refill(agent);
        }),
    );
    this.fills.add(filled);
  }

  private add(agent: string, wanted: Wanted, generation: number, sandbox: WarmSandbox): boolean {
    const current = this.wanted.get(agent);
    if (this.closed || current !== wanted || wanted.generation !== generation || !sandbox.alive()) {
      this.discard(sandbox, 'its policy or image changed while it started');
      return false;
    }
    const entry: Idle = {
      key: wanted.key,
      sandbox,
      since: Date.now(),
      expiry: setTimeout(() => this.expire(agent, entry), wanted.settings.idle_minutes * 60_000),
    };
    entry.expiry.unref();
    const list = this.idle.get(agent) ?? [];
    list.push(entry);
    this.idle.set(agent, list);
    sandbox.onExit(() => {
      if (this.remove(agent, entry)) this.discard(sandbox, 'its container exited while idle');
    });
    return true;
  }

  /** Unused for idle_minutes: the agent is no longer dispatched often enough to keep one ready. */
  private expire(agent: string, entry: Idle): void {
    if (!this.remove(agent, entry)) return;
    if (!this.idle.has(agent)) this.wanted.delete(agent);
    this.discard(entry.sandbox, 'idle too long');
  }

  private remove(agent: string, entry: Idle): boolean {
    const list = this.idle.get(agent);
    const at = list?.indexOf(entry) ?? -1;
    if (!list || at === -1) return false;
    clearTimeout(entry.expiry);
    list.splice(at, 1);
    if (list.length === 0) this.idle.delete(agent);
    return true;
  }

  private invalidate(agent: string, key: string): void {
    const list = this.idle.get(agent);
    if (list?.some((e) => e.key !== key)) {
      for (const entry of list.filter((e) => e.key !== key)) {
        this.remove(agent, entry);
        this.discard(entry.sandbox, 'its policy, config or image changed');
      }
    }
    const wanted = this.wanted.get(agent);
    if (wanted && wanted.key !== key) wanted.generation += 1;
  }

  private drop(agent: string, reason: string): void {
    for (const entry of [...(this.idle.get(agent) ?? [])]) {
      this.remove(agent, entry);
      this.discard(entry.sandbox, reason);
    }
  }

  private discard(sandbox: WarmSandbox, reason: string): void {
    log.debug(`destroying a pre-started sandbox: ${reason}`);
    const done = sandbox.destroy().finally(() => this.destroying.delete(done));
    this.destroying.add(done);
  }
}
