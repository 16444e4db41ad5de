/**
 * The host address of Docker's default bridge, for each answer an engine gives. The inspect answers are the
 * engines' own: Debian's dockerd 20.10 (subnet, no gateway), a newer engine (gateway too), and the states of
 * docker0 Node sees (running: listed; NO-CARRIER with no container attached: omitted by os.networkInterfaces).
 */
import type { NetworkInterfaceInfo } from 'node:os';
import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { bridgeAddress, bridgeAddressCandidates, bridgeNetworkFacts, firstHostAddress, isLocalAddress, type BridgeProbe } from '../../src/sandbox/bridge.js';
import { AppError } from '../../src/errors.js';

const OPTIONS = { 'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.name': 'docker0', 'com.docker.network.driver.mtu': '1500' };
/** `docker network inspect bridge` on Debian 12's docker.io 20.10.24, freshly started. */
const DEBIAN_2010 = { IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: '172.17.0.0/16' }] }, Options: OPTIONS };
/** The same network on an engine that reports the gateway. */
const WITH_GATEWAY = { IPAM: { Driver: 'default', Options: null, Config: [{ Subnet: '172.17.0.0/16', Gateway: '172.17.0.1' }] }, Options: OPTIONS };

const iface = (address: string, family: 'IPv4' | 'IPv6' = 'IPv4'): NetworkInterfaceInfo =>
  ({ address, family, netmask: '255.255.0.0', mac: '02:42:00:00:00:00', internal: false, cidr: `${address}/16` }) as NetworkInterfaceInfo;
const RUNNING = { lo: [{ ...iface('127.0.0.1'), internal: true }], eth0: [iface('10.0.0.5')], docker0: [iface('172.17.0.1'), iface('fe80::1', 'IPv6')] };
/** docker0 NO-CARRIER: libuv lists only interfaces that are up and running. */
const DOWN = { lo: RUNNING.lo, eth0: RUNNING.eth0 };

function engine(answer: unknown | Error): Docker {
  return { getNetwork: () => ({ inspect: async () => { if (answer instanceof Error) throw answer; return answer; } }) } as unknown as Docker;
}
function probe(interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>, local: string[]): BridgeProbe & { asked: string[] } {
  const asked: string[] = [];
  return { asked, interfaces: () => interfaces, isLocal: async (a) => (asked.push(a), local.includes(a)) };
}
const httpError = (statusCode: number) => Object.assign(new Error(`(HTTP code ${statusCode})`), { statusCode });

describe('firstHostAddress: the address Docker gives a bridge of a subnet', () => {
  it.each([
    ['172.17.0.0/16', '172.17.0.1'],
    ['172.18.5.0/24', '172.18.5.1'],
    ['10.200.0.0/12', '10.192.0.1'],
    ['192.168.1.77/24', '192.168.1.1'],
    ['0.0.0.0/0', '0.0.0.1'],
  ])('%s → %s', (subnet, address) => expect(firstHostAddress(subnet)).toBe(address));

  it.each(['172.17.0.0', '172.17.0.0/31', '172.17.0.0/33', 'fd00::/64', '300.1.1.0/24', 'bridge/16'])('%s has none', (subnet) => {
    expect(firstHostAddress(subnet)).toBeUndefined();
  });
});

describe('bridgeNetworkFacts', () => {
  it('reads IPv4 gateways and subnets and the interface name; IPv6 entries are ignored', () => {
    const facts = bridgeNetworkFacts({ IPAM: { Config: [{ Subnet: '172.17.0.0/16' }, { Subnet: 'fd00:1::/64', Gateway: 'fd00:1::1' }] }, Options: { 'com.docker.network.bridge.name': 'br-lab' } });
    expect(facts).toEqual({ gateways: [], subnets: ['172.17.0.0/16'], interfaceName: 'br-lab' });
  });

  it('defaults the interface to docker0 and tolerates a null IPAM config', () => {
    expect(bridgeNetworkFacts({ IPAM: { Config: null }, Options: null })).toEqual({ gateways: [], subnets: [], interfaceName: 'docker0' });
  });
});

