import type Docker from 'dockerode';
import type { ContainerSpec } from '../policy/container-spec.js';
import { CLAUDE_SESSIONS_DIR } from '../policy/layout.js';
import { sandboxError } from './sandbox-error.js';
import { pruneSessionVolumeIfDue } from './session-prune.js';
import { runThrowaway } from './throwaway.js';

const TARGET = '/state';

/**
 * Create the agent's Claude-state volume on first use and give it to the container user. A fresh volume
 * would otherwise be owned by whatever the image has at that path (root, if the image lacks it), and a
 * dispatch running as the repo owner's uid could not write its session transcripts.
 * The chown runs once per new volume, in a throwaway container with only CAP_CHOWN and no network.
 */
export async function prepareStateVolume(
  docker: Docker,
  spec: ContainerSpec,
  user: { uid: number; gid: number },
  extraLabels: Record<string, string>,
  /** The dispatch's owner labels, for the one-shot chown container (so a crash mid-way leaves it reapable). */
  helperLabels: Record<string, string> = {},
): Promise<void> {
  const mount = spec.HostConfig.Mounts.find((m) => m.Type === 'volume' && m.Target === CLAUDE_SESSIONS_DIR);
  if (!mount?.Source) return;
  const labels = { ...mount.VolumeOptions?.Labels, ...extraLabels };
  const created = await prepareOwnedVolume(docker, {
    name: mount.Source,
    labels,
    image: spec.Image,
    owner: user,
    helperLabels,
    what: 'session volume',
  });
  if (!created) await pruneSessionVolumeIfDue(docker, { name: mount.Source, image: spec.Image, owner: user, labels: { ...labels, ...helperLabels } });
}

export interface OwnedVolume {
  name: string;
  labels: Record<string, string>;
  /** Any local image with `chown` (the one about to use the volume). */
  image: string;
  owner: { uid: number; gid: number };
  helperLabels: Record<string, string>;
  /** For messages: 'session volume', 'gateway socket volume'. */
  what: string;
}

/** Create a named volume owned by `owner` (once: an existing volume is left as it is). True when it was created. */
export async function prepareOwnedVolume(docker: Docker, volume: OwnedVolume): Promise<boolean> {
  const { name, image, owner, what } = volume;
  try {
    await docker.getVolume(name).inspect();
    return false;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 404) throw sandboxError(error, `inspect the volume ${name}`, image);
  }
  const labels = volume.labels;
  try {
    await docker.createVolume({ Name: name, Labels: labels });
    const status = await runThrowaway(docker, {
      image,
      user: '0:0',
      cmd: ['chown', `${owner.uid}:${owner.gid}`, TARGET],
      capAdd: ['CHOWN'],
      labels: { ...labels, ...volume.helperLabels },
      volume: { name, target: TARGET },
      what: `chown the ${what} ${name}`,
    });
    if (status !== 0) throw new Error(`chown of the ${what} ${name} exited with ${status}`);
  } catch (error) {
    await docker.getVolume(name).remove().catch(() => undefined);
    throw sandboxError(error, `prepare the ${what} ${name}`, image);
  }
  return true;
}
