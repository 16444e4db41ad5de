/**
 * No product image looks like a test object. Labels are inherited by every image built FROM an image and by
 * every container started from one, so a test marker on a base image would put it on every user's dispatch
 * and gateway container (and `.ci/run` would remove them as test leftovers). So: the base images carry no
 * `agent-dispatch.test*` label, nor does an image the product builds from them (built here with no extra
 * labels, which would mask an inherited one; per-run tags, removed in afterAll), nor the installed images.
 * The gateway build needs `npm run build` first (dist/gateway).
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildGatewayImage, DEFAULT_GATEWAY_IMAGE } from '../../src/sandbox/gateway-image.js';
import { buildAgentImage, DEFAULT_AGENT_IMAGE, DEFAULT_CLAUDE_VERSION } from '../../src/sandbox/image.js';
import { BUSYBOX_IMAGE, NODE_IMAGE, TEST_LABEL, dockerClient, requireLocalImage, skipDocker, testRunId } from '../helpers/docker.js';

const BUILD_TIMEOUT = 180_000;

/** Every label key of the test family (`agent-dispatch.test`, `agent-dispatch.test-run`, ...). */
function testKeys(labels: Record<string, string> | null | undefined): string[] {
  return Object.keys(labels ?? {}).filter((key) => key.startsWith(TEST_LABEL));
}

describe.skipIf(skipDocker)('no test label on the base images and the images built from them', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const root = mkdtempSync(join(tmpdir(), 'ad-image-labels-'));
  const tags: string[] = [];
  const tag = (name: string) => {
    const t = `agent-dispatch-test/${name}:${runId}`;
    tags.push(t);
    return t;
  };

  afterAll(async () => {
    // By name: an image that got another tag too (an unchanged gateway build) is only untagged.
    for (const t of tags) await docker.getImage(t).remove().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  });

  it.for([BUSYBOX_IMAGE, NODE_IMAGE])('%s carries none', async (image) => {
    const info = await requireLocalImage(docker, image);
    expect(testKeys(info.Config.Labels)).toEqual([]);
  });

  it('the agent and gateway images the product builds FROM the base carry none', { timeout: BUILD_TIMEOUT }, async () => {
    const fakeClaude = join(root, 'claude');
    writeFileSync(fakeClaude, `#!/bin/sh\n# ${runId}\necho "${DEFAULT_CLAUDE_VERSION} (Claude Code)"\n`);
    chmodSync(fakeClaude, 0o755);
    const agent = await buildAgentImage({ claudeBinary: fakeClaude, tag: tag('agent'), docker });
    const gateway = await buildGatewayImage({ tag: tag('gateway'), docker });
    for (const [built, kind] of [[agent, 'agent'], [gateway, 'gateway']] as const) {
      const labels = (await docker.getImage(built.tag).inspect()).Config.Labels;
      expect(labels?.['agent-dispatch.image']).toBe(kind);
      expect(testKeys(labels), built.tag).toEqual([]);
    }
  });

  it.for([DEFAULT_AGENT_IMAGE, DEFAULT_GATEWAY_IMAGE])('%s, when installed (.ci/run builds it first), carries none', async (image, { skip }) => {
    const info = await docker
      .getImage(image)
      .inspect()
      .catch((error: { statusCode?: number }) => {
        if (error.statusCode === 404) return undefined;
        throw error;
      });
    if (!info) return skip(`${image} is not built here`);
    expect(testKeys(info.Config.Labels)).toEqual([]);
  });
});
