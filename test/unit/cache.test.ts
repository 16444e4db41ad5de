import { describe, expect, it } from 'vitest';
import { DispatchCache, type CacheableResult, type CacheKeyParts } from '../../src/dispatch/cache.js';

/** A settable clock (seconds), injected through the constructor. */
function clock(start = 1000) {
  let t = start;
  return {
    now: () => t,
    advance: (seconds: number) => {
      t += seconds;
    },
  };
}

const ok = (result = 'done', extra: Partial<CacheableResult> = {}): CacheableResult => ({ success: true, result, agent: 'api', ...extra });
const key = (task: string, extra: Partial<CacheKeyParts> = {}): CacheKeyParts => ({ agent: 'api', task, ...extra });

describe('max size (TestCacheMaxSize)', () => {
  it('evicts the oldest insertion when full', () => {
    const c = clock();
    const cache = new DispatchCache(300, 3, c.now);
    for (const task of ['t1', 't2', 't3']) {
      cache.put(key(task), ok(task));
      c.advance(1);
    }
    // Reads do not refresh: t1 stays the oldest even after a hit.
    expect(cache.get(key('t1'))).toBeDefined();
    cache.put(key('t4'), ok('t4'));
    expect(cache.get(key('t1'))).toBeUndefined();
    for (const task of ['t2', 't3', 't4']) expect(cache.get(key(task))?.['result']).toBe(task);
    expect(cache.stats()).toMatchObject({ size: 3, evictions: 1 });
  });

  it('re-putting an existing key does not evict (and refreshes its timestamp)', () => {
    const c = clock();
    const cache = new DispatchCache(300, 3, c.now);
    for (const task of ['t1', 't2', 't3']) {
      cache.put(key(task), ok(task));
      c.advance(1);
    }
    cache.put(key('t1'), ok('t1-again'));
    expect(cache.stats()).toMatchObject({ size: 3, evictions: 0 });
    expect(cache.get(key('t1'))?.['result']).toBe('t1-again');
    // t1 is now the newest, so the next new key evicts t2.
    c.advance(1);
    cache.put(key('t4'), ok());
    expect(cache.get(key('t2'))).toBeUndefined();
    expect(cache.get(key('t1'))).toBeDefined();
  });

  it('stats report max_size', () => {
    expect(new DispatchCache(300, 42).stats().max_size).toBe(42);
    expect(new DispatchCache(300, 42).maxSize).toBe(42);
  });
});

describe('basics (TestCacheBasics)', () => {
  it('misses on an empty cache', () => {
    expect(new DispatchCache(300, 10).get(key('t'))).toBeUndefined();
  });

  it('returns what was stored', () => {
    const cache = new DispatchCache(300, 10);
    expect(cache.put(key('t'), ok('answer', { cost_usd: 0.01 }))).toBe(true);
    expect(cache.get(key('t'))).toEqual(ok('answer', { cost_usd: 0.01 }));
  });

  it('different tasks are separate entries', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('one'), ok('1'));
    expect(cache.get(key('two'))).toBeUndefined();
    expect(cache.get(key('one'))?.['result']).toBe('1');
  });

  it('different agents are separate entries', () => {
    const cache = new DispatchCache(300, 10);
    cache.put({ agent: 'a', task: 't' }, ok('a'));
    expect(cache.get({ agent: 'b', task: 't' })).toBeUndefined();
  });

  it('context is part of the key', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('t', { context: 'ctx1' }), ok());
    expect(cache.get(key('t', { context: 'ctx2' }))).toBeUndefined();
    expect(cache.get(key('t'))).toBeUndefined();
    expect(cache.get(key('t', { context: 'ctx1' }))).toBeDefined();
  });

  it('failures are not cached', () => {
    const cache = new DispatchCache(300, 10);
    expect(cache.put(key('t'), { success: false, error: 'boom' })).toBe(false);
    expect(cache.get(key('t'))).toBeUndefined();
    expect(cache.stats().size).toBe(0);
  });

  it('caller is part of the key', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('t', { caller: 'web' }), ok());
    expect(cache.get(key('t', { caller: 'mobile' }))).toBeUndefined();
    expect(cache.get(key('t', { caller: 'web' }))).toBeDefined();
  });

  it('goal is part of the key', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('t', { goal: 'debug' }), ok());
    expect(cache.get(key('t', { goal: 'audit' }))).toBeUndefined();
    expect(cache.get(key('t', { goal: 'debug' }))).toBeDefined();
  });

  it('caller and goal must both match for a hit', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('t', { caller: 'web', goal: 'debug' }), ok());
    expect(cache.get(key('t', { caller: 'web', goal: 'audit' }))).toBeUndefined();
    expect(cache.get(key('t', { caller: 'cli', goal: 'debug' }))).toBeUndefined();
    expect(cache.get(key('t', { caller: 'web' }))).toBeUndefined();
    expect(cache.get(key('t', { caller: 'web', goal: 'debug' }))).toBeDefined();
  });

  it('response_format is part of the key', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('t', { response_format: 'json' }), ok());
    expect(cache.get(key('t'))).toBeUndefined();
    expect(cache.get(key('t', { response_format: 'json' }))).toBeDefined();
  });

  it('null, undefined and "" collide by design', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('t', { caller: null, goal: undefined, context: '', response_format: null }), ok());
    expect(cache.get(key('t', { caller: '', goal: '', context: null }))).toBeDefined();
    expect(cache.get(key('t'))).toBeDefined();
    expect(DispatchCache.key(key('t', { caller: null }))).toBe(DispatchCache.key(key('t', { caller: '' })));
  });

  it('the key is a SHA-256 hex digest and does not depend on property order', () => {
    const a = DispatchCache.key({ agent: 'x', task: 't', caller: 'c', goal: 'g' });
    const b = DispatchCache.key({ goal: 'g', caller: 'c', task: 't', agent: 'x' });
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).toBe(b);
  });
});

