import type { EgressDecision } from './protocol.js';

/** Distinct decisions kept per token, and their size as JSON: a flooding agent must not grow the gateway. */
export const MAX_DECISIONS = 2_000;
export const MAX_DECISION_BYTES = 512 * 1024;
/** The synthetic host of the summaries of what did not fit. */
export const DROPPED_HOST = 'agent-dispatch.dropped';
/** The synthetic host of refusals made before there was a destination (unparseable request, too many connections). */
export const GATEWAY_HOST = 'agent-dispatch.gateway';

/** Longest text kept per field; the agent chooses paths, methods and (through DNS names) parts of reasons. */
const CLIP = { host: 255, method: 16, path: 256, reason: 300 } as const;

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The decision with every text field clipped to its maximum. */
export function clipDecision(decision: EgressDecision): EgressDecision {
  const out: EgressDecision = { ...decision, host: clip(decision.host, CLIP.host) };
  if (decision.method !== undefined) out.method = clip(decision.method, CLIP.method);
  if (decision.path !== undefined) out.path = clip(decision.path, CLIP.path);
  if (decision.reason !== undefined) out.reason = clip(decision.reason, CLIP.reason);
  return out;
}

/** Refusals with the same key are one decision with a count. */
function refusalKey(d: EgressDecision): string {
  return JSON.stringify([d.kind, d.host, d.port, d.method, d.path, d.status, d.reason]);
}

interface Dropped {
  count: number;
  bytesOut: number;
  bytesIn: number;
}

/**
 * The decisions of one token. A refusal identical to an earlier one (same destination, request and reason)
 * only raises that one's `count`. Past MAX_DECISIONS distinct decisions or MAX_DECISION_BYTES of them, the
 * rest are only counted, and `entries()` ends with up to two synthetic decisions (host DROPPED_HOST, port 0),
 * one for the allowed and one for the refused ones, each with its `count` and byte sums.
 */
export class DecisionLog {
  private readonly kept: EgressDecision[] = [];
  private readonly refusals = new Map<string, EgressDecision>();
  private bytes = 0;
  private readonly dropped: { allowed: Dropped; refused: Dropped } = {
    allowed: { count: 0, bytesOut: 0, bytesIn: 0 },
    refused: { count: 0, bytesOut: 0, bytesIn: 0 },
  };

  add(decision: EgressDecision): void {
    const d = clipDecision(decision);
    const key = d.allowed ? undefined : refusalKey(d);
    const same = key === undefined ? undefined : this.refusals.get(key);
    if (same) {
      same.count = (same.count ?? 1) + (d.count ?? 1);
      same.bytesOut += d.bytesOut;
      same.bytesIn += d.bytesIn;
      return;
    }
    const size = JSON.stringify(d).length;
    if (this.kept.length >= MAX_DECISIONS || this.bytes + size > MAX_DECISION_BYTES) {
      const sum = d.allowed ? this.dropped.allowed : this.dropped.refused;
      sum.count += d.count ?? 1;
      sum.bytesOut += d.bytesOut;
      sum.bytesIn += d.bytesIn;
      return;
    }
    this.kept.push(d);
    this.bytes += size;
    if (key !== undefined) this.refusals.set(key, d);
  }

  entries(now: Date): EgressDecision[] {
    const summaries = (['allowed', 'refused'] as const)
      .filter((which) => this.dropped[which].count > 0)
      .map((which): EgressDecision => {
        const { count, bytesOut, bytesIn } = this.dropped[which];
        return {
          time: now.toISOString(),
          kind: 'connect',
          host: DROPPED_HOST,
          port: 0,
          allowed: which === 'allowed',
          reason: `${count} more ${which} decisions were not kept one by one (the gateway keeps ${MAX_DECISIONS} distinct decisions, ${MAX_DECISION_BYTES / 1024} KiB, per dispatch)`,
          bytesOut,
          bytesIn,
          count,
        };
      });
    return [...this.kept.map((d) => ({ ...d })), ...summaries];
  }
}

/** The most decision JSON one stdout line carries: a release answer is sent in parts this size. */
export const PART_BYTES = 64 * 1024;

/** `decisions` in consecutive parts of at most PART_BYTES of JSON each (always at least one, maybe empty). */
export function inParts(decisions: readonly EgressDecision[], partBytes = PART_BYTES): EgressDecision[][] {
  const parts: EgressDecision[][] = [[]];
  let size = 0;
  for (const d of decisions) {
    const length = JSON.stringify(d).length + 1;
    if (size + length > partBytes && parts.at(-1)!.length > 0) {
      parts.push([]);
      size = 0;
    }
    parts.at(-1)!.push(d);
    size += length;
  }
  return parts;
}
