import { createServer, isIPv4 } from 'node:net';
import { networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import type Docker from 'dockerode';
import { AppError, describeError } from '../errors.js';
import { bounded, engineUnreachable } from './engine-calls.js';

/** What the engine says of its default bridge network (`docker network inspect bridge`), reduced to what we use. */
export interface BridgeNetwork {
  /** IPv4 gateways of its IPAM config (Debian's dockerd 20.10 reports none for the default bridge). */
  gateways: string[];
  /** IPv4 subnets of its IPAM config, e.g. `172.17.0.0/16`. */
  subnets: string[];
  /** The host interface of the bridge (`com.docker.network.bridge.name`, `docker0` unless the daemon names another). */
  interfaceName: string;
}

export interface BridgeProbe {
  /** The host's interfaces as Node lists them: only links that are up and running (libuv skips the others). */
  interfaces: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
  /** Is this address configured on this machine (can a server bind to it)? */
  isLocal: (address: string) => Promise<boolean>;
}

const DEFAULT_PROBE: BridgeProbe = { interfaces: networkInterfaces, isLocal: isLocalAddress };
const INSPECT_MS = 10_000;

/** The parts of a network inspect answer we read; anything missing is simply absent. */
export function bridgeNetworkFacts(inspect: {
  IPAM?: { Config?: Array<{ Gateway?: string; Subnet?: string }> | null } | null;
  Options?: Record<string, string> | null;
}): BridgeNetwork {
  const config = inspect.IPAM?.Config ?? [];
  const v4 = (values: Array<string | undefined>) => values.filter((v): v is string => typeof v === 'string' && isIPv4(v.split('/')[0]!));
  return {
    gateways: v4(config.map((c) => c.Gateway)),
    subnets: v4(config.map((c) => c.Subnet)),
    interfaceName: inspect.Options?.['com.docker.network.bridge.name'] || 'docker0',
  };
}

/**
 * The address Docker gives the bridge of an IPv4 subnet when nothing names one: the first host address
 * (libnetwork's default IPAM hands out the pool's first address as the gateway; 172.17.0.0/16 → 172.17.0.1).
 */
export function firstHostAddress(subnet: string): string | undefined {
  const [base, bitsText] = subnet.split('/');
  const bits = Number(bitsText);
  if (!base || !isIPv4(base) || !Number.isInteger(bits) || bits < 0 || bits > 30) return undefined;
  const value = base.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
  const network = bits === 0 ? 0 : Math.floor(value / 2 ** (32 - bits)) * 2 ** (32 - bits);
  const host = network + 1;
  return [24, 16, 8, 0].map((shift) => Math.floor(host / 2 ** shift) % 256).join('.');
}

/**
 * Where the bridge's host address may be, best first, without depending on the link's state:
 *  1. the IPAM gateway, when the engine reports one (newer engines, or a network created with --gateway);
 *  2. the bridge interface's IPv4 address as Node sees it — present only while a container is attached:
 *     with none, docker0 is NO-CARRIER and Node's interface list omits it;
 *  3. the address Docker assigns from the bridge subnet (its first host address), which is what Debian's
 *     dockerd 20.10 leaves implicit: it reports the subnet and no gateway.
 * Each candidate is then checked to be configured on this machine (see `bridgeAddress`), so a daemon started
 * with an unusual `--bip` falls through to the next one rather than to a wrong answer.
 */
export function bridgeAddressCandidates(network: BridgeNetwork | undefined, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>): string[] {
  if (!network) return [];
  const fromInterface = (interfaces[network.interfaceName] ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.address);
  const fromSubnets = network.subnets.map(firstHostAddress).filter((a): a is string => a !== undefined);
  return [...new Set([...network.gateways, ...fromInterface, ...fromSubnets])];
}

/** True when a server can bind this address here: the kernel has it as a local address, whatever the link state. */
export function isLocalAddress(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: address, port: 0, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * The host address of Docker's default bridge: where a container on it reaches services on this machine (the
 * scripted model of `selftest`, test servers, benches). Works on a freshly started engine with no container
 * running. Throws DOCKER_UNAVAILABLE when the engine does not answer, SANDBOX_FAILED when there is no bridge
 * address on this machine, with what was tried.
 */
export async function bridgeAddress(docker: Docker, probe: BridgeProbe = DEFAULT_PROBE): Promise<string> {
  let network: BridgeNetwork | undefined;
  try {
    network = bridgeNetworkFacts(await bounded(docker.getNetwork('bridge').inspect(), INSPECT_MS, 'inspect the default bridge network'));
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    if (error instanceof AppError) throw error;
    if (status === undefined) throw engineUnreachable(error);
    if (status !== 404) throw new AppError('SANDBOX_FAILED', `Could not inspect Docker's default bridge network: ${describeError(error)}`, { cause: error });
  }
  const candidates = bridgeAddressCandidates(network, probe.interfaces());
  for (const address of candidates) if (await probe.isLocal(address)) return address;
  throw noBridgeAddress(network, candidates);
}

function noBridgeAddress(network: BridgeNetwork | undefined, tried: string[]): AppError {
  const why = !network
    ? "the engine has no network named 'bridge' (is dockerd running with --bridge=none?)"
    : tried.length === 0
      ? `the engine reports no IPv4 gateway or subnet for it, and ${network.interfaceName} has no IPv4 address`
      : `none of ${tried.join(', ')} is an address of this machine (the engine may be on another host)`;
  return new AppError('SANDBOX_FAILED', `Cannot find the host address of Docker's default bridge: ${why}.`, {
    hint: `Containers reach host services through that bridge. Check 'docker network inspect bridge' and 'ip addr show ${network?.interfaceName ?? 'docker0'}'; restart dockerd without --bridge=none.`,
  });
}
