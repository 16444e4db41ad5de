import Docker from 'dockerode';
import { describeError } from '../errors.js';
import { LABEL_PREFIX } from '../policy/layout.js';
import type { EngineSpec } from '../config/engine-spec.js';
import { bounded } from './engine-calls.js';
import { engineDockerOptions } from './engine-options.js';
import { LABELS } from './owner.js';

export interface VolumeRemoval {
  removed: string[];
  /** Volumes that stayed (in use by a running dispatch, or the engine refused), with why. */
  kept: { name: string; reason: string }[];
  /** The engine could not be asked at all. */
  unreachable?: string;
}

const CALL_MS = 10_000;

/** The label filter that selects one agent's volumes in one scope (config dir + agent dir). */
export function agentVolumeFilter(agent: string, scope: string): string[] {
  return [`${LABEL_PREFIX}.agent=${agent}`, `${LABEL_PREFIX}.scope=${scope}`];
}

/**
 * Remove an agent's session and gateway volumes in one scope, on the agent's engine (absent: the environment's);
 * never throws. The agent's egress gateways (any server's) go first: a removed agent has no more dispatches, and
 * a gateway would keep its socket volume in use.
 */
export async function removeAgentVolumes(agent: string, scope: string, env: NodeJS.ProcessEnv = process.env, engine?: EngineSpec): Promise<VolumeRemoval> {
  let names: string[];
  let docker: Docker;
  try {
    docker = new Docker(engineDockerOptions(engine, env));
    const { Volumes } = await bounded(docker.listVolumes({ filters: JSON.stringify({ label: agentVolumeFilter(agent, scope) }) }), CALL_MS, 'list volumes');
    names = (Volumes ?? []).map((v) => v.Name);
  } catch (error) {
    return { removed: [], kept: [], unreachable: describeError(error) };
  }
  return removeScopeVolumes(docker, agent, scope, names);
}

/** Remove the named volumes of one agent scope, the scope's egress gateways and pre-started sandboxes first; never throws. */
export async function removeScopeVolumes(docker: Docker, agent: string, scope: string, names: string[]): Promise<VolumeRemoval> {
  try {
    await removeGateways(docker, agent, scope);
  } catch (error) {
    return { removed: [], kept: [], unreachable: describeError(error) };
  }
  return removeNamedVolumes(docker, names);
}

/** Remove volumes by name; one already gone is skipped, one the engine refuses (in use) is kept with why; never throws. */
export async function removeNamedVolumes(docker: Docker, names: string[]): Promise<VolumeRemoval> {
  const result: VolumeRemoval = { removed: [], kept: [] };
  for (const name of names) {
    try {
      await bounded(docker.getVolume(name).remove(), CALL_MS, `remove the volume ${name}`);
      result.removed.push(name);
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) continue;
      result.kept.push({ name, reason: describeError(error) });
    }
  }
  return result;
}

async function removeGateways(docker: Docker, agent: string, scope: string): Promise<void> {
  const filters = JSON.stringify({ label: [...agentVolumeFilter(agent, scope), `${LABEL_PREFIX}.role=gateway`] });
  const gateways = await bounded(docker.listContainers({ all: true, filters }), CALL_MS, 'list the agent\'s gateways');
  // Its pre-started sandboxes (a serving server's warm pool) hold the session volume too.
  const warm = JSON.stringify({ label: [...agentVolumeFilter(agent, scope), LABELS.warm] });
  gateways.push(...(await bounded(docker.listContainers({ all: true, filters: warm }), CALL_MS, 'list the agent\'s pre-started sandboxes')));
  for (const gateway of gateways) {
    await bounded(docker.getContainer(gateway.Id).remove({ force: true }), CALL_MS, 'remove the agent\'s gateway').catch(() => undefined);
  }
}
