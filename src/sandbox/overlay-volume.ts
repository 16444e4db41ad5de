import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { AppError, describeError } from '../errors.js';
import type { MountSpec } from '../policy/container-spec.js';
import { LABEL_PREFIX } from '../policy/layout.js';
import { bounded, removeQuietly } from './engine-calls.js';
import { ownerLabels } from './owner.js';
import { sandboxError } from './sandbox-error.js';

/** The three host directories of one dispatch's overlay; upper and work live in the server's private state dir. */
export interface OverlayDirs {
  lower: string;
  upper: string;
  work: string;
}

/**
 * Pinned so the upper dir means the same on every kernel: no redirect xattrs for renamed directories (a
 * rename copies), no metadata-only copy-up (a file in the upper dir always holds its whole content).
 */
const OVERLAY_OPTIONS = 'redirect_dir=off,metacopy=off,index=off,xino=off';

/**
 * The repo mount of an overlay dispatch: an anonymous volume of the engine's `local` driver that mounts a
 * kernel overlay (the repo as lower dir). Anonymous, so the engine removes it with the container on every
 * path (AutoRemove, a forced removal, the reaper: all remove a container's anonymous volumes).
 */
export function overlayMount(target: string, dirs: OverlayDirs, labels: Record<string, string>, readOnly = false): MountSpec {
  for (const dir of [dirs.lower, dirs.upper, dirs.work]) {
    if (/[,:]/.test(dir)) {
      throw new AppError('SANDBOX_FAILED', `The overlay cannot use ${dir}: a ',' or ':' in the path cannot be passed to the kernel's overlay mount.`, {
        hint: "Move the repo (or AGENT_DISPATCH_CONFIG's directory) to a path without ',' and ':', or use repo: ro or rw.",
      });
    }
  }
  return {
    Type: 'volume',
    Target: target,
    // The engine refuses a read-only anonymous volume; a read-only overlay is asked of the kernel instead.
    ReadOnly: false,
    VolumeOptions: {
      NoCopy: true,
      Labels: { ...labels, [`${LABEL_PREFIX}.role`]: 'overlay' },
      DriverConfig: { Name: 'local', Options: { type: 'overlay', device: 'overlay', o: `${readOnly ? 'ro,' : ''}lowerdir=${dirs.lower},upperdir=${dirs.upper},workdir=${dirs.work},${OVERLAY_OPTIONS}` } },
    },
  };
}

const CALL_MS = 30_000;
/** Names of merged directories read back after a run (bounded: the upper dir walk bounds the directories). */
const LISTING_CAP = 64 * 1024 * 1024;
const MERGED = '/merged';
const LIST_FILE = '/agent-dispatch-dirs';

export interface HelperRun {
  /** A local image with /bin/sh, find and xargs (the dispatch's own image). */
  image: string;
  job: string;
  labels: Record<string, string>;
}

/**
 * The engine side of `repo: overlay`: whether the engine can mount this machine's directories as an overlay,
 * and two short helper containers the server cannot do without: reading back which names a merged directory
 * shows (an opaque directory's flag is a trusted.* xattr), and removing what the kernel left root-owned in
 * the work dir when the server is not root.
 */
export class OverlayVolumes {
  private checked: Promise<void> | undefined;

  constructor(
    private readonly docker: Docker,
    private readonly extraLabels: Record<string, string>,
  ) {}

  mount(target: string, dirs: OverlayDirs, labels: Record<string, string>): MountSpec {
    return overlayMount(target, dirs, { ...labels, ...this.extraLabels });
  }

  /** Refuses an engine that cannot mount a kernel overlay of the server's directories (rootless Docker). */
  check(): Promise<void> {
    this.checked ??= this.inspect().catch((error: unknown) => {
      this.checked = undefined;
      throw error;
    });
    return this.checked;
  }

  private async inspect(): Promise<void> {
    const info = (await bounded(this.docker.info() as Promise<{ SecurityOptions?: string[]; OSType?: string }>, CALL_MS, 'ask the engine for its setup')) ?? {};
    if ((info.SecurityOptions ?? []).some((o) => /name=rootless/.test(o))) {
      throw new AppError('SANDBOX_FAILED', 'repo: overlay needs a rootful Docker engine: a rootless one cannot mount a kernel overlay whose upper dir is in the server\'s own state directory.', {
        hint: 'Use repo: ro (read-only) or repo: rw for this agent, or run the server against a rootful engine on this machine.',
      });
    }
    if (info.OSType && info.OSType !== 'linux') {
      throw new AppError('SANDBOX_FAILED', `repo: overlay needs a Linux engine (this one runs ${info.OSType} containers).`, { hint: 'Use repo: ro or repo: rw for this agent.' });
    }
  }

