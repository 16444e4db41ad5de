import { lstatSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { isTerminal, type JobStore } from './job-store.js';

/** Overlay patches older than this are removed when no retention is configured. */
export const DEFAULT_PATCH_DAYS = 30;
/** All patch files together; the oldest go first past it. */
export const PATCHES_MAX_BYTES = 1024 * 1024 * 1024;
/** Finished jobs kept at most, whatever their age; the oldest finished ones go first past it. */
export const MAX_FINISHED_JOBS = 10_000;

export interface PruneReport {
  patches: number;
  jobs: number;
}

/**
 * What bounds the server's own files on disk (besides the audit log's rotation): overlay patches by age
 * (`job_retention_days`, else 30 days) and total size, finished job files by count. Pending and running jobs
 * are never touched. Best effort: a file that cannot be removed is left for the next start.
 */
export async function pruneStateFiles(options: { patchesDir: string; jobs: JobStore; retentionDays: number; now?: number; maxFinishedJobs?: number }): Promise<PruneReport> {
  const now = options.now ?? Date.now();
  const days = options.retentionDays > 0 ? options.retentionDays : DEFAULT_PATCH_DAYS;
  return { patches: prunePatches(options.patchesDir, now - days * 86_400_000), jobs: await pruneFinishedJobs(options.jobs, options.maxFinishedJobs ?? MAX_FINISHED_JOBS) };
}

function prunePatches(dir: string, cutoffMs: number): number {
  let files: { path: string; mtime: number; size: number }[];
  try {
    files = readdirSync(dir)
      .filter((name) => name.endsWith('.patch'))
      .flatMap((name) => {
        const st = lstatSync(join(dir, name), { throwIfNoEntry: false });
        return st?.isFile() ? [{ path: join(dir, name), mtime: st.mtimeMs, size: st.size }] : [];
      });
  } catch {
    return 0;
  }
  files.sort((a, b) => b.mtime - a.mtime);
  let kept = 0;
  let removed = 0;
  for (const file of files) {
    if (file.mtime >= cutoffMs && kept + file.size <= PATCHES_MAX_BYTES) {
      kept += file.size;
      continue;
    }
    try {
      unlinkSync(file.path);
      removed += 1;
    } catch {
      // left for the next start
    }
  }
  return removed;
}

async function pruneFinishedJobs(store: JobStore, max: number): Promise<number> {
  const finished = store.list().filter((job) => isTerminal(job.status));
  if (finished.length <= max) return 0;
  const cutoff = finished[max - 1]!.completed_at ?? finished[max - 1]!.created_at;
  return store.gcBefore(cutoff);
}
