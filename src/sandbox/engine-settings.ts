import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type Docker from 'dockerode';
import tar from 'tar-fs';
import { AppError, describeError } from '../errors.js';
import type { MountSpec } from '../policy/container-spec.js';
import * as layout from '../policy/layout.js';
import { bounded, removeQuietly } from './engine-calls.js';

const FILE = 'managed-settings.json';

/**
 * The managed settings of a dispatch on an engine that does not share this machine's files (tcp://, ssh://),
 * where the bind mount of the file the runner wrote cannot work: a volume on that engine holding the file,
 * mounted read-only over the managed-settings directory. Named by the content's hash, so dispatches with the
 * same tool rules share one, and filled (through a created, never started helper container: `docker cp`) once
 * per server process before its first use; a volume left empty by a crash is filled again by the next server.
 */
export class SettingsVolumes {
  private readonly filled = new Map<string, Promise<void>>();

  constructor(
    private readonly docker: Docker,
    private readonly labels: Record<string, string>,
  ) {}

  /** The mount of the settings the runner wrote into `settingsDir`, on this engine. */
  async mount(settingsDir: string, image: string, ms: number): Promise<MountSpec> {
    const text = readFileSync(join(settingsDir, FILE));
    const name = `${layout.LABEL_PREFIX}-settings-${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;
    let filling = this.filled.get(name);
    if (!filling) {
      filling = this.fill(name, settingsDir, image, ms);
      this.filled.set(name, filling);
      filling.catch(() => this.filled.delete(name));
    }
    await filling;
    return { Type: 'volume', Source: name, Target: dirname(layout.MANAGED_SETTINGS_PATH), ReadOnly: true };
  }

  private async fill(name: string, settingsDir: string, image: string, ms: number): Promise<void> {
    let helper: Docker.Container | undefined;
    try {
      await bounded(this.docker.createVolume({ Name: name, Labels: { ...this.labels, [`${layout.LABEL_PREFIX}.role`]: 'settings' } }), ms, 'create the managed-settings volume');
      helper = await bounded(
        this.docker.createContainer({
          Image: image,
          Cmd: ['true'],
          Labels: this.labels,
          NetworkDisabled: true,
          HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: name, Target: '/settings' }] },
        }),
        ms,
        'create the container that fills the managed-settings volume',
      );
      // Owned by root and read-only for everyone: the agent (uid 1000) reads its tool rules and cannot change them.
      const archive = tar.pack(settingsDir, { entries: [FILE], map: (header) => ({ ...header, uid: 0, gid: 0, uname: 'root', gname: 'root', mode: 0o444 }) });
      await bounded(helper.putArchive(archive as unknown as NodeJS.ReadableStream, { path: '/settings' }), ms, 'copy the managed settings to the engine');
    } catch (error) {
      throw new AppError('SANDBOX_FAILED', `Could not put the managed settings on the engine: ${describeError(error)}`, {
        hint: 'Check the engine (agent-dispatch doctor) and that it has room for a small volume, then retry.',
        cause: error,
      });
    } finally {
      if (helper) await removeQuietly(helper);
    }
  }
}
