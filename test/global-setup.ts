/**
 * Before the suite: make sure the test agent image exists and matches images/agent. It is built from the
 * local base (scripts/base-images.sh) with the devDependency's native claude binary: nothing is pulled.
 * The image carries a hash of its build context and base (CACHE_LABEL), so an edited Dockerfile or a rebuilt
 * base rebuilds it; an unchanged one is reused across runs (like the base images).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { networkInterfaces } from 'node:os';
import Docker from 'dockerode';
import { bridgeAddress } from '../src/sandbox/bridge.js';
import { buildGatewayImage, gatewayContextHash } from '../src/sandbox/gateway-image.js';
import { AGENT_IMAGE_DIR, buildAgentImage, DEFAULT_BASE_IMAGE } from '../src/sandbox/image.js';
import { TEST_AGENT_IMAGE, TEST_GATEWAY_IMAGE } from './helpers/dispatch-fixture.js';
import { dockerAvailable } from './helpers/docker.js';

/**
 * The only label of these kept images: not TEST_LABEL (every container started from them would inherit it and
 * look like a test's leftover), nor the suite-run label (`.ci/run` removes the images of its run).
 */
const CACHE_LABEL = 'agent-dispatch.test-cache';

function contextHash(binary: string): string {
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else hash.update(path.slice(AGENT_IMAGE_DIR.length)).update(readFileSync(path));
    }
  };
  walk(AGENT_IMAGE_DIR);
  const st = statSync(binary);
  return hash.update(`${binary}:${st.size}:${st.mtimeMs}`).digest('hex').slice(0, 16);
}

export default async function setup(): Promise<void> {
  if (!dockerAvailable()) return;
  await bridgeBeforeAnyContainer();
  await agentImage();
  await gatewayImage();
}

/**
 * Resolve the bridge address before this suite starts a container: on a fresh engine (CI right after the image
 * builds) docker0 is NO-CARRIER here, the state a new user's first `selftest` meets. Every Docker suite needs
 * the address, so a failure stops the run with the reason rather than in each suite.
 */
async function bridgeBeforeAnyContainer(): Promise<void> {
  const docker = new Docker();
  const running = (await docker.listContainers()).length;
  const visible = networkInterfaces()['docker0'] !== undefined;
  const address = await bridgeAddress(docker);
  process.stderr.write(`[global-setup] bridge address ${address} (${running} container(s) running, docker0 ${visible ? 'up' : 'not running'})\n`);
}

/** An image tagged `tag` built from `context` on the current base: reuse it, or build it and drop the one it replaces. */
async function ensureImage(tag: string, context: string, build: (labels: Record<string, string>, docker: Docker) => Promise<unknown>): Promise<void> {
  const docker = new Docker();
  // A missing base is left to the build, which explains it (IMAGE_NOT_FOUND).
  const base = await docker.getImage(DEFAULT_BASE_IMAGE).inspect().then((i) => i.Id.replace(/^sha256:/, '').slice(0, 16), () => 'none');
  const wanted = `${context}-${base}`;
  let previous: string | undefined;
  try {
    const existing = await docker.getImage(tag).inspect();
    if (existing.Config?.Labels?.[CACHE_LABEL] === wanted) return;
    previous = existing.Id;
  } catch {
    // not built yet
  }
  const started = Date.now();
  await build({ [CACHE_LABEL]: wanted }, docker);
  // The replaced image is now untagged: remove it (unless something still uses it) so rebuilds do not pile up.
  if (previous) await docker.getImage(previous).remove().catch(() => undefined);
  process.stderr.write(`[global-setup] built ${tag} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}

/** The gateway image carries the compiled program (dist/gateway): `npm test` builds it first. */
function gatewayImage(): Promise<void> {
  return ensureImage(TEST_GATEWAY_IMAGE, gatewayContextHash(), (labels, docker) => buildGatewayImage({ tag: TEST_GATEWAY_IMAGE, labels, docker }));
}

async function agentImage(): Promise<void> {
  const binary = join(dirname(createRequire(import.meta.url).resolve('@anthropic-ai/claude-code-linux-x64/package.json')), 'claude');
  await ensureImage(TEST_AGENT_IMAGE, contextHash(binary), (labels, docker) => buildAgentImage({ tag: TEST_AGENT_IMAGE, claudeBinary: binary, labels, docker }));
}
