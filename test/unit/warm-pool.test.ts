/**
 * The warm pool's bookkeeping with stand-in sandboxes (test/integration/warm-pool.test.ts runs real ones):
 * single claims, fills one at a time up to the size, invalidation by key, the memory budget, idle expiry, a
 * sandbox that dies while idle, fills that fail or finish after a change, and shutdown.
 */
import { describe, expect, it } from 'vitest';
import { IDLE_SANDBOX_BYTES, poolName, WarmPool, type WarmPoolSettings, type WarmSandbox } from '../../src/sandbox/warm-pool.js';

const MIB = 1024 * 1024;
const settings = (overrides: Partial<WarmPoolSettings> = {}): WarmPoolSettings => ({ size: 1, idle_minutes: 10, memory_mb: 1024, ...overrides });

class Fake implements WarmSandbox {
  static made = 0;
  readonly sessionId = `session-${++Fake.made}`;
  destroyed = 0;
  exited = false;
  private readonly listeners: (() => void)[] = [];
  alive(): boolean {
    return !this.exited && this.destroyed === 0;
  }
  ready(): boolean {
    return true;
  }
  onExit(listener: () => void): void {
    this.listeners.push(listener);
  }
  exit(): void {
    this.exited = true;
    for (const listener of this.listeners) listener();
  }
  async destroy(): Promise<void> {
    this.destroyed += 1;
  }
}

/** A fill function that records its sandboxes and how many ran at once. */
function filler(fail = false) {
  const made: Fake[] = [];
  let running = 0;
  let maxRunning = 0;
  const fill = async (): Promise<WarmSandbox> => {
    running += 1;
    maxRunning = Math.max(maxRunning, running);
    await new Promise((resolve) => setTimeout(resolve, 5));
    running -= 1;
    if (fail) throw new Error('engine said no');
    const sandbox = new Fake();
    made.push(sandbox);
    return sandbox;
  };
  return { fill, made, maxRunning: () => maxRunning };
}

