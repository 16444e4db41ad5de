import { networkInterfaces } from 'node:os';
import type Docker from 'dockerode';

/**
 * The host address of Docker's default bridge: where a container on it reaches services on this machine
 * (the scripted model of `selftest`, test servers). The network's IPAM gateway, else the docker0 interface.
 */
export async function bridgeAddress(docker: Docker): Promise<string | undefined> {
  try {
    const info = await docker.getNetwork('bridge').inspect();
    const gateway = (info.IPAM?.Config ?? []).map((c: { Gateway?: string }) => c.Gateway).find(Boolean);
    if (gateway) return gateway;
  } catch {
    // fall through to the interface
  }
  return networkInterfaces()['docker0']?.find((a) => a.family === 'IPv4')?.address;
}