describe('fingerprint', () => {
  it('is part of the key: a changed agent configuration misses', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('t', { fingerprint: 'cfg-v1' }), ok('old'));
    expect(cache.get(key('t', { fingerprint: 'cfg-v2' }))).toBeUndefined();
    expect(cache.get(key('t'))).toBeUndefined();
    expect(cache.get(key('t', { fingerprint: 'cfg-v1' }))?.['result']).toBe('old');
    expect(DispatchCache.key(key('t', { fingerprint: 'a' }))).not.toBe(DispatchCache.key(key('t', { fingerprint: 'b' })));
  });

  it('a missing fingerprint equals an empty one', () => {
    expect(DispatchCache.key(key('t'))).toBe(DispatchCache.key(key('t', { fingerprint: '' })));
    expect(DispatchCache.key(key('t'))).toBe(DispatchCache.key(key('t', { fingerprint: null })));
  });

  it('invalidateAgent drops entries of every fingerprint for that agent', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('t', { fingerprint: 'v1' }), ok());
    cache.put(key('t', { fingerprint: 'v2' }), ok());
    expect(cache.invalidateAgent('api')).toBe(2);
  });
});

describe('TTL (TestCacheTTL)', () => {
  it('an entry older than the TTL is a miss and is dropped', () => {
    const c = clock();
    const cache = new DispatchCache(60, 10, c.now);
    cache.put(key('t'), ok());
    c.advance(60);
    expect(cache.get(key('t'))).toBeDefined(); // exactly at the TTL: still fresh
    c.advance(0.5);
    expect(cache.get(key('t'))).toBeUndefined();
    expect(cache.stats()).toMatchObject({ size: 0, hits: 1, misses: 1 });
  });

  it('evictExpired returns how many it removed and keeps fresh entries', () => {
    const c = clock();
    const cache = new DispatchCache(60, 10, c.now);
    cache.put(key('old1'), ok());
    cache.put(key('old2'), ok());
    c.advance(50);
    cache.put(key('fresh'), ok());
    c.advance(20);
    expect(cache.evictExpired()).toBe(2);
    expect(cache.stats().size).toBe(1);
    expect(cache.get(key('fresh'))).toBeDefined();
    expect(cache.evictExpired()).toBe(0);
  });

  it('the default clock is monotonic seconds (a fresh entry is a hit)', () => {
    const cache = new DispatchCache(1, 10);
    cache.put(key('t'), ok());
    expect(cache.get(key('t'))).toBeDefined();
  });
});

describe('clear (TestCacheClear)', () => {
  it('returns the number of entries', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('a'), ok());
    cache.put(key('b'), ok());
    expect(cache.clear()).toBe(2);
    expect(cache.clear()).toBe(0);
  });

  it('resets hits, misses, evictions and size', () => {
    const cache = new DispatchCache(300, 1);
    cache.put(key('a'), ok());
    cache.put(key('b'), ok()); // evicts a
    cache.get(key('b'));
    cache.get(key('a'));
    expect(cache.stats()).toMatchObject({ size: 1, hits: 1, misses: 1, evictions: 1 });
    cache.clear();
    expect(cache.stats()).toMatchObject({ size: 0, hits: 0, misses: 0, evictions: 0, hit_rate: 0 });
  });
});

