/**
 * Session and gateway volumes whose config scope no longer exists: the agents.yaml they were created for is
 * gone, or no longer has that agent at that directory. Deciding is pure (`judgeVolumes`); listing and removing
 * talk to the engine.
 */
import Docker from 'dockerode';
import { LABEL_PREFIX } from '../policy/layout.js';
import { bounded, dockerOptions, engineUnreachable } from './engine-calls.js';
import { removeScopeVolumes, type VolumeRemoval } from './volumes.js';

/** Set by the policy compiler on every volume: the config directory that, with the agent directory, makes the scope. */
export const CONFIG_DIR_LABEL = `${LABEL_PREFIX}.config-dir`;
const AGENT_LABEL = `${LABEL_PREFIX}.agent`;
const SCOPE_LABEL = `${LABEL_PREFIX}.scope`;
const CALL_MS = 10_000;

export interface AgentVolume {
  name: string;
  agent: string;
  scope: string;
  /** Absent on volumes created before the config directory was recorded. */
  configDir?: string;
}

/** What a config directory says about the volumes made for it. */
export type ConfigScopes =
  | { kind: 'gone'; reason: string }
  /** It cannot be read or one of its configs is broken: nothing made for it is judged orphaned. */
  | { kind: 'unknown'; reason: string }
  /** The `scopeKey`s of every agent its configs define, and the config files read. */
  | { kind: 'live'; scopes: Set<string>; files: string[] };

export type VolumeVerdict = { volume: AgentVolume; verdict: 'live' } | { volume: AgentVolume; verdict: 'orphaned' | 'unknown'; reason: string };

export function scopeKey(agent: string, scope: string): string {
  return `${agent}\0${scope}`;
}

export function volumeKind(name: string): 'session' | 'gateway' | 'volume' {
  return name.startsWith(`${LABEL_PREFIX}-claude.`) ? 'session' : name.startsWith(`${LABEL_PREFIX}-gateway.`) ? 'gateway' : 'volume';
}

/**
 * Which volumes are orphaned. Only a volume whose recorded config directory is provably gone, or whose
 * readable configs there no longer define its agent at its scope, is orphaned. A volume without a recorded
 * directory is judged against the current config only: live if it is one of its agents, else unknown (it
 * may belong to another installation), never orphaned.
 */
export function judgeVolumes(volumes: AgentVolume[], scopesOf: (configDir: string) => ConfigScopes, currentConfigDir: string): VolumeVerdict[] {
  const cache = new Map<string, ConfigScopes>();
  const lookup = (dir: string) => cache.get(dir) ?? cache.set(dir, scopesOf(dir)).get(dir)!;
  return volumes.map((volume): VolumeVerdict => {
    const key = scopeKey(volume.agent, volume.scope);
    if (volume.configDir === undefined) {
      const current = lookup(currentConfigDir);
      if (current.kind === 'live' && current.scopes.has(key)) return { volume, verdict: 'live' };
      return { volume, verdict: 'unknown', reason: `made before agent-dispatch recorded its config directory, and not an agent of the config in ${currentConfigDir}` };
    }
    const scopes = lookup(volume.configDir);
    if (scopes.kind !== 'live') return { volume, verdict: scopes.kind === 'gone' ? 'orphaned' : 'unknown', reason: scopes.reason };
    if (scopes.scopes.has(key)) return { volume, verdict: 'live' };
    const where = scopes.files.length === 1 ? scopes.files[0]! : `the configs in ${volume.configDir}`;
    return { volume, verdict: 'orphaned', reason: `agent '${volume.agent}' is no longer in ${where} (removed, or moved to another directory)` };
  });
}

/** Every volume labelled with an agent and a scope, narrowed to those carrying `onlyLabels` (AGENT_DISPATCH_CONTAINER_LABELS). */
export async function listAgentVolumes(onlyLabels: Record<string, string> = {}, env: NodeJS.ProcessEnv = process.env): Promise<AgentVolume[]> {
  const docker = new Docker(dockerOptions(env));
  const label = [AGENT_LABEL, SCOPE_LABEL, ...Object.entries(onlyLabels).map(([k, v]) => `${k}=${v}`)];
  let listed: Docker.VolumeInspectInfo[];
  try {
    listed = (await bounded(docker.listVolumes({ filters: JSON.stringify({ label }) }), CALL_MS, 'list volumes')).Volumes ?? [];
  } catch (error) {
    throw engineUnreachable(error);
  }
  return listed
    .map((v) => {
      const labels = v.Labels ?? {};
      const configDir = labels[CONFIG_DIR_LABEL];
      return { name: v.Name, agent: labels[AGENT_LABEL] ?? '', scope: labels[SCOPE_LABEL] ?? '', ...(configDir ? { configDir } : {}) };
    })
    .filter((v) => v.agent !== '' && v.scope !== '')
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Remove the given volumes (each scope's egress gateways first, which would hold the socket volume); never throws. */
export async function removeAgentVolumeSet(volumes: AgentVolume[], env: NodeJS.ProcessEnv = process.env): Promise<VolumeRemoval> {
  const docker = new Docker(dockerOptions(env));
  const byScope = new Map<string, AgentVolume[]>();
  for (const v of volumes) byScope.set(scopeKey(v.agent, v.scope), [...(byScope.get(scopeKey(v.agent, v.scope)) ?? []), v]);
  const total: VolumeRemoval = { removed: [], kept: [] };
  for (const group of byScope.values()) {
    const { agent, scope } = group[0]!;
    const result = await removeScopeVolumes(docker, agent, scope, group.map((v) => v.name));
    total.removed.push(...result.removed);
    total.kept.push(...result.kept);
    if (result.unreachable) {
      total.unreachable = result.unreachable;
      break;
    }
  }
  return total;
}
