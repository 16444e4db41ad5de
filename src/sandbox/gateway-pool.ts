/**
 * Egress gateways, one per agent (per socket volume), started on demand and reused by its dispatches.
 *
 * Before every dispatch the gateway must answer a ping and pass its canary (an allowed destination works and
 * a denied one is refused, through the same socket the agent uses); otherwise the dispatch fails closed and no
 * agent container starts. A gateway found dead is removed and the dispatch that found it fails; the next one
 * starts a fresh gateway. Each dispatch registers its own token and allowlist, so the gateway attributes every
 * egress decision to exactly one dispatch and refuses connections from anything else.
 */
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { AppError, describeError } from '../errors.js';
import { bridgeCommand } from '../gateway/bridge-script.js';
import { BRIDGE_ENV, GATEWAY_PROTOCOL, type AllowRule, type EgressDecision, type GatewayConfig } from '../gateway/protocol.js';
import { logger } from '../log.js';
import { serverCredentialName } from '../policy/schema.js';
import { bounded } from './engine-calls.js';
import { GATEWAY_UID, GatewayContainer, gatewayFailure } from './gateway-container.js';
import { gatewayBuildHint, GATEWAY_PROTOCOL_LABEL } from './gateway-image.js';
import { prepareOwnedVolume } from './state-volume.js';

const log = logger('gateway');
const DEFAULT_UPSTREAM = 'https://api.anthropic.com';
const CHECK_MS = 5_000;
const RELEASE_MS = 5_000;
/** A gateway with no dispatch for this long is stopped (the next dispatch starts a new one). */
const IDLE_MS = 10 * 60_000;

export interface EgressRequest {
  agent: string;
  /** The agent's socket volume (the compiled spec mounts it read-only at GATEWAY_SOCKET_DIR). */
  volume: string;
  volumeLabels: Record<string, string>;
  allow: AllowRule[];
  /** Owner labels of the dispatch (server identity), so a gateway left by a dead server is reaped. */
  ownerLabels: Record<string, string>;
  stepMs: number;
}

export interface EgressLease {
  /** KEY=VALUE entries for the agent container: where the socket is and the dispatch's token. */
  env: string[];
  /** The agent command, run behind the in-container TCP-to-socket bridge. */
  wrap(cmd: string[]): string[];
  /** Unregister the token; the gateway's decisions for this dispatch. Never throws. */
  release(): Promise<EgressDecision[] | undefined>;
  /** Ping and canary again (a pre-started sandbox's lease was opened before its dispatch); a failing gateway is removed. */
  recheck(): Promise<void>;
}

export interface GatewayPoolOptions {
  image: string;
  extraLabels: Record<string, string>;
  /** The server's environment: upstream (ANTHROPIC_BASE_URL) and the credential the gateway adds. */
  env: NodeJS.ProcessEnv;
}

interface Entry {
  starting: Promise<GatewayContainer>;
  leases: number;
  idle?: NodeJS.Timeout;
  /** The image it was started from: a rebuilt gateway image retires it (see entry). */
  imageId: string;
  /** Replaced by a gateway of a newer image: it serves its current leases, then goes. */
  retired?: boolean;
}

export class GatewayPool {
  private readonly gateways = new Map<string, Entry>();
  /** Retired gateways still serving dispatches (shutdown removes them too). */
  private readonly retired = new Set<Entry>();

  constructor(
    private readonly docker: Docker,
    private readonly options: GatewayPoolOptions,
  ) {}