describe('bridgeAddressCandidates: best first, whatever the link state', () => {
  it('gateway present: the gateway first', () => {
    expect(bridgeAddressCandidates(bridgeNetworkFacts(WITH_GATEWAY), RUNNING)).toEqual(['172.17.0.1']);
  });

  it('subnet only, interface down: derived from the subnet', () => {
    expect(bridgeAddressCandidates(bridgeNetworkFacts(DEBIAN_2010), DOWN)).toEqual(['172.17.0.1']);
  });

  it('subnet only, interface running with a --bip address: the interface, then the subnet', () => {
    const bip = { ...RUNNING, docker0: [iface('172.17.0.9')] };
    expect(bridgeAddressCandidates(bridgeNetworkFacts(DEBIAN_2010), bip)).toEqual(['172.17.0.9', '172.17.0.1']);
  });

  it('no bridge network: nothing', () => {
    expect(bridgeAddressCandidates(undefined, RUNNING)).toEqual([]);
  });
});

describe('bridgeAddress', () => {
  it('gateway present → the gateway', async () => {
    await expect(bridgeAddress(engine(WITH_GATEWAY), probe(DOWN, ['172.17.0.1']))).resolves.toBe('172.17.0.1');
  });

  it('subnet only and docker0 NO-CARRIER (a fresh engine, no container running) → the subnet address', async () => {
    const p = probe(DOWN, ['127.0.0.1', '172.17.0.1']);
    await expect(bridgeAddress(engine(DEBIAN_2010), p)).resolves.toBe('172.17.0.1');
    expect(p.asked).toEqual(['172.17.0.1']);
  });

  it('subnet only and docker0 running → the interface address', async () => {
    await expect(bridgeAddress(engine(DEBIAN_2010), probe(RUNNING, ['172.17.0.1']))).resolves.toBe('172.17.0.1');
  });

  it('a candidate that is not an address of this machine is skipped for the next one', async () => {
    const bip = { ...RUNNING, docker0: [iface('172.17.0.9')] };
    const p = probe(bip, ['172.17.0.1']);
    await expect(bridgeAddress(engine(DEBIAN_2010), p)).resolves.toBe('172.17.0.1');
    expect(p.asked).toEqual(['172.17.0.9', '172.17.0.1']);
  });

  it('no bridge network → SANDBOX_FAILED naming --bridge=none, never loopback', async () => {
    const error = await bridgeAddress(engine(httpError(404)), probe(RUNNING, ['127.0.0.1'])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AppError);
    expect(error).toMatchObject({ code: 'SANDBOX_FAILED', message: "Cannot find the host address of Docker's default bridge: the engine has no network named 'bridge' (is dockerd running with --bridge=none?)." });
  });

  it('an engine on another host (no candidate is local) → SANDBOX_FAILED listing what was tried', async () => {
    const error = await bridgeAddress(engine(WITH_GATEWAY), probe(DOWN, [])).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SANDBOX_FAILED', message: expect.stringContaining('none of 172.17.0.1 is an address of this machine') });
    expect((error as AppError).hint).toContain('docker network inspect bridge');
  });

  it('no gateway, no subnet, no interface → SANDBOX_FAILED', async () => {
    const error = await bridgeAddress(engine({ IPAM: { Config: [] }, Options: OPTIONS }), probe(DOWN, [])).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SANDBOX_FAILED', message: expect.stringContaining('reports no IPv4 gateway or subnet for it, and docker0 has no IPv4 address') });
  });

  it('engine unreachable → DOCKER_UNAVAILABLE', async () => {
    const refused = Object.assign(new Error('connect ENOENT /var/run/docker.sock'), { code: 'ENOENT' });
    await expect(bridgeAddress(engine(refused), probe(RUNNING, []))).rejects.toMatchObject({ code: 'DOCKER_UNAVAILABLE' });
  });

  it('another engine error → SANDBOX_FAILED with its message', async () => {
    await expect(bridgeAddress(engine(httpError(500)), probe(RUNNING, []))).rejects.toMatchObject({ code: 'SANDBOX_FAILED', message: expect.stringContaining('(HTTP code 500)') });
  });
});

describe('isLocalAddress', () => {
  it('loopback is local; an address of no interface here is not', async () => {
    expect(await isLocalAddress('127.0.0.1')).toBe(true);
    expect(await isLocalAddress('192.0.2.123')).toBe(false); // TEST-NET-1, never configured
  });
});
