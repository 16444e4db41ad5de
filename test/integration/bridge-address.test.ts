/**
 * The bridge address on the real engine, as a fresh machine has it: no container attached, so docker0 is
 * NO-CARRIER and Node's interface list omits it (simulated here by an empty list, since other suites may have
 * containers running), and Debian's dockerd reports the subnet without a gateway. The address must still be
 * found, and a container on the default bridge must reach a server listening on it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { bridgeAddress, isLocalAddress } from '../../src/sandbox/bridge.js';
import { BUSYBOX_IMAGE, cleanupTestResources, dockerClient, requireLocalImage, runContainer, skipDocker, TEST_LABEL, testRunId } from '../helpers/docker.js';

describe.skipIf(skipDocker)('bridgeAddress on a real engine', () => {
  const docker = dockerClient();
  const runId = testRunId();
  let server: Server | undefined;

  afterAll(async () => {
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    await cleanupTestResources(docker, runId);
  });

  it('with the bridge interface invisible to Node, the address is still found, and a container on the bridge reaches it', async () => {
    await requireLocalImage(docker, BUSYBOX_IMAGE);
    const host = await bridgeAddress(docker, { interfaces: () => ({}), isLocal: isLocalAddress });
    const network = await docker.getNetwork('bridge').inspect();
    const subnet = String(network.IPAM?.Config?.[0]?.Subnet ?? '');
    expect(subnet, 'the default bridge has an IPv4 subnet').toMatch(/^\d+\.\d+\.\d+\.\d+\/\d+$/);
    expect(host).toBe(await bridgeAddress(docker));

    const body = `bridge-${runId}`;
    server = createServer((_req, res) => res.end(body));
    await new Promise<void>((resolve, reject) => server!.once('error', reject).listen(0, host, () => resolve()));
    const port = (server.address() as AddressInfo).port;
    const run = await runContainer(docker, {
      Image: BUSYBOX_IMAGE,
      // busybox-static's wget crashes on name-service lookups in this image; nc speaks the request itself.
      Cmd: ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 ${host} ${port}`],
      Labels: { [TEST_LABEL]: runId },
      HostConfig: { NetworkMode: 'bridge', AutoRemove: false },
    });
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(run.stdout.endsWith(`\r\n\r\n${body}`)).toBe(true);
    expect(run.exitCode).toBe(0);
  });
});
