/**
 * The wire between the server (src/sandbox/gateway-pool.ts) and the gateway program (main.ts) running in its
 * own container: JSON lines on the container's stdin (commands) and stdout (events).
 *
 * The first stdin line is the GatewayConfig; it carries the credential, which is why it travels on stdin and
 * never in the container's environment or command (both visible to `docker inspect`). When stdin closes (the
 * server went away) the gateway exits. Nothing the gateway writes to stdout ever contains the credential.
 *
 * src/gateway/ runs inside the gateway image without node_modules: it imports node builtins and its own files only.
 */

export const GATEWAY_PROTOCOL = 2;

/** Where the gateway listens inside its container (the socket volume is mounted here in both containers). */
export const GATEWAY_SOCKET_DIR = '/run/agent-dispatch';

/** A destination pattern from `network.allow`, parsed. */
export interface AllowRule {
  /** Exact host or IP literal, `*.suffix`, or `*` for any host (lower case). */
  host: string;
  /** A port, or `*` for any. A pattern without a port means 443. */
  port: number | '*';
}

export interface GatewayCredential {
  /** `x-api-key` (ANTHROPIC_API_KEY) or `authorization` (`Bearer <token>`: CLAUDE_CODE_OAUTH_TOKEN / ANTHROPIC_AUTH_TOKEN). */
  header: 'x-api-key' | 'authorization';
  value: string;
}

export interface GatewayConfig {
  protocol: typeof GATEWAY_PROTOCOL;
  /** Absolute path of the Unix socket to listen on (under GATEWAY_SOCKET_DIR); chmod 0666 after listen. */
  socketPath: string;
  /** The Anthropic API base URL requests are forwarded to, e.g. https://api.anthropic.com or http://172.17.0.1:4010. */
  upstream: string;
  /** Added to every forwarded API request (any credential header the agent sent is dropped). Null: none added. */
  credential: GatewayCredential | null;
}

/** Server → gateway, one per line after the config. `id` is echoed in the answer. */
export type GatewayCommand =
  /** Accept connections that present `token`, and tunnel them only to `allow`. */
  | { op: 'register'; id: string; token: string; allow: AllowRule[] }
  /** Refuse the token from now on, close its connections, answer with its decisions (`decisions` parts, then `released`). */
  | { op: 'release'; id: string; token: string }
  /** Self-check through the gateway's own socket: an allowed destination works and a denied one is refused. */
  | { op: 'canary'; id: string }
  | { op: 'ping'; id: string };

/**
 * One egress decision. Hosts, ports and byte counts only: never headers, bodies or query strings. Every text
 * field is clipped (decisions.ts), so a decision is small whatever the agent sent.
 */
export interface EgressDecision {
  time: string;
  /** api: forwarded to the Anthropic API; connect: a CONNECT tunnel; http: a plain-HTTP proxy request. */
  kind: 'api' | 'connect' | 'http';
  host: string;
  port: number;
  allowed: boolean;
  /** Why it was refused (policy text), or why an allowed one failed (upstream error). */
  reason?: string;
  /** api/http: method and path without the query string. */
  method?: string;
  path?: string;
  /** api/http: the status returned to the agent. */
  status?: number;
  /** Bytes from the agent to the destination, and back (summed over `count`). */
  bytesOut: number;
  bytesIn: number;
  /** Identical refusals folded into this one (`time` is the first); absent means 1. */
  count?: number;
}

/** Gateway → server, one per line. */
export type GatewayEvent =
  | { event: 'ready'; protocol: typeof GATEWAY_PROTOCOL; socketPath: string }
  | { event: 'registered'; id: string }
  /**
   * A release answer comes in parts so that no line is large: zero or more `decisions` events, then `released`
   * with the last part. The server joins them.
   */
  | { event: 'decisions'; id: string; decisions: EgressDecision[] }
  | { event: 'released'; id: string; decisions: EgressDecision[] }
  | { event: 'canary'; id: string; ok: boolean; detail: string }
  | { event: 'pong'; id: string }
  /** A command failed (bad JSON, unknown token...); `id` when the command had one. */
  | { event: 'error'; id?: string; message: string }
  /** The gateway cannot go on (cannot listen, bad config) and exits. */
  | { event: 'fatal'; message: string };

/**
 * Inside the agent container, the bridge (bridge-script.ts) sends this line first on every connection to the
 * socket: `AGENT-DISPATCH-TOKEN <token>\n`. A connection without a registered token is refused.
 */
export const TOKEN_PREFIX = 'AGENT-DISPATCH-TOKEN ';

/** Environment of the agent container that the bridge reads (and removes before starting the agent). */
export const BRIDGE_ENV = {
  socket: 'AGENT_DISPATCH_GATEWAY_SOCKET',
  token: 'AGENT_DISPATCH_GATEWAY_TOKEN',
} as const;

/** Response header on every refusal, so tests and tools can tell a policy refusal from a network error. */
export const REFUSAL_HEADER = 'x-agent-dispatch-refusal';