describe('warm pool', () => {
  it('forget: a removed agent\'s idle and still-starting sandboxes are destroyed, and no more start until it is dispatched again', async () => {
    const pool = new WarmPool();
    const f = filler();
    pool.want('a', 'k1', settings({ size: 1 }), f.fill);
    await pool.settled();
    pool.want('b', 'k1', settings({ size: 1 }), f.fill);
    await pool.forget('a');
    expect(f.made[0]!.destroyed).toBe(1);
    pool.want('a', 'k1', settings({ size: 1 }), f.fill);
    await pool.settled();
    expect(pool.claim('a', 'k1')).toBeUndefined();
    pool.revive('a');
    pool.want('a', 'k1', settings({ size: 1 }), f.fill);
    await pool.settled();
    expect(pool.claim('a', 'k1')).toBeDefined();
  });

  it("each HTTP user's lane of an agent pools apart: users taking turns do not destroy each other's sandboxes; forget covers every lane", async () => {
    const pool = new WarmPool();
    const f = filler();
    const alice = poolName('a', 'alice');
    const bob = poolName('a', 'bob');
    pool.want(alice, 'k-alice', settings({ size: 1 }), f.fill);
    pool.want(bob, 'k-bob', settings({ size: 1 }), f.fill);
    pool.want('a', 'k-local', settings({ size: 1 }), f.fill);
    await pool.settled();
    expect(f.made).toHaveLength(3);
    expect(pool.claim(alice, 'k-alice')).toBeDefined();
    expect(pool.claim(bob, 'k-bob')).toBeDefined();
    expect(f.made.filter((s) => s.destroyed > 0)).toEqual([]);
    expect(pool.status().map((s) => [s.agent, s.lane]).sort()).toEqual([['a', undefined], ['a', 'alice'], ['a', 'bob']]);
    pool.want(alice, 'k-alice', settings({ size: 1 }), f.fill);
    await pool.settled();
    await pool.forget('a');
    expect(pool.idleCount).toBe(0);
    expect(pool.status()).toEqual([]);
    pool.want(bob, 'k-bob', settings({ size: 1 }), f.fill);
    await pool.settled();
    expect(pool.claim(bob, 'k-bob')).toBeUndefined();
    pool.revive(bob);
    pool.want(bob, 'k-bob', settings({ size: 1 }), f.fill);
    await pool.settled();
    expect(pool.claim(bob, 'k-bob')).toBeDefined();
  });

  it('fills one at a time up to the size, and hands each sandbox out once', async () => {
    const pool = new WarmPool();
    const f = filler();
    pool.want('a', 'k1', settings({ size: 3 }), f.fill);
    await pool.settled();
    expect(f.made).toHaveLength(3);
    expect(f.maxRunning()).toBe(1);
    const claimed = [pool.claim('a', 'k1'), pool.claim('a', 'k1'), pool.claim('a', 'k1'), pool.claim('a', 'k1')];
    expect(claimed.slice(0, 3).map((s) => s?.sessionId).sort()).toEqual(f.made.map((s) => s.sessionId).sort());
    expect(claimed[3]).toBeUndefined();
    expect(pool.claimed).toBe(3);
    expect(pool.claim('b', 'k1')).toBeUndefined();
  });

  it('a claim with another key (policy, config or image changed) destroys the agent’s sandboxes and gets none', async () => {
    const pool = new WarmPool();
    const f = filler();
    pool.want('a', 'old', settings({ size: 2 }), f.fill);
    await pool.settled();
    expect(pool.claim('a', 'new')).toBeUndefined();
    expect(f.made.map((s) => s.destroyed)).toEqual([1, 1]);
    expect(pool.status()).toEqual([expect.objectContaining({ agent: 'a', idle: 0 })]);
  });

  it('a fill that finishes after the key changed is destroyed, not pooled', async () => {
    const pool = new WarmPool();
    const old = filler();
    pool.want('a', 'old', settings(), old.fill);
    const fresh = filler();
    pool.want('a', 'new', settings(), fresh.fill);
    await pool.settled();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(old.made[0]?.destroyed).toBe(1);
    expect(pool.claim('a', 'new')?.sessionId).toBe(fresh.made[0]!.sessionId);
  });

  it('keeps the idle sandboxes of all agents within the memory budget', async () => {
    const pool = new WarmPool();
    const budget = settings({ size: 4, memory_mb: (2 * IDLE_SANDBOX_BYTES) / MIB });
    const a = filler();
    const b = filler();
    pool.want('a', 'k', budget, a.fill);
    await pool.settled();
    pool.want('b', 'k', budget, b.fill);
    await pool.settled();
    expect(a.made).toHaveLength(2);
    expect(b.made).toHaveLength(0);
    expect(pool.idleCount).toBe(2);
  });

  it('size 0 keeps none', async () => {
    const pool = new WarmPool();
    const f = filler();
    pool.want('a', 'k', settings({ size: 0 }), f.fill);
    await pool.settled();
    expect(f.made).toHaveLength(0);
  });

  it('an idle sandbox unused for idle_minutes is destroyed and not replaced', async () => {
    const pool = new WarmPool();
    const f = filler();
    pool.want('a', 'k', settings({ idle_minutes: 0.001 }), f.fill);
    await pool.settled();
    expect(pool.idleCount).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(pool.idleCount).toBe(0);
    expect(f.made).toHaveLength(1);
    expect(f.made[0]!.destroyed).toBe(1);
    expect(pool.status()).toEqual([]);
  });

  it('a sandbox whose container exits while idle is dropped and destroyed; a dead one is never handed out', async () => {
    const pool = new WarmPool();
    const f = filler();
    pool.want('a', 'k', settings({ size: 2 }), f.fill);
    await pool.settled();
    f.made[0]!.exit();
    expect(f.made[0]!.destroyed).toBe(1);
    expect(pool.idleCount).toBe(1);
    f.made[1]!.exited = true; // exited, its exit not yet reported
    expect(pool.claim('a', 'k')).toBeUndefined();
    expect(f.made[1]!.destroyed).toBe(1);
  });

  it('a fill that fails is not retried until the agent is dispatched again', async () => {
    const pool = new WarmPool();
    const failing = filler(true);
    pool.want('a', 'k', settings({ size: 2 }), failing.fill);
    await pool.settled();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(failing.maxRunning()).toBe(1);
    expect(pool.status()).toEqual([expect.objectContaining({ idle: 0, filling: false })]);
  });

  it('shutdown destroys the idle sandboxes and one still starting, and fills no more', async () => {
    const pool = new WarmPool();
    const f = filler();
    pool.want('a', 'k', settings({ size: 2 }), f.fill);
    await new Promise((resolve) => setTimeout(resolve, 8));
    await pool.shutdown();
    expect(f.made.length).toBeGreaterThan(0);
    expect(f.made.every((s) => s.destroyed === 1)).toBe(true);
    pool.want('a', 'k', settings(), f.fill);
    await pool.settled();
    expect(pool.idleCount).toBe(0);
  });
});
