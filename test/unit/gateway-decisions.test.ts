import { describe, expect, it } from 'vitest';
import { DecisionLog, DROPPED_HOST, inParts, MAX_DECISION_BYTES, MAX_DECISIONS, PART_BYTES } from '../../src/gateway/decisions.js';
import type { EgressDecision } from '../../src/gateway/protocol.js';
import { summariseEgress } from '../../src/dispatch/audit.js';

const decision = (allowed: boolean, host = 'h'): EgressDecision => ({ time: 't', kind: 'connect', host, port: 443, allowed, bytesOut: 2, bytesIn: 3 });
const refusedApi = (path: string): EgressDecision => ({ time: 't', kind: 'api', host: 'api.anthropic.com', port: 443, method: 'GET', path, allowed: false, reason: 'not an Anthropic API path', status: 403, bytesOut: 0, bytesIn: 0 });

describe('DecisionLog', () => {
  it('keeps every decision up to the cap', () => {
    const log = new DecisionLog();
    log.add(decision(true));
    log.add(decision(false));
    expect(log.entries(new Date(0))).toEqual([decision(true), decision(false)]);
  });

  it('folds identical refusals into the first, with a count and summed bytes; allowed ones stay one by one', () => {
    const log = new DecisionLog();
    for (let i = 0; i < 5_000; i++) log.add(decision(false, 'denied.example'));
    log.add(decision(false, 'other.example'));
    log.add(decision(true));
    log.add(decision(true));
    const entries = log.entries(new Date(0));
    expect(entries).toEqual([
      { ...decision(false, 'denied.example'), count: 5_000, bytesOut: 10_000, bytesIn: 15_000 },
      decision(false, 'other.example'),
      decision(true),
      decision(true),
    ]);
    expect(summariseEgress(entries)).toEqual({ allowed: 2, denied: 5_001, denied_hosts: ['denied.example:443', 'other.example:443'] });
  });

  it('clips what the agent chose (an 8 KB path, a long host) so that a decision stays small', () => {
    const log = new DecisionLog();
    log.add(refusedApi(`/${'a'.repeat(8_000)}`));
    log.add({ ...decision(false), host: 'x'.repeat(5_000) });
    const [api, connect] = log.entries(new Date(0));
    expect(api!.path!.length).toBe(256);
    expect(api!.path!.endsWith('…')).toBe(true);
    expect(connect!.host.length).toBe(255);
    expect(JSON.stringify(api).length).toBeLessThan(600);
  });

  it('past MAX_DECISIONS distinct decisions, sums the rest into a summary for the allowed and one for the refused', () => {
    const log = new DecisionLog();
    for (let i = 0; i < MAX_DECISIONS; i++) log.add(decision(true));
    for (let i = 0; i < 5; i++) log.add(decision(i !== 0, `late-${i}`));
    const entries = log.entries(new Date(0));
    expect(entries).toHaveLength(MAX_DECISIONS + 2);
    expect(entries.slice(-2)).toEqual([
      { time: '1970-01-01T00:00:00.000Z', kind: 'connect', host: DROPPED_HOST, port: 0, allowed: true, count: 4, bytesOut: 8, bytesIn: 12, reason: expect.stringContaining('4 more allowed decisions') },
      { time: '1970-01-01T00:00:00.000Z', kind: 'connect', host: DROPPED_HOST, port: 0, allowed: false, count: 1, bytesOut: 2, bytesIn: 3, reason: expect.stringContaining('1 more refused decisions') },
    ]);
    expect(summariseEgress(entries)).toMatchObject({ allowed: MAX_DECISIONS + 4, denied: 1 });
  });

  it('a flood of distinct refusals stops at MAX_DECISION_BYTES of kept decisions; identical ones still fold when full', () => {
    const log = new DecisionLog();
    for (let i = 0; i < 20_000; i++) log.add(refusedApi(`/${i}-${'p'.repeat(240)}`));
    log.add(refusedApi(`/0-${'p'.repeat(240)}`));
    const entries = log.entries(new Date(0));
    const kept = entries.filter((d) => d.host !== DROPPED_HOST);
    expect(JSON.stringify(kept).length).toBeLessThanOrEqual(MAX_DECISION_BYTES + kept.length);
    expect(kept[0]!.count).toBe(2);
    const summary = entries.at(-1)!;
    expect(summary).toMatchObject({ host: DROPPED_HOST, allowed: false, count: 20_000 - kept.length });
    expect(summariseEgress(entries).denied).toBe(20_001);
  });
});

describe('inParts', () => {
  it('splits decisions into parts of at most PART_BYTES of JSON, in order, none lost', () => {
    const decisions = Array.from({ length: 3_000 }, (_, i) => refusedApi(`/${i}`));
    const parts = inParts(decisions);
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) expect(JSON.stringify(part).length).toBeLessThanOrEqual(PART_BYTES);
    expect(parts.flat()).toEqual(decisions);
  });

  it('always has one part, empty when there is nothing', () => {
    expect(inParts([])).toEqual([[]]);
  });
});
