import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePrivateDir } from '../config/atomic-write.js';
import { AppError, describeError } from '../errors.js';
import { logger } from '../log.js';
import type { ContainerSpec, MountSpec } from '../policy/container-spec.js';
import type { HelperRun, OverlayDirs } from '../sandbox/overlay-volume.js';
import { buildPatch } from './overlay-patch.js';
import { readUpper, type UpperReport } from './overlay-upper.js';

/**
 * `repo: overlay`: the repo path in the container is a kernel overlay (Docker's `local` volume driver) whose
 * lower dir is the host repo and whose upper and work dirs are this dispatch's, in the server's private state
 * dir. The agent's writes land in the upper dir only; the host repo is never written. After the container is
 * gone, the server reads the upper dir (hostile input: see overlay-upper.ts) and builds the patch with a git
 * nothing of the agent's can configure (overlay-patch.ts).
 */

/** What the dispatcher needs from the engine for an overlay (src/sandbox/overlay-volume.ts implements it). */
export interface OverlayEngine {
  check(): Promise<void>;
  mount(target: string, dirs: OverlayDirs, labels: Record<string, string>): MountSpec;
  listMerged(target: HelperRun, dirs: OverlayDirs, listFile: string, names: string[]): Promise<Map<string, string[]>>;
  removeContents(target: HelperRun, dir: string, names: string[]): Promise<void>;
}

export const OVERLAY_ENGINE_HINT =
  "repo: overlay mounts a kernel overlay of the repo whose upper dir is in the server's state directory: it needs a rootful Docker engine on this machine (not rootless, not another host or a VM that does not share this file system). Use repo: ro or repo: rw for this agent otherwise.";

const log = logger('dispatch');
/** Per-dispatch overlay dirs older than this are left over from a server that died (dispatches run at most 2 h). */
const STALE_MS = 3 * 3600_000;

export interface OverlayOpen {
  engine: OverlayEngine;
  stateDir: string;
  job: string;
  /** The host repo (the lower dir) and where the container sees it. */
  repo: string;
  image: string;
  labels: Record<string, string>;
}

/** The changes of one overlay dispatch, or why there are none. */
export interface OverlayChanges {
  patch: Buffer;
  skipped: UpperReport['skipped'];
}

export class OverlayLayer {
  private constructor(
    private readonly open: OverlayOpen,
    private readonly root: string,
    readonly dirs: OverlayDirs,
  ) {}

  /** Check the engine and make this dispatch's upper and work dirs. Throws an AppError (error_type sandbox). */
  static async create(open: OverlayOpen): Promise<OverlayLayer> {
    await open.engine.check();
    const parent = join(open.stateDir, 'overlays');
    ensurePrivateDir(parent);
    sweepStale(parent);
    const root = join(parent, open.job);
    mkdirSync(root, { mode: 0o700 });
    const dirs = { lower: open.repo, upper: join(root, 'upper'), work: join(root, 'work') };
    try {
      const repo = statSync(open.repo);
      // The merged root takes the upper root's owner and mode: make it the repo's, so the agent sees its repo.
      mkdirSync(dirs.upper);
      chmodSync(dirs.upper, repo.mode & 0o7777);
      if (process.getuid?.() === 0) chownSync(dirs.upper, repo.uid, repo.gid);
      mkdirSync(dirs.work, { mode: 0o700 });
    } catch (error) {
      rmSync(root, { recursive: true, force: true });
      throw new AppError('SANDBOX_FAILED', `Could not prepare the overlay for ${open.repo}: ${describeError(error)}`, { hint: `Check free space and permissions of ${parent}.` });
    }
    return new OverlayLayer(open, root, dirs);
  }

  /** The compiled container with the overlay mounted at the repo path. */
  spec(container: ContainerSpec): ContainerSpec {
    const mount = this.open.engine.mount(this.open.repo, this.dirs, { ...this.open.labels, 'agent-dispatch.job': this.open.job });
    return { ...container, HostConfig: { ...container.HostConfig, Mounts: [mount, ...container.HostConfig.Mounts] } };
  }

  /** After the run: the patch of what the agent changed. Throws an AppError when it cannot be built. */
  async collect(): Promise<OverlayChanges> {
    // The kernel makes work/work at mount time: without it the engine mounted someone else's directories.
    if (!existsSync(join(this.dirs.work, 'work'))) {
      throw new AppError('SANDBOX_FAILED', "The container ran, but its overlay was not mounted from this machine's directories; no patch could be read.", { hint: OVERLAY_ENGINE_HINT });
    }
    const listFile = join(this.root, 'dirs.list');
    const report = await readUpper({
      lower: this.dirs.lower,
      upper: this.dirs.upper,
      merged: (names) => {
        writeFileSync(listFile, `${names.join('\0')}\0`, { mode: 0o600 });
        return this.open.engine.listMerged(this.helper(), this.dirs, listFile, names);
      },
    });
    return { patch: await buildPatch(report.changes), skipped: report.skipped };
  }

  /** Remove this dispatch's dirs; never throws (a leftover is swept by a later dispatch). */
  async close(): Promise<void> {
    if (removeTree(this.root)) return;
    try {
      await this.open.engine.removeContents(this.helper(), this.root, ['upper', 'work']);
    } catch (error) {
      log.warn(`could not remove the overlay dir ${this.root}: ${describeError(error)}`);
    }
    if (!removeTree(this.root)) log.warn(`could not remove the overlay dir ${this.root}; remove it by hand`);
  }

  private helper(): HelperRun {
    return { image: this.open.image, job: this.open.job, labels: this.open.labels };
  }
}

function removeTree(path: string): boolean {
  try {
    rmSync(path, { recursive: true, force: true });
    return !existsSync(path);
  } catch {
    return false;
  }
}

function sweepStale(parent: string, now = Date.now()): void {
  try {
    for (const name of readdirSync(parent)) {
      const path = join(parent, name);
      if (now - lstatSync(path).mtimeMs > STALE_MS) removeTree(path);
    }
  } catch {
    // best effort
  }
}

/** A one-line account of what the patch leaves out, for the result's hint (undefined when nothing). */
export function skippedNote(skipped: UpperReport['skipped']): string | undefined {
  if (skipped.length === 0) return undefined;
  const shown = skipped.slice(0, 5).map((s) => `${s.path} (${s.reason})`).join('; ');
  return `Not in the patch: ${shown}${skipped.length > 5 ? `; and ${skipped.length - 5} more` : ''}.`;
}
