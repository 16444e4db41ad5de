/** Fixed facts about the agent container the images and the compiler agree on. */
export const CONTAINER_UID = 1000;
export const CONTAINER_GID = 1000;
export const CONTAINER_HOME = '/home/agent';
export const CLAUDE_CONFIG_DIR = `${CONTAINER_HOME}/.claude`;
export const CONTAINER_PATH = '/usr/local/bin:/usr/bin:/bin';
export const MANAGED_SETTINGS_PATH = '/etc/claude-code/managed-settings.json';
/** Where the gateway's Unix socket appears inside the agent container (a volume shared with the gateway). */
export const GATEWAY_SOCKET_DIR = '/run/agent-dispatch';
/** The in-container TCP→socket bridge that HTTPS_PROXY and ANTHROPIC_BASE_URL point at. */
export const GATEWAY_BRIDGE_PORT = 3128;
/** Overlay mode: the host repo, read-only, is mounted here and copied into a private tmpfs at the repo path. */
export const OVERLAY_LOWER_DIR = '/opt/agent-dispatch/lower';
/** What the container sees instead of the Anthropic credential when the gateway injects it. */
export const CREDENTIAL_PLACEHOLDER = 'agent-dispatch-placeholder-credential';
export const LABEL_PREFIX = 'agent-dispatch';

/** Per agent, and per container uid: a volume prepared for one uid is not writable by another. */
export function claudeStateVolume(agent: string, uid: number = CONTAINER_UID): string {
  return uid === CONTAINER_UID ? `agent-dispatch-claude-${agent}` : `agent-dispatch-claude-${agent}-uid${uid}`;
}

export function gatewayVolume(agent: string): string {
  return `agent-dispatch-gateway-${agent}`;
}
