import type { EgressDecision } from './protocol.js';

/** Decisions kept per token; a runaway agent must not grow the gateway's memory without bound. */
export const MAX_DECISIONS = 10_000;

/**
 * The decisions of one token. Past MAX_DECISIONS the rest are only counted, and `entries()` ends with one
 * synthetic decision (host `agent-dispatch.dropped`, port 0) that sums them: `allowed` is false if any dropped
 * one was refused, so a reader looking for refusals still sees one.
 */
export class DecisionLog {
  private readonly kept: EgressDecision[] = [];
  private dropped = { count: 0, refused: 0, bytesOut: 0, bytesIn: 0 };

  add(decision: EgressDecision): void {
    if (this.kept.length < MAX_DECISIONS) {
      this.kept.push(decision);
      return;
    }
    this.dropped.count += 1;
    if (!decision.allowed) this.dropped.refused += 1;
    this.dropped.bytesOut += decision.bytesOut;
    this.dropped.bytesIn += decision.bytesIn;
  }

  entries(now: Date): EgressDecision[] {
    const { count, refused, bytesOut, bytesIn } = this.dropped;
    if (count === 0) return [...this.kept];
    const summary: EgressDecision = {
      time: now.toISOString(),
      kind: 'connect',
      host: 'agent-dispatch.dropped',
      port: 0,
      allowed: refused === 0,
      reason: `${count} more decisions were not kept (the gateway keeps ${MAX_DECISIONS} per dispatch): ${count - refused} allowed, ${refused} refused`,
      bytesOut,
      bytesIn,
    };
    return [...this.kept, summary];
  }
}
