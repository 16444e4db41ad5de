import type Docker from 'dockerode';
import { bounded } from './engine-calls.js';

/** How long a one-shot container on a volume may take from create to exit. */
export const THROWAWAY_MS = 60_000;

export interface ThrowawayRun {
  image: string;
  /** `uid:gid`. */
  user: string;
  cmd: string[];
  entrypoint?: string[];
  /** Capabilities it gets back after dropping all (CHOWN for the chown of a new volume). */
  capAdd?: string[];
  labels: Record<string, string>;
  /** The one volume it works on, mounted writable at `target`. */
  volume: { name: string; target: string };
  limits?: { pids: number; memoryBytes: number };
  /** For messages: 'chown the session volume x'. */
  what: string;
}

/**
 * Run a short-lived helper on a volume to its end: no network, no capability but `capAdd`, no-new-privileges,
 * read-only root, only that volume mounted. Every engine call is bounded; the container is removed on every
 * path. Returns its exit code.
 */
export async function runThrowaway(docker: Docker, run: ThrowawayRun, ms: number = THROWAWAY_MS): Promise<number> {
  const container = await bounded(
    docker.createContainer({
      Image: run.image,
      User: run.user,
      ...(run.entrypoint ? { Entrypoint: run.entrypoint } : {}),
      Cmd: run.cmd,
      Labels: run.labels,
      NetworkDisabled: true,
      HostConfig: {
        NetworkMode: 'none',
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        ...(run.capAdd ? { CapAdd: run.capAdd } : {}),
        SecurityOpt: ['no-new-privileges'],
        ...(run.limits ? { PidsLimit: run.limits.pids, Memory: run.limits.memoryBytes } : {}),
        Mounts: [{ Type: 'volume', Source: run.volume.name, Target: run.volume.target, ReadOnly: false }],
      },
    }),
    ms,
    `create a container to ${run.what}`,
  );
  try {
    await bounded(container.start(), ms, `start the container to ${run.what}`);
    const { StatusCode } = (await bounded(container.wait(), ms, run.what)) as { StatusCode: number };
    return StatusCode;
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}
