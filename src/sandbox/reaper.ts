import type Docker from 'dockerode';
import { describeError } from '../errors.js';
import { logger } from '../log.js';
import { LABELS, ownerIsGone } from './owner.js';

const log = logger('sandbox');
/** A container this long past its own deadline was missed by its server's kill: remove it. */
const DEADLINE_GRACE_MS = 60_000;

/**
 * Remove dispatch containers whose owning server is gone (crashed, killed) or that outlived their
 * deadline. Run at server start. Returns how many were removed.
 */
export async function reapOrphans(docker: Docker, now: number = Date.now()): Promise<number> {
  const containers = await docker.listContainers({ all: true, filters: { label: [LABELS.server] } });
  let removed = 0;
  for (const info of containers) {
    const labels = info.Labels ?? {};
    const deadline = Number(labels[LABELS.deadline]);
    const overdue = Number.isFinite(deadline) && now > deadline + DEADLINE_GRACE_MS;
    if (!ownerIsGone(labels) && !overdue) continue;
    try {
      await docker.getContainer(info.Id).remove({ force: true, v: true });
      removed += 1;
      log.info(`reaped orphaned dispatch container ${info.Id.slice(0, 12)}`, { agent: labels[LABELS.agent], job: labels[LABELS.job] });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) log.warn(`could not reap ${info.Id.slice(0, 12)}: ${describeError(error)}`);
    }
  }
  return removed;
}