  async open(request: EgressRequest): Promise<EgressLease> {
    const hint = `Run agent-dispatch doctor; ${gatewayBuildHint(this.options.image)} if it is missing. The next dispatch starts a new gateway.`;
    const credential = gatewayCredential(this.options.env);
    if (credential === undefined) {
      throw gatewayFailure(request.agent, 'the server has no Anthropic credential to add to the agent\'s API requests', 'Set ANTHROPIC_API_KEY, or ANTHROPIC_AUTH_TOKEN / CLAUDE_CODE_OAUTH_TOKEN (from claude setup-token), in the environment the MCP server starts with (claude mcp add ... -e NAME=value).');
    }
    const upstream = this.options.env['ANTHROPIC_BASE_URL'] || DEFAULT_UPSTREAM;
    const unreachable = upstreamProblem(upstream);
    if (unreachable) throw gatewayFailure(request.agent, unreachable, 'Point ANTHROPIC_BASE_URL of the MCP server at an address containers can reach (the Docker bridge address, e.g. http://172.17.0.1:PORT, with the service listening there), or unset it for the Anthropic API.');
    const imageId = await this.requireImage(this.options.image, request);
    const entry = this.entry(request, credential, upstream, imageId);
    let gateway: GatewayContainer;
    try {
      gateway = await entry.starting;
    } catch (error) {
      this.drop(request.volume, entry);
      if (error instanceof AppError && error.code !== 'SANDBOX_FAILED') throw error;
      throw gatewayFailure(request.agent, `it could not be started: ${describeError(error)}`, hint);
    }
    const token = randomBytes(24).toString('hex');
    entry.leases += 1;
    clearTimeout(entry.idle);
    try {
      await this.check(gateway);
      await gateway.send({ op: 'register', token, allow: request.allow }, CHECK_MS);
    } catch (error) {
      entry.leases -= 1;
      this.drop(request.volume, entry);
      await gateway.remove(describeError(error));
      throw gatewayFailure(request.agent, describeError(error), hint);
    }
    return {
      env: [`${BRIDGE_ENV.socket}=${gateway.socketPath}`, `${BRIDGE_ENV.token}=${token}`],
      wrap: bridgeCommand,
      recheck: async () => {
        try {
          await this.check(gateway);
        } catch (error) {
          this.drop(request.volume, entry);
          await gateway.remove(describeError(error));
          throw error;
        }
      },
      release: async () => {
        entry.leases -= 1;
        this.scheduleIdle(request.volume, entry);
        try {
          const answer = await gateway.send({ op: 'release', token }, RELEASE_MS);
          return answer.event === 'released' ? answer.decisions : undefined;
        } catch (error) {
          log.warn(`egress decisions of a dispatch of '${request.agent}' are lost: ${describeError(error)}`);
          return undefined;
        }
      },
    };
  }

  /** Stop every gateway (server shutdown). */
  async shutdown(): Promise<void> {
    const all = [...this.gateways.values(), ...this.retired];
    this.gateways.clear();
    this.retired.clear();
    await Promise.all(
      all.map(async (entry) => {
        clearTimeout(entry.idle);
        const gateway = await entry.starting.catch(() => undefined);
        await gateway?.remove('the server is shutting down');
      }),
    );
  }

  /**
   * The agent's gateway, started if it has none, or none of the current image: a rebuilt gateway image takes
   * effect at the next dispatch, while dispatches already running finish on the old gateway (its socket path
   * is its own), which then goes.
   */
  private entry(request: EgressRequest, credential: GatewayConfig['credential'], upstream: string, imageId: string): Entry {
    const existing = this.gateways.get(request.volume);
    if (existing && existing.imageId === imageId) return existing;
    if (existing) this.retire(request.volume, existing);
    const entry: Entry = { starting: this.start(request, credential, upstream), leases: 0, imageId };
    this.gateways.set(request.volume, entry);
    return entry;
  }

  private async start(request: EgressRequest, credential: GatewayConfig['credential'], upstream: string): Promise<GatewayContainer> {
    const { image } = this.options;
    const labels = { ...request.volumeLabels, ...this.options.extraLabels };
    await bounded(
      prepareOwnedVolume(this.docker, { name: request.volume, labels, image, owner: { uid: GATEWAY_UID, gid: GATEWAY_UID }, helperLabels: request.ownerLabels, what: 'gateway socket volume' }),
      request.stepMs,
      'prepare the gateway socket volume',
    );
    const gateway = await GatewayContainer.start(this.docker, {
      image,
      volume: request.volume,
      labels: { ...labels, ...request.ownerLabels },
      upstream,
      credential,
      stepMs: request.stepMs,
    });
    log.info(`egress gateway for '${request.agent}' started (${gateway.id.slice(0, 12)})`);
    return gateway;
  }

