import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { LABEL_PREFIX } from '../policy/layout.js';

export const LABELS = {
  agent: `${LABEL_PREFIX}.agent`,
  job: `${LABEL_PREFIX}.job`,
  serverPid: `${LABEL_PREFIX}.server-pid`,
  /** `<pid>:<start time>`: a PID the kernel reused for another process does not look like our server. */
  server: `${LABEL_PREFIX}.server`,
  host: `${LABEL_PREFIX}.server-host`,
  created: `${LABEL_PREFIX}.created`,
  deadline: `${LABEL_PREFIX}.deadline`,
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

export function serverIdentity(pid: number = process.pid): string {
  return `${pid}:${processStartTime(pid === process.pid ? 'self' : pid) ?? '?'}`;
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

/** Is the server that labelled a container gone? Only judged for servers on this host. */
export function ownerIsGone(labels: Record<string, string>, thisHost: string = hostname()): boolean {
  if (labels[LABELS.host] !== thisHost) return false;
  const identity = labels[LABELS.server];
  if (!identity) return false;
  const [pid, start] = identity.split(':');
  const pidNumber = Number(pid);
  if (!Number.isInteger(pidNumber) || pidNumber <= 0) return false;
  const current = processStartTime(pidNumber);
  return current === undefined || current !== start;
}
