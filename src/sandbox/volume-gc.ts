/**
 * Session and gateway volumes whose config scope no longer exists: the agents.yaml they were created for is
 * gone, or no longer has that agent at that directory. Deciding is pure (`judgeVolumes`); listing and removing
 * talk to the engine.
 */
import Docker from 'dockerode';
import type { EngineSpec } from '../config/engine-spec.js';
import { describeError } from '../errors.js';
import { CONFIG_DIR_LABEL, LABEL_PREFIX } from '../policy/layout.js';
import { bounded, engineUnreachable } from './engine-calls.js';
import { engineDockerOptions } from './engine-options.js';
import { SETTINGS_ROLE } from './engine-settings.js';
import { removeNamedVolumes, removeScopeVolumes, type VolumeRemoval } from './volumes.js';

/** Set by the policy compiler on every volume: the config directory that, with the agent directory, makes the scope. */
export { CONFIG_DIR_LABEL };
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

/** What gc finds on one engine: agent volumes to judge, and managed-settings volumes no container uses. */
export interface EngineVolumes {
  agent: AgentVolume[];
  /** Names of managed-settings volumes (src/sandbox/engine-settings.ts) that no container, in any state, mounts. */
  unusedSettings: string[];
}

/**
 * The volumes on one engine (undefined: the environment's), narrowed to those carrying `onlyLabels`
 * (AGENT_DISPATCH_CONTAINER_LABELS): every volume labelled with an agent and a scope, and the unused
 * managed-settings volumes. An unused settings volume is safe to remove at any time: the runner checks, once
 * its container is created (which pins the volume), that the volume is still the filled one, and fills it again
 * otherwise (SettingsVolumes.held).
 */
export async function listEngineVolumes(onlyLabels: Record<string, string> = {}, env: NodeJS.ProcessEnv = process.env, engine?: EngineSpec, ms = CALL_MS): Promise<EngineVolumes> {
  // The request timeout closes the connection of an engine that does not answer: it must not keep the CLI alive.
  const docker = new Docker({ ...engineDockerOptions(engine, env), timeout: ms });
  const only = Object.entries(onlyLabels).map(([k, v]) => `${k}=${v}`);
  let listed: Docker.VolumeInspectInfo[];
  let settings: Docker.VolumeInspectInfo[];
  try {
    [listed, settings] = await Promise.all([
      bounded(docker.listVolumes({ filters: JSON.stringify({ label: [AGENT_LABEL, SCOPE_LABEL, ...only] }) }), ms, 'list volumes'),
      bounded(docker.listVolumes({ filters: JSON.stringify({ label: [SETTINGS_ROLE, ...only], dangling: ['true'] }) }), ms, 'list the managed-settings volumes'),
    ]).then((answers) => answers.map((a) => a.Volumes ?? []));
  } catch (error) {
    throw engineUnreachable(error);
  }
  const agent = listed
    .map((v) => {
      const labels = v.Labels ?? {};
      const configDir = labels[CONFIG_DIR_LABEL];
      return { name: v.Name, agent: labels[AGENT_LABEL] ?? '', scope: labels[SCOPE_LABEL] ?? '', ...(configDir ? { configDir } : {}) };
    })
    .filter((v) => v.agent !== '' && v.scope !== '')
    .sort((a, b) => a.name.localeCompare(b.name));
  return { agent, unusedSettings: settings.map((v) => v.Name).sort() };
}

/**
 * Remove the given volumes on one engine (each scope's egress gateways first, which would hold the socket
 * volume), then the given managed-settings volumes (one a container mounted meanwhile is kept: the engine
 * refuses it); never throws.
 */
export async function removeEngineVolumes(volumes: AgentVolume[], settings: string[], env: NodeJS.ProcessEnv = process.env, engine?: EngineSpec): Promise<VolumeRemoval> {
  const total: VolumeRemoval = { removed: [], kept: [] };
  let docker: Docker;
  try {
    docker = new Docker({ ...engineDockerOptions(engine, env), timeout: CALL_MS });
  } catch (error) {
    return { ...total, unreachable: describeError(error) };
  }
  const byScope = new Map<string, AgentVolume[]>();
  for (const v of volumes) byScope.set(scopeKey(v.agent, v.scope), [...(byScope.get(scopeKey(v.agent, v.scope)) ?? []), v]);
  for (const group of byScope.values()) {
    const { agent, scope } = group[0]!;
    const result = await removeScopeVolumes(docker, agent, scope, group.map((v) => v.name));
    total.removed.push(...result.removed);
    total.kept.push(...result.kept);
    if (result.unreachable) return { ...total, unreachable: result.unreachable };
  }
  const result = await removeNamedVolumes(docker, settings);
  return { removed: [...total.removed, ...result.removed], kept: [...total.kept, ...result.kept] };
}