  /** For each repo-relative directory, the names a trusted container sees in the merged overlay. */
  async listMerged(target: HelperRun, dirs: OverlayDirs, listFile: string, names: string[]): Promise<Map<string, string[]>> {
    const script = `cd ${MERGED} && xargs -0 -r sh -c 'for d do find "./$d" -maxdepth 1 -print0 || exit 255; printf "\\0"; done' sh < ${LIST_FILE}`;
    const output = await this.helper(target, {
      cmd: ['/bin/sh', '-c', script],
      capAdd: ['DAC_READ_SEARCH'],
      mounts: [overlayMount(MERGED, dirs, { ...target.labels, ...this.extraLabels }, true), { Type: 'bind', Source: listFile, Target: LIST_FILE, ReadOnly: true }],
      what: 'read back the overlay',
    });
    return parseListing(output, names);
  }

  /** Remove a per-dispatch overlay dir's contents the server may not (the kernel's root-owned work dir). */
  async removeContents(target: HelperRun, dir: string, names: string[]): Promise<void> {
    await this.helper(target, {
      cmd: ['rm', '-rf', '--', ...names.map((n) => `/x/${n}`)],
      capAdd: ['DAC_OVERRIDE'],
      mounts: [{ Type: 'bind', Source: dir, Target: '/x', ReadOnly: false }],
      what: 'remove the overlay work dir',
    });
  }

  private async helper(target: HelperRun, run: { cmd: string[]; capAdd: string[]; mounts: MountSpec[]; what: string }): Promise<Buffer> {
    let container: Docker.Container | undefined;
    try {
      container = await bounded(
        this.docker.createContainer({
          Image: target.image,
          User: '0:0',
          Entrypoint: [],
          Cmd: run.cmd,
          Labels: { ...target.labels, ...this.extraLabels, ...ownerLabels(target.job, 5 * 60_000), [`${LABEL_PREFIX}.role`]: 'overlay-helper' },
          NetworkDisabled: true,
          AttachStdout: true,
          AttachStderr: true,
          HostConfig: {
            NetworkMode: 'none',
            ReadonlyRootfs: true,
            CapDrop: ['ALL'],
            CapAdd: run.capAdd,
            SecurityOpt: ['no-new-privileges'],
            PidsLimit: 64,
            Memory: 256 * 1024 * 1024,
            Mounts: run.mounts,
          },
        } as Docker.ContainerCreateOptions),
        CALL_MS,
        `create a helper container to ${run.what}`,
      );
      const stream = await bounded(container.attach({ stream: true, stdout: true, stderr: true }) as Promise<NodeJS.ReadableStream>, CALL_MS, 'attach to the helper container');
      const out = collect(this.docker, stream);
      await bounded(container.start(), CALL_MS, `start a helper container to ${run.what}`);
      const { StatusCode } = (await bounded(container.wait() as Promise<{ StatusCode: number }>, 5 * 60_000, `wait for the helper container to ${run.what}`)) ?? { StatusCode: -1 };
      const { stdout, stderr } = await out;
      if (StatusCode !== 0) throw new AppError('SANDBOX_FAILED', `Could not ${run.what}: the helper exited with ${StatusCode}: ${stderr.trim().slice(0, 300)}`);
      return stdout;
    } catch (error) {
      throw sandboxError(error, run.what, target.image);
    } finally {
      if (container) await removeQuietly(container);
    }
  }
}

function collect(docker: Docker, stream: NodeJS.ReadableStream): Promise<{ stdout: Buffer; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  docker.modem.demuxStream(stream, stdout, stderr);
  const out: Buffer[] = [];
  let size = 0;
  let err = '';
  stdout.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size <= LISTING_CAP) out.push(chunk);
  });
  stderr.on('data', (chunk: Buffer) => {
    if (err.length < 4096) err += chunk.toString('utf8');
  });
  return new Promise((resolve, reject) => {
    stream.on('end', () => (size > LISTING_CAP ? reject(new AppError('SANDBOX_FAILED', 'The overlay listing was too large.')) : resolve({ stdout: Buffer.concat(out), stderr: err })));
    stream.on('error', (error) => reject(new Error(describeError(error))));
  });
}

/**
 * Per directory, `find ./D -maxdepth 1 -print0` and an empty record: `./D` itself, `./D/name` for each entry,
 * then the empty record that ends the group (find never prints an empty name).
 */
export function parseListing(output: Buffer, dirs: string[]): Map<string, string[]> {
  const result = new Map<string, string[]>();
  const records = output.toString('utf8').split('\0');
  let at = 0;
  for (const dir of dirs) {
    const prefix = `./${dir}/`;
    if (records[at] !== `./${dir}`) throw new AppError('SANDBOX_FAILED', `The overlay listing of ${dir} is missing or malformed.`);
    const names: string[] = [];
    for (at += 1; at < records.length && records[at] !== ''; at += 1) {
      const record = records[at]!;
      if (!record.startsWith(prefix)) throw new AppError('SANDBOX_FAILED', `The overlay listing of ${dir} is malformed.`);
      names.push(record.slice(prefix.length));
    }
    at += 1;
    result.set(dir, names);
  }
  return result;
}