describe('stats (TestCacheStats)', () => {
  it('initial stats are exact', () => {
    expect(new DispatchCache(300, 1000).stats()).toEqual({ size: 0, max_size: 1000, hits: 0, misses: 0, evictions: 0, hit_rate: 0, ttl: 300 });
  });

  it('2 hits and 1 miss → hit_rate round(2/3, 3)', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('t'), ok());
    cache.get(key('t'));
    cache.get(key('t'));
    cache.get(key('other'));
    expect(cache.stats()).toEqual({ size: 1, max_size: 10, hits: 2, misses: 1, evictions: 0, hit_rate: 0.667, ttl: 300 });
  });
});

describe('invalidateAgent (TestInvalidateAgent)', () => {
  it("drops only that agent's entries and returns the count", () => {
    const cache = new DispatchCache(300, 10);
    cache.put({ agent: 'a', task: '1' }, ok());
    cache.put({ agent: 'a', task: '2' }, ok());
    cache.put({ agent: 'b', task: '1' }, ok());
    expect(cache.invalidateAgent('a')).toBe(2);
    expect(cache.get({ agent: 'a', task: '1' })).toBeUndefined();
    expect(cache.get({ agent: 'b', task: '1' })).toBeDefined();
    expect(cache.stats().size).toBe(1);
  });

  it('an unknown agent is a no-op', () => {
    const cache = new DispatchCache(300, 10);
    cache.put({ agent: 'a', task: '1' }, ok());
    expect(cache.invalidateAgent('zzz')).toBe(0);
    expect(cache.stats().size).toBe(1);
  });
});

describe('degraded results are not cached (TestDegradedResultsAreNotCached)', () => {
  it('a success with denied tools', () => {
    const cache = new DispatchCache(300, 10);
    expect(cache.put(key('t'), ok('partial', { denied_tools: ['Bash'] }))).toBe(false);
    expect(cache.get(key('t'))).toBeUndefined();
  });

  it('an empty denied_tools list is still clean', () => {
    const cache = new DispatchCache(300, 10);
    expect(cache.put(key('t'), ok('fine', { denied_tools: [] }))).toBe(true);
  });

  it('a success that exceeded the budget', () => {
    const cache = new DispatchCache(300, 10);
    expect(cache.put(key('t'), ok('partial', { budget_exceeded: true }))).toBe(false);
    expect(cache.get(key('t'))).toBeUndefined();
  });

  it('an overlay result (patch and/or patch_file): the key does not cover the repo, so a stale patch could come back', () => {
    const cache = new DispatchCache(300, 10);
    expect(cache.put(key('t'), ok('edited', { patch: '+x\n', patch_file: '/cfg/patches/a.patch' }))).toBe(false);
    expect(cache.put(key('t'), ok('edited', { patch: '+x\n' }))).toBe(false);
    expect(cache.put(key('t'), ok('edited', { patch_file: '/cfg/patches/a.patch' }))).toBe(false);
    expect(cache.put(key('t'), ok('edited', { patch: '' }))).toBe(false);
    expect(cache.get(key('t'))).toBeUndefined();
    expect(cache.stats().size).toBe(0);
  });

  it('a refused overlay result leaves an earlier entry for the key alone', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('t'), ok('clean'));
    expect(cache.put(key('t'), ok('edited', { patch: '+x\n' }))).toBe(false);
    expect(cache.get(key('t'))?.['result']).toBe('clean');
  });
});

describe('isolation (TestCacheIsolation)', () => {
  it('get returns a copy: mutating it does not affect later gets', () => {
    const cache = new DispatchCache(300, 10);
    cache.put(key('t'), ok('original', { nested: { list: [1, 2] } }));
    const first = cache.get(key('t'))!;
    first['result'] = 'mutated';
    (first['nested'] as { list: number[] }).list.push(3);
    expect(cache.get(key('t'))).toMatchObject({ result: 'original', nested: { list: [1, 2] } });
  });

  it('put stores a copy: mutating the original afterwards does not affect the entry', () => {
    const cache = new DispatchCache(300, 10);
    const result = ok('original');
    cache.put(key('t'), result);
    result['result'] = 'mutated';
    expect(cache.get(key('t'))?.['result']).toBe('original');
  });
});
