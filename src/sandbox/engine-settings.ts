import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type Docker from 'dockerode';
import tar from 'tar-fs';
import { AppError, describeError } from '../errors.js';
import type { ContainerSpec, MountSpec } from '../policy/container-spec.js';
import * as layout from '../policy/layout.js';
import { bounded, removeQuietly } from './engine-calls.js';

const { CONFIG_DIR_LABEL, MANAGED_SETTINGS_FILE: FILE, ROLE_LABEL } = layout;
/** The label filter of every managed-settings volume (gc finds the unused ones by it). */
export const SETTINGS_ROLE = `${ROLE_LABEL}=settings`;

/**
 * The managed settings of a dispatch on an engine that does not share this machine's files (tcp://, ssh://),
 * where the bind mount of the file the runner wrote cannot work: a volume on that engine holding the file,
 * mounted read-only over the managed-settings directory. Named by the content's hash, so dispatches with the
 * same tool rules (of one config directory) share one, and filled (through a created, never started helper
 * container: `docker cp`) once per server process before its first use; a volume left empty by a crash is filled
 * again by the next server. `gc --volumes` removes the ones no container mounts, so a volume this process
 * filled may be gone by its next use: `held` checks it once the dispatch container pins it.
 */
export class SettingsVolumes {
  private readonly filled = new Map<string, Promise<void>>();

  constructor(
    private readonly docker: Docker,
    private readonly labels: Record<string, string>,
  ) {}

  /** The mount of the settings the runner wrote into `settingsDir`, on this engine, for a container of `spec`. */
  async mount(settingsDir: string, spec: ContainerSpec, ms: number): Promise<MountSpec> {
    const text = readFileSync(join(settingsDir, FILE));
    const configDir = spec.HostConfig.Mounts.map((m) => m.VolumeOptions?.Labels?.[CONFIG_DIR_LABEL]).find((d) => d !== undefined);
    const hash = createHash('sha256').update(`${configDir ?? ''}\0`).update(text).digest('hex').slice(0, 32);
    const name = `${layout.LABEL_PREFIX}-settings-${hash}`;
    let filling = this.filled.get(name);
    if (!filling) {
      const labels = { ...this.labels, [ROLE_LABEL]: 'settings', [`${layout.LABEL_PREFIX}.settings-hash`]: hash, ...(configDir !== undefined ? { [CONFIG_DIR_LABEL]: configDir } : {}) };
      filling = this.fill(name, labels, settingsDir, spec.Image, ms);
      this.filled.set(name, filling);
      filling.catch(() => this.filled.delete(name));
    }
    await filling;
    return { Type: 'volume', Source: name, Target: dirname(layout.MANAGED_SETTINGS_PATH), ReadOnly: true };
  }

  /**
   * Is the settings volume that `container` (created, not started) mounts still the one filled? Creating the
   * container pins the volume (the engine refuses to remove a volume any container holds), but a gc may have
   * removed it between its fill and that moment; the engine then made an empty one for the mount, without our
   * labels. Then the container and that empty volume are removed and false is returned: mount again (which
   * fills again) and create again. The agent never runs without its tool rules.
   */
  async held(mount: MountSpec, container: Docker.Container, ms: number): Promise<boolean> {
    const name = mount.Source!;
    try {
      const info = await bounded(this.docker.getVolume(name).inspect(), ms, 'inspect the managed-settings volume');
      if (info.Labels?.[ROLE_LABEL] === 'settings') return true;
    } catch (error) {
      await removeQuietly(container);
      throw new AppError('SANDBOX_FAILED', `Could not check the managed-settings volume ${name} on the engine: ${describeError(error)}`, {
        hint: 'Check the engine (agent-dispatch doctor), then retry.',
        cause: error,
      });
    }
    this.filled.delete(name);
    await removeQuietly(container);
    await bounded(this.docker.getVolume(name).remove(), ms, 'remove the empty managed-settings volume').catch(() => undefined);
    return false;
  }

  private async fill(name: string, labels: Record<string, string>, settingsDir: string, image: string, ms: number): Promise<void> {
    let helper: Docker.Container | undefined;
    try {
      await bounded(this.docker.createVolume({ Name: name, Labels: labels }), ms, 'create the managed-settings volume');
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
