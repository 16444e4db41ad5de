/** Shared by the benchmarks: label what a run creates, remove it all afterwards (retrying volumes still in use). */

/**
 * The labels for every container and volume a benchmark run creates: the keys and values of `testLabels` in
 * test/helpers/docker.ts (a per-run id, and the suite run from AGENT_DISPATCH_TEST_RUN, else `local`).
 * @param {string} runId
 * @returns {Record<string, string>}
 */
export function benchLabels(runId) {
  return { 'agent-dispatch.test': runId, 'agent-dispatch.test-run': process.env.AGENT_DISPATCH_TEST_RUN?.trim() || 'local' };
}

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

/** Remove a run's labelled Docker objects and its temp dir, and say what was removed (or left). */
export async function removeRun(docker, label, root, info) {
  const { containers, volumes, left } = await removeLabelled(docker, label);
  const { rmSync } = await import('node:fs');
  rmSync(root, { recursive: true, force: true });
  info(`cleanup: removed ${containers} container(s), ${volumes} volume(s) labelled ${label}`);
  if (left.length) info(`cleanup: could not remove volume(s) ${left.join(', ')}: docker volume rm ${left.join(' ')}`);
}

/**
 * Clean up once on SIGINT/SIGTERM, then exit 130. `on`, not `once`: a second signal (e.g. sent to the whole
 * process group) must not kill the process mid-cleanup.
 */
export function cleanupOnSignals(cleanup, info, onStop = () => {}) {
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      onStop();
      info(`${signal}: cleaning up`);
      cleanup()
        .catch((error) => info(`cleanup failed: ${error?.stack ?? error}`))
        .finally(() => process.exit(130));
    });
  }
}

/**
 * Run a benchmark's `main`, clean up whatever happened, and exit 1 on failure (0 else). `interrupted()`: a
 * signal stopped the run, so the failure that follows is not worth a stack.
 */
export async function runMain(main, cleanup, interrupted = () => false) {
  let failed = false;
  try {
    await main();
  } catch (error) {
    failed = true;
    if (interrupted()) process.stderr.write('[bench] interrupted\n');
    else console.error(`[bench] failed: ${error?.stack ?? error}`);
  } finally {
    await cleanup();
  }
  process.exit(failed ? 1 : 0);
}

/**
 * Check the image is local (benchmarks never pull) and start the scripted model where containers on the default
 * bridge reach it. The two imports come from the built package (run `npm run build` first).
 */
export async function startLocalModel(docker, image) {
  try {
    await docker.getImage(image).inspect();
  } catch (error) {
    if (error.statusCode === 404) throw new Error(`image ${image} is not present locally (this benchmark never pulls): build it first`);
    throw error;
  }
  const { bridgeAddress } = await import('../dist/sandbox/bridge.js');
  const { startFakeModel } = await import('../dist/selftest/fake-model.js');
  const host = await bridgeAddress(docker);
  return startFakeModel({ host });
}

/**
 * A throwaway installation under `root`: a repo, agents.yaml with one agent under an open-network policy for
 * `image`, and the environment a server needs (labels for cleanup, the scripted model as the API).
 */
export async function writeBenchInstall({ root, agent, image, labels, modelUrl, settings = {}, gatewayImage = 'agent-dispatch/gateway:test' }) {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { stringify } = await import('yaml');
  const { gatewayPolicy, openNetworkPolicy } = await import('../dist/selftest/open-policy.js');
  const repo = join(root, 'repo');
  mkdirSync(repo);
  writeFileSync(join(repo, 'README.md'), '# bench\n');
  const configDir = join(root, 'config');
  mkdirSync(join(configDir, 'policies'), { recursive: true });
  writeFileSync(join(configDir, 'policies', 'open-bench.yaml'), stringify(openNetworkPolicy(image, { description: 'bench: open network (the docker-run baseline has the same)' })));
  writeFileSync(join(configDir, 'policies', 'gateway-bench.yaml'), stringify(gatewayPolicy(image, { description: 'bench: behind the egress gateway' })));
  const configPath = join(configDir, 'agents.yaml');
  const agents = {
    [agent]: { directory: repo, policy: 'open-bench', description: 'bench' },
    [`${agent}-gw`]: { directory: repo, policy: 'gateway-bench', description: 'bench, behind the gateway' },
  };
  const config = { agents, groups: {}, settings };
  writeFileSync(configPath, stringify(config), { mode: 0o600 });
  const env = {
    PATH: process.env.PATH,
    HOME: root,
    AGENT_DISPATCH_CONFIG: configPath,
    AGENT_DISPATCH_CONTAINER_LABELS: Object.entries(labels).map(([key, value]) => `${key}=${value}`).join(','),
    AGENT_DISPATCH_GATEWAY_IMAGE: gatewayImage,
    AGENT_DISPATCH_DEPTH: '0',
    ANTHROPIC_BASE_URL: modelUrl,
    ANTHROPIC_API_KEY: 'sk-bench-dummy',
    ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
  };
  return { repo, configPath, env };
}
