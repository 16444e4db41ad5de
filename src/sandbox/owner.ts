import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { LABEL_PREFIX } from '../policy/layout.js';

export const LABELS = {
  agent: `${LABEL_PREFIX}.agent`,
  job: `${LABEL_PREFIX}.job`,
  serverPid: `${LABEL_PREFIX}.server-pid`,
  /**
   * `<pid>:<start time>:<pid namespace>`: a PID the kernel reused for another process does not look like our
   * server, and a server in another PID namespace (same hostname) is never judged by its PID here.
   */
  server: `${LABEL_PREFIX}.server`,
  host: `${LABEL_PREFIX}.server-host`,
  created: `${LABEL_PREFIX}.created`,
  deadline: `${LABEL_PREFIX}.deadline`,
  /** On a pre-started (warm pool) sandbox: its job label is the pool's own, not that of the dispatch it serves. */
  warm: `${LABEL_PREFIX}.warm`,
} as const;

/** The kernel's start time of a process (clock ticks since boot), or undefined when it does not exist. */
export function processStartTime(pid: number | 'self'): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses; fields after the last ')' are fixed.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}

/** The PID namespace this process lives in (`4026531836`), or undefined without /proc. */
export function pidNamespace(): string | undefined {
  try {
    return /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1];
  } catch {
    return undefined;
  }
}

export function serverIdentity(pid: number = process.pid): string {
  return `${pid}:${processStartTime(pid === process.pid ? 'self' : pid) ?? '?'}:${pidNamespace() ?? '?'}`;
}

/** Labels that tie a dispatch container to this server process, so a later server can reap it if we die. */
export function ownerLabels(job: string, timeoutMs: number, now: number = Date.now()): Record<string, string> {
  return {
    [LABELS.job]: job,
    [LABELS.serverPid]: String(process.pid),
    [LABELS.server]: serverIdentity(),
    [LABELS.host]: hostname(),
    [LABELS.created]: new Date(now).toISOString(),
    [LABELS.deadline]: String(now + timeoutMs),
  };
}

/**
 * Is the server that labelled a container certainly gone? Only "yes" when it can be proven from here: same
 * host, same PID namespace, and the PID is free (ESRCH) or now belongs to a process with another start time.
 * A PID we may not look at (`hidepid`, another user) counts as alive: a live server's dispatch is never reaped.
 */
export function ownerIsGone(labels: Record<string, string>, thisHost: string = hostname()): boolean {
  if (labels[LABELS.host] !== thisHost) return false;
  const [pid, start, namespace] = (labels[LABELS.server] ?? '').split(':');
  const pidNumber = Number(pid);
  if (!Number.isInteger(pidNumber) || pidNumber <= 0 || !start || start === '?') return false;
  const ours = pidNamespace();
  if (ours === undefined || namespace !== ours) return false;
  const current = processStartTime(pidNumber);
  if (current !== undefined) return current !== start;
  try {
    process.kill(pidNumber, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
