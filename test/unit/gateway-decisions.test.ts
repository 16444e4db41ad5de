import { describe, expect, it } from 'vitest';
import { DecisionLog, MAX_DECISIONS } from '../../src/gateway/decisions.js';
import type { EgressDecision } from '../../src/gateway/protocol.js';

const decision = (allowed: boolean): EgressDecision => ({ time: 't', kind: 'connect', host: 'h', port: 443, allowed, bytesOut: 2, bytesIn: 3 });

describe('DecisionLog', () => {
  it('keeps every decision up to the cap', () => {
    const log = new DecisionLog();
    log.add(decision(true));
    log.add(decision(false));
    expect(log.entries(new Date(0))).toEqual([decision(true), decision(false)]);
  });

  it('past the cap, sums the rest into one final synthetic decision', () => {
    const log = new DecisionLog();
    for (let i = 0; i < MAX_DECISIONS; i++) log.add(decision(true));
    for (let i = 0; i < 5; i++) log.add(decision(i !== 0));
    const entries = log.entries(new Date(0));
    expect(entries).toHaveLength(MAX_DECISIONS + 1);
    expect(entries.at(-1)).toEqual({
      time: '1970-01-01T00:00:00.000Z',
      kind: 'connect',
      host: 'agent-dispatch.dropped',
      port: 0,
      allowed: false,
      reason: '5 more decisions were not kept (the gateway keeps 10000 per dispatch): 4 allowed, 1 refused',
      bytesOut: 10,
      bytesIn: 15,
    });
  });
});
