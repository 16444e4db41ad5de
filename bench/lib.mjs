/** Shared by the benchmarks: remove every container and volume a run labelled, retrying volumes still in use. */

/**
 * @param {import('dockerode')} docker
 * @param {string} label `key=value`
 * @returns {Promise<{ containers: number, volumes: number, left: string[] }>}
 */
export async function removeLabelled(docker, label) {
  const filters = JSON.stringify({ label: [label] });
  let containers = 0;
  for (const c of await docker.listContainers({ all: true, filters }).catch(() => [])) {
    await docker.getContainer(c.Id).remove({ force: true, v: true }).then(() => containers++, () => undefined);
  }
  const { Volumes } = await docker.listVolumes({ filters }).catch(() => ({ Volumes: [] }));
  let volumes = 0;
  const left = [];
  for (const { Name: name } of Volumes ?? []) {
    // A container removal still in progress holds the volume (409): retry for a few seconds.
    for (let attempt = 0; ; attempt++) {
      const status = await docker.getVolume(name).remove({ force: true }).then(() => 0, (e) => e.statusCode ?? -1);
      if (status === 0) volumes++;
      if (status === 0 || status === 404) break;
      if (attempt >= 20) {
        left.push(name);
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return { containers, volumes, left };
}
