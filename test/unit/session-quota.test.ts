import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { SessionQuota } from '../../src/sandbox/session-quota.js';

/** An engine whose df answers `volumes` after refusing `busy` times the way Docker 20.10 does (another df is running). */
function engine(busy: number, error = 'a disk usage operation is already running') {
  let calls = 0;
  const docker = {
    async df() {
      calls += 1;
      if (calls <= busy) throw Object.assign(new Error(`(HTTP code 500) server error - ${error}`), { statusCode: 500 });
      return { Volumes: [{ Name: 'sessions', UsageData: { Size: 12 * 1024 * 1024 } }] };
    },
  };
  return { docker: docker as unknown as Docker, calls: () => calls };
}

describe('session quota: the measurement after a dispatch', () => {
  it('waits out another df running on the engine instead of skipping the check (the prune would never happen)', async () => {
    const e = engine(3);
    expect(await new SessionQuota(e.docker).usage('sessions')).toBe(12 * 1024 * 1024);
    expect(e.calls()).toBe(4);
  });

  it('any other engine error is not retried', async () => {
    const e = engine(1, 'no such volume driver');
    await expect(new SessionQuota(e.docker).usage('sessions')).rejects.toThrow(/no such volume driver/);
    expect(e.calls()).toBe(1);
  });

  it('a volume the engine does not list: undefined', async () => {
    expect(await new SessionQuota(engine(0).docker).usage('other')).toBeUndefined();
  });
});
