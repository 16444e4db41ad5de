/**
 * The audit trail: one JSON line per dispatch in `<state dir>/audit.jsonl` (0600), joining what the sandbox
 * was (policy name and hash, image, mounts, environment names) with what happened (every egress decision,
 * exit, duration, cost). Values of environment variables are never recorded, nor headers, bodies or query
 * strings: the gateway reports hosts, ports, paths and byte counts only.
 *
 * Lines of other kinds carry `kind` (a dispatch line has none, as before it existed): `config-change` records
 * a policy change an MCP caller asked for, accepted or refused. Readers that want dispatches skip lines with a
 * `kind`.
 */
import { closeSync, fchmodSync, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { EgressDecision } from '../gateway/protocol.js';
import type { DispatchResult } from './types.js';

export const AUDIT_FILE = 'audit.jsonl';
/** How much of the file's end `lastAuditRecord` reads (the gateway reports at most 512 KiB of decisions per dispatch). */
const TAIL_BYTES = 4 * 1024 * 1024;

export interface AuditRecord {
  time: string;
  job: string;
  /** The HTTP user who dispatched (serve --http); absent for the local user. */
  user?: string;
  agent: string;
  caller?: string;
  goal?: string;
  policy?: { name: string; hash: string };
  image?: { name: string; id?: string };
  mounts?: { source: string; target: string; mode: string }[];
  env_names?: string[];
  network?: 'gateway' | 'open';
  /** Gateway mode: every decision; absent in open mode; `egress_lost` when the gateway could not report them. */
  egress?: EgressDecision[];
  egress_lost?: boolean;
  exit_code?: number | null;
  success: boolean;
  error_type?: string;
  duration_ms: number;
  cost_usd?: number;
  session_id?: string;
}

/** A policy change asked for over MCP (add_agent / update_agent), and what the server decided. */
export interface ConfigChangeRecord {
  kind: 'config-change';
  time: string;
  /** The HTTP user (an admin) who asked; absent for the local user. */
  user?: string;
  agent: string;
  via: 'mcp';
  tool: 'add_agent' | 'update_agent';
  /** The policy refs before (absent for a new agent) and asked for, with the hash of each when it loaded. */
  policy: { from?: string; from_hash?: string; to: string; to_hash?: string };
  /** settings.mcp_policy_changes.mode in force. */
  mode: string;
  outcome: 'accepted' | 'refused';
  /** Why, in one line. */
  reason: string;
  /** The axes on which the asked-for policy is wider (narrow-only mode). */
  widened?: string[];
}

export type AuditLine = AuditRecord | ConfigChangeRecord;

export interface EgressSummary {
  allowed: number;
  denied: number;
  denied_hosts: string[];
  /** The gateway could not report this dispatch's decisions (it died or did not answer). */
  unavailable?: true;
}

/** The short form a dispatch result carries: counts, and which destinations were refused. */
export function summariseEgress(decisions: EgressDecision[] | undefined): EgressSummary {
  if (decisions === undefined) return { allowed: 0, denied: 0, denied_hosts: [], unavailable: true };
  // A decision may stand for several identical ones (`count`, refusals the gateway folded together).
  const total = (list: EgressDecision[]): number => list.reduce((sum, d) => sum + (d.count ?? 1), 0);
  const denied = decisions.filter((d) => !d.allowed);
  return {
    allowed: total(decisions) - total(denied),
    denied: total(denied),
    denied_hosts: [...new Set(denied.map((d) => `${d.host}:${d.port}`))].slice(0, 20),
  };
}

/** The audit file is rotated past this size; AUDIT_KEEP older files (`audit.jsonl.1` newest) are kept. */
export const AUDIT_MAX_BYTES = 32 * 1024 * 1024;
export const AUDIT_KEEP = 3;

/**
 * Append one record (the file and its directory are created private). Throws on I/O failure. A file past
 * AUDIT_MAX_BYTES is rotated first, so the trail takes at most (AUDIT_KEEP + 1) × AUDIT_MAX_BYTES on disk.
 */
export function appendAudit(stateDir: string, record: AuditLine, maxBytes: number = AUDIT_MAX_BYTES): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  rotateIfLarge(join(stateDir, AUDIT_FILE), maxBytes);
  const fd = openSync(join(stateDir, AUDIT_FILE), 'a', 0o600);
  try {
    // The mode only applies at creation: a file someone loosened is made private again.
    if ((fstatSync(fd).mode & 0o077) !== 0) fchmodSync(fd, 0o600);
    // One write of the whole line: concurrent servers appending to the file never interleave within a record.
    writeSync(fd, `${JSON.stringify(record)}\n`);
  } finally {
    closeSync(fd);
  }
}

/**
 * audit.jsonl → audit.jsonl.1 → … → audit.jsonl.AUDIT_KEEP (dropped). Renames are atomic; two servers rotating
 * at once at worst rotate one short file early, and no record is ever cut.
 */
function rotateIfLarge(path: string, maxBytes: number): void {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return;
  }
  if (size < maxBytes) return;
  for (let i = AUDIT_KEEP - 1; i >= 1; i--) {
    try {
      renameSync(`${path}.${i}`, `${path}.${i + 1}`);
    } catch {
      // that generation does not exist yet
    }
  }
  try {
    renameSync(path, `${path}.1`);
  } catch {
    // another server rotated it a moment ago
  }
}

/** The agent's most recent dispatch record among the file's last TAIL_BYTES that `accept` takes, or undefined. */
export function lastAuditRecord(stateDir: string, agent: string, accept: (record: AuditRecord) => boolean = () => true): AuditRecord | undefined {
  let text: string;
  try {
    const fd = openSync(join(stateDir, AUDIT_FILE), 'r');
    try {
      const size = fstatSync(fd).size;
      const length = Math.min(size, TAIL_BYTES);
      const buffer = Buffer.alloc(length);
      readSync(fd, buffer, 0, length, size - length);
      text = buffer.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i];
    if (!line || !line.includes(`"agent":${JSON.stringify(agent)}`)) continue;
    try {
      const record = JSON.parse(line) as AuditRecord & { kind?: string };
      if (record.agent === agent && record.kind === undefined && accept(record)) return record;
    } catch {
      // the first line of the tail may be cut
    }
  }
  return undefined;
}

/** What the record says about the result (the rest comes from the sandbox). */
export function resultFacts(result: DispatchResult): Pick<AuditRecord, 'success' | 'error_type' | 'cost_usd' | 'session_id'> {
  return {
    success: result.success,
    ...(result.error_type ? { error_type: result.error_type } : {}),
    ...(result.cost_usd !== undefined ? { cost_usd: result.cost_usd } : {}),
    ...(result.session_id ? { session_id: result.session_id } : {}),
  };
}
