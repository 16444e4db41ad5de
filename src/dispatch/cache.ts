import { createHash } from 'node:crypto';

/** The cacheable subset of a dispatch result (the dispatch issue defines the full shape). */
export interface CacheableResult {
  success: boolean;
  denied_tools?: string[] | null;
  budget_exceeded?: boolean | null;
  /** `repo: overlay` results: the key does not cover the repo's content, so these are never cached. */
  patch?: string | null;
  patch_file?: string | null;
  [key: string]: unknown;
}

export interface CacheKeyParts {
  /** The HTTP user who asked: one user is never answered with another's cached result ('' or absent: local). */
  user?: string | null;
  agent: string;
  task: string;
  context?: string | null;
  caller?: string | null;
  goal?: string | null;
  response_format?: string | null;
  /**
   * A digest of the agent's effective configuration (directory, policy, model, tools, budget). Changing
   * the agent from another process (CLI) then misses the cache by itself — the original could not see that.
   */
  fingerprint?: string | null;
}

export interface CacheStats {
  size: number;
  max_size: number;
  hits: number;
  misses: number;
  evictions: number;
  hit_rate: number;
  ttl: number;
}

interface Entry {
  storedAt: number;
  agent: string;
  user: string;
  result: CacheableResult;
}

interface Counters {
  hits: number;
  misses: number;
  evictions: number;
}

const zero = (): Counters => ({ hits: 0, misses: 0, evictions: 0 });

/** In-memory TTL cache of clean dispatch results; FIFO eviction at capacity; hands out copies. */
export class DispatchCache {
  readonly ttl: number;
  readonly maxSize: number;
  private readonly entries = new Map<string, Entry>();
  /** Counts per HTTP user (the local user's under ''): a user's cache_stats shows only their own; the whole cache's are their sum. */
  private readonly perUser = new Map<string, Counters>();
  private readonly now: () => number;

  constructor(ttl: number, maxSize: number, now: () => number = () => performance.now() / 1000) {
    this.ttl = ttl;
    this.maxSize = maxSize;
    this.now = now;
  }

  static key(parts: CacheKeyParts): string {
    const canonical = {
      user: parts.user ?? '',
      agent: parts.agent,
      caller: parts.caller ?? '',
      context: parts.context ?? '',
      fingerprint: parts.fingerprint ?? '',
      goal: parts.goal ?? '',
      response_format: parts.response_format ?? '',
      task: parts.task,
    };
    return createHash('sha256').update(JSON.stringify(canonical)).digest('hex');
  }

  get(parts: CacheKeyParts): CacheableResult | undefined {
    const key = DispatchCache.key(parts);
    const entry = this.entries.get(key);
    if (!entry || this.expired(entry)) {
      if (entry) this.entries.delete(key);
      this.count(parts.user ?? '', 'misses');
      return undefined;
    }
    this.count(parts.user ?? '', 'hits');
    return structuredClone(entry.result);
  }

  /**
   * Only clean successes are stored: no failures, no denied tools, no budget overrun — and no overlay patch
   * (`patch`/`patch_file`): the key does not cover the repo's content, so after the patch is applied the same
   * dispatch must run again rather than return the stale patch.
   */
  put(parts: CacheKeyParts, result: CacheableResult): boolean {
    if (!result.success || (result.denied_tools && result.denied_tools.length > 0) || result.budget_exceeded) return false;
    if (result.patch != null || result.patch_file != null) return false;
    const key = DispatchCache.key(parts);
    if (!this.entries.has(key) && this.entries.size >= this.maxSize) {
      let oldestKey: string | undefined;
      let oldest: Entry | undefined;
      for (const [k, e] of this.entries) {
        if (e.storedAt < (oldest?.storedAt ?? Infinity)) {
          oldest = e;
          oldestKey = k;
        }
      }
      if (oldestKey !== undefined) {
        this.entries.delete(oldestKey);
        this.count(oldest!.user, 'evictions');
      }
    }
    this.entries.delete(key);
    this.entries.set(key, { storedAt: this.now(), agent: parts.agent, user: parts.user ?? '', result: structuredClone(result) });
    return true;
  }

  invalidateAgent(agent: string): number {
    let removed = 0;
    for (const [k, e] of this.entries) {
      if (e.agent === agent) {
        this.entries.delete(k);
        removed++;
      }
    }
    return removed;
  }

  evictExpired(): number {
    let removed = 0;
    for (const [k, e] of this.entries) {
      if (this.expired(e)) {
        this.entries.delete(k);
        removed++;
      }
    }
    return removed;
  }

  clear(): number {
    const count = this.entries.size;
    this.entries.clear();
    this.perUser.clear();
    return count;
  }

  /**
   * The whole cache's counts, or with `user` only that user's entries and lookups: one user must not learn from
   * the counters when, or how much, other users dispatch.
   */
  stats(user?: string): CacheStats {
    const counters = user === undefined ? this.totals() : (this.perUser.get(user) ?? zero());
    const size = user === undefined ? this.entries.size : [...this.entries.values()].filter((e) => e.user === user).length;
    const lookups = counters.hits + counters.misses;
    return {
      size,
      max_size: this.maxSize,
      ...counters,
      hit_rate: lookups === 0 ? 0 : Math.round((counters.hits / lookups) * 1000) / 1000,
      ttl: this.ttl,
    };
  }

  private totals(): Counters {
    const sum = zero();
    for (const own of this.perUser.values()) for (const counter of Object.keys(sum) as (keyof Counters)[]) sum[counter] += own[counter];
    return sum;
  }

  private count(user: string, counter: keyof Counters): void {
    let own = this.perUser.get(user);
    if (!own) this.perUser.set(user, (own = zero()));
    own[counter]++;
  }

  private expired(entry: Entry): boolean {
    return this.now() - entry.storedAt > this.ttl;
  }
}