  /** Alive and enforcing: a ping, then the canary through the agent's own path (socket, token, allowlist). */
  private async check(gateway: GatewayContainer): Promise<void> {
    if (gateway.deadReason) throw new Error(gateway.deadReason);
    await gateway.send({ op: 'ping' }, CHECK_MS);
    const canary = await gateway.send({ op: 'canary' }, CHECK_MS);
    if (canary.event !== 'canary' || !canary.ok) throw new Error(`its canary failed: ${canary.event === 'canary' ? canary.detail : canary.event}`);
  }

  /** The gateway image's id, once it is known to be here and to speak this server's protocol. */
  private async requireImage(image: string, request: EgressRequest): Promise<string> {
    let info: Docker.ImageInspectInfo;
    try {
      info = await bounded(this.docker.getImage(image).inspect(), request.stepMs, `inspect the image ${image}`);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) {
        throw new AppError('IMAGE_NOT_FOUND', `The egress gateway image ${image} is not on this machine (agent-dispatch never pulls images).`, { hint: `${gatewayBuildHint(image)}.`, cause: error });
      }
      throw error;
    }
    const protocol = info.Config?.Labels?.[GATEWAY_PROTOCOL_LABEL];
    if (protocol !== String(GATEWAY_PROTOCOL)) {
      throw new AppError('IMAGE_NOT_FOUND', `The egress gateway image ${image} speaks protocol ${protocol ?? 'none'}, this server ${GATEWAY_PROTOCOL}.`, { hint: `Rebuild it. ${gatewayBuildHint(image)}.` });
    }
    return info.Id;
  }

  private retire(volume: string, entry: Entry): void {
    this.drop(volume, entry);
    entry.retired = true;
    this.retired.add(entry);
    log.info(`the egress gateway image was rebuilt: the agent's old gateway goes once its ${entry.leases} dispatch(es) end`);
    this.scheduleIdle(volume, entry);
  }

  private drop(volume: string, entry: Entry): void {
    if (this.gateways.get(volume) === entry) this.gateways.delete(volume);
    clearTimeout(entry.idle);
  }

  private scheduleIdle(volume: string, entry: Entry): void {
    if (entry.leases > 0) return;
    clearTimeout(entry.idle);
    if (entry.retired) {
      this.retired.delete(entry);
      void entry.starting.then((gateway) => gateway.remove('its image was rebuilt'), () => undefined);
      return;
    }
    entry.idle = setTimeout(() => {
      if (entry.leases > 0 || this.gateways.get(volume) !== entry) return;
      this.drop(volume, entry);
      void entry.starting.then((gateway) => gateway.remove('idle'), () => undefined);
    }, IDLE_MS);
    entry.idle.unref();
  }
}

/** Why the gateway container could not forward to `upstream`, or undefined. */
export function upstreamProblem(upstream: string): string | undefined {
  let url: URL;
  try {
    url = new URL(upstream);
  } catch {
    return `the server's ANTHROPIC_BASE_URL (${upstream}) is not a URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `the server's ANTHROPIC_BASE_URL uses ${url.protocol}, not http or https`;
  if (url.username || url.password) {
    return "the server's ANTHROPIC_BASE_URL has credentials in it (user:password@); put the proxy's credential in ANTHROPIC_AUTH_TOKEN or ANTHROPIC_API_KEY and drop it from the URL";
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host.endsWith('.localhost') || /^127\./.test(host) || host === '::1' || host === '0.0.0.0') {
    return `the server's ANTHROPIC_BASE_URL (${url.origin}) is this machine's loopback, which the gateway container cannot reach`;
  }
  return undefined;
}

/**
 * The credential the gateway adds, in claude's own order: ANTHROPIC_API_KEY (x-api-key), then
 * ANTHROPIC_AUTH_TOKEN and CLAUDE_CODE_OAUTH_TOKEN (Authorization: Bearer).
 */
export function gatewayCredential(env: NodeJS.ProcessEnv): GatewayConfig['credential'] | undefined {
  const name = serverCredentialName(env);
  if (name === undefined) return undefined;
  const value = env[name]!;
  return name === 'ANTHROPIC_API_KEY' ? { header: 'x-api-key', value } : { header: 'authorization', value: `Bearer ${value}` };
}
