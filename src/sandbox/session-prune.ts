import type Docker from 'dockerode';
import { describeError } from '../errors.js';
import { logger } from '../log.js';
import { runThrowaway } from './throwaway.js';

const log = logger('sandbox');
const TARGET = '/sessions';
/** A volume is pruned at most this often per server (the prune runs before that dispatch starts). */
export const PRUNE_INTERVAL_MS = 3600_000;
export const SESSION_MAX_DAYS = 30;
export const SESSION_MAX_MB = 1024;
const lastPruned = new Map<string, number>();

export interface SessionVolume {
  name: string;
  /** An image with sh, find, stat, sort, du, rm (the agent image that uses the volume). */
  image: string;
  owner: { uid: number; gid: number };
  labels: Record<string, string>;
}

export interface PruneLimits {
  maxDays: number;
  maxMb: number;
}

export const DEFAULT_LIMITS: PruneLimits = { maxDays: SESSION_MAX_DAYS, maxMb: SESSION_MAX_MB };

/**
 * The prune, run as the volume's owner with no network and no capability: transcripts untouched for
 * SESSION_MAX_DAYS go, then the oldest files until the volume holds at most SESSION_MAX_MB, then empty
 * directories. File names come from the agent: they only ever reach `rm` inside this throwaway container,
 * which mounts nothing but the volume. Prints the kilobytes left.
 */
export function pruneScript(maxDays: number, maxMb: number): string {
  // POSIX sh and busybox-compatible tools only (no find -printf/-delete): the prune runs in the agent's image.
  return [
    `cd ${TARGET} || exit 0`,
    `find . -xdev -type f -mtime +${maxDays} -exec rm -f {} + 2>/dev/null`,
    `total=$(du -sk . | cut -f1); cap=${maxMb * 1024}`,
    'if [ "$total" -gt "$cap" ]; then',
    "  find . -xdev -type f -exec stat -c '%Y %s %n' {} + | sort -n | while read -r t s p; do",
    '    [ "$total" -le "$cap" ] && break',
    '    rm -f -- "$p" && total=$((total - (s + 1023) / 1024))',
    '  done',
    'fi',
    'find . -xdev -depth -mindepth 1 -type d -exec rmdir {} + 2>/dev/null',
    'du -sk . | cut -f1',
  ].join('\n');
}

/**
 * Bound an agent's session volume: at most once an hour per volume, before a dispatch uses it. Best effort: a
 * prune that fails is logged and the dispatch goes on (the volume stays as it was).
 */
export async function pruneSessionVolumeIfDue(
  docker: Docker,
  volume: SessionVolume,
  limits: PruneLimits = DEFAULT_LIMITS,
  now: number = Date.now(),
): Promise<void> {
  const last = lastPruned.get(volume.name);
  if (last !== undefined && now - last < PRUNE_INTERVAL_MS) return;
  lastPruned.set(volume.name, now);
  await pruneSessionVolume(docker, volume, limits);
}

/** Prune now (a dispatch that passed the quota). Best effort: a failure is logged, the volume stays as it was. */
export async function pruneSessionVolume(docker: Docker, volume: SessionVolume, limits: PruneLimits = DEFAULT_LIMITS): Promise<void> {
  try {
    await runThrowaway(docker, {
      image: volume.image,
      user: `${volume.owner.uid}:${volume.owner.gid}`,
      entrypoint: ['sh', '-c'],
      cmd: [pruneScript(limits.maxDays, limits.maxMb)],
      labels: volume.labels,
      volume: { name: volume.name, target: TARGET },
      limits: { pids: 64, memoryBytes: 128 * 1024 * 1024 },
      what: `prune the session volume ${volume.name}`,
    });
  } catch (error) {
    log.debug(`could not prune the session volume ${volume.name}: ${describeError(error)}`);
  }
}
