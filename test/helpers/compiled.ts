import type Docker from 'dockerode';
import type { CompiledSandbox, MountSpec } from '../../src/policy/index.js';
import { cleanupTestResources, removeVolumes, testLabels } from './docker.js';

/**
 * The compiled container spec with only Image, Cmd, test labels (container and named volumes) and any
 * `extraMounts` / `extraEnv` changed: every HostConfig security field is used exactly as compiled.
 */
export function testContainerOptions(
  compiled: CompiledSandbox,
  image: string,
  cmd: string[],
  runId: string,
  extra: { mounts?: MountSpec[]; env?: string[] } = {},
): Docker.ContainerCreateOptions {
  const spec = structuredClone(compiled.container);
  spec.Image = image;
  spec.Cmd = cmd;
  const labels = testLabels(runId);
  spec.Labels = { ...spec.Labels, ...labels };
  spec.Env = [...spec.Env, ...(extra.env ?? [])];
  spec.HostConfig.Mounts = [...spec.HostConfig.Mounts, ...(extra.mounts ?? [])];
  for (const m of spec.HostConfig.Mounts) {
    if (m.Type === 'volume') m.VolumeOptions = { ...m.VolumeOptions, Labels: { ...m.VolumeOptions?.Labels, ...labels } };
  }
  // ContainerSpec is the Engine API body; @types/dockerode's MountSettings wants every VolumeOptions field.
  return spec as unknown as Docker.ContainerCreateOptions;
}

export function namedVolumes(compiled: CompiledSandbox): string[] {
  return compiled.container.HostConfig.Mounts.filter((m) => m.Type === 'volume').map((m) => m.Source!);
}

/** After a suite that ran compiled specs: their named volumes, then everything labelled with the run. */
export async function removeCompiledResources(docker: Docker, compiled: CompiledSandbox[], runId: string): Promise<void> {
  for (const c of compiled) await removeVolumes(docker, namedVolumes(c));
  await cleanupTestResources(docker, runId);
}
