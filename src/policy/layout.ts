import { createHash } from 'node:crypto';

/** Fixed facts about the agent container the images and the compiler agree on. */
export const CONTAINER_UID = 1000;
export const CONTAINER_GID = 1000;
export const CONTAINER_HOME = '/home/agent';
export const CLAUDE_CONFIG_DIR = `${CONTAINER_HOME}/.claude`;
/**
 * Only the transcripts persist (the per-agent volume is mounted here); the rest of CLAUDE_CONFIG_DIR is a fresh
 * tmpfs per dispatch, so nothing an agent writes there (settings.json, .claude.json, hooks) reaches the next one.
 */
export const CLAUDE_SESSIONS_DIR = `${CLAUDE_CONFIG_DIR}/projects`;
export const CONTAINER_PATH = '/usr/local/bin:/usr/bin:/bin';
export const MANAGED_SETTINGS_FILE = 'managed-settings.json';
export const MANAGED_SETTINGS_PATH = `/etc/claude-code/${MANAGED_SETTINGS_FILE}`;
/** Where the gateway's Unix socket appears inside the agent container (a volume shared with the gateway). */
export { GATEWAY_SOCKET_DIR } from '../gateway/protocol.js';
/** The in-container TCP→socket bridge that HTTPS_PROXY and ANTHROPIC_BASE_URL point at. */
export const GATEWAY_BRIDGE_PORT = 3128;
/** What the container sees instead of the Anthropic credential when the gateway injects it. */
export const CREDENTIAL_PLACEHOLDER = 'agent-dispatch-placeholder-credential';
export const LABEL_PREFIX = 'agent-dispatch';
/** What an engine object is for (gateway, settings); dispatch containers and session volumes have none. */
export const ROLE_LABEL = `${LABEL_PREFIX}.role`;
/** The config directory a volume belongs to: `gc` tells by it when that config is gone. */
export const CONFIG_DIR_LABEL = `${LABEL_PREFIX}.config-dir`;

/**
 * Which installation an agent's volumes belong to: 12 hex digits of sha256 over the config directory and the
 * agent directory. Two configs (two users, or one user's two installations) with an agent of the same name,
 * or an agent re-added for another repo, never share a session volume: they could otherwise read each
 * other's transcripts and leave files for each other. Without a config directory only the agent directory counts.
 */
export function volumeScope(configDir: string | undefined, agentDirectory: string): string {
  return createHash('sha256').update(`${configDir ?? ''}\0${agentDirectory}`).digest('hex').slice(0, 12);
}

/**
 * `agent-dispatch-claude.<agent>.<scope>`, and `.uid<uid>` for a container uid other than 1000 (a volume
 * prepared for one uid is not writable by another). `.` separates the parts: agent names cannot contain it,
 * so no agent's name can imitate another's scope or uid suffix.
 */
export function claudeStateVolume(agent: string, scope: string, uid: number = CONTAINER_UID): string {
  const base = `agent-dispatch-claude.${agent}.${scope}`;
  return uid === CONTAINER_UID ? base : `${base}.uid${uid}`;
}

export function gatewayVolume(agent: string, scope: string): string {
  return `agent-dispatch-gateway.${agent}.${scope}`;
}
