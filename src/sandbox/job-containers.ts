import type Docker from 'dockerode';
import { LABELS } from './owner.js';

/**
 * Kill and remove every dispatch container labelled with `job`, whichever process started it (a CLI `cancel`
 * of a job the server runs, or a server cancelling its own). Returns how many were removed; one already gone
 * (its own runner removed it first) is not an error.
 */
export async function removeJobContainers(docker: Docker, job: string): Promise<number> {
  const found = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.job}=${job}`] }) });
  let removed = 0;
  await Promise.all(
    found.map(async (info) => {
      try {
        await docker.getContainer(info.Id).remove({ force: true, v: true });
        removed += 1;
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode !== 404 && (error as { statusCode?: number }).statusCode !== 409) throw error;
      }
    }),
  );
  return removed;
}
