import Docker from 'dockerode';
import { AppError, describeError } from '../errors.js';
import { engineUnreachable } from './engine-calls.js';
import { LABELS } from './owner.js';

/** The one place that talks to the Docker engine (dockerode never escapes src/sandbox). */
export interface EngineInfo {
  version: string;
  apiVersion: string;
}

export interface Engine {
  info(): Promise<EngineInfo>;
  imageExists(image: string): Promise<boolean>;
  /** The image's labels, or undefined when it is not present. */
  imageLabels(image: string): Promise<Record<string, string> | undefined>;
  /** Pre-started (warm pool) sandbox containers on the engine, idle or serving, per agent. */
  warmSandboxes?(): Promise<Map<string, number>>;
}

export function createEngine(options: Docker.DockerOptions = {}): Engine {
  const docker = new Docker(options);
  const imageLabels = async (image: string): Promise<Record<string, string> | undefined> => {
    try {
      return (await docker.getImage(image).inspect()).Config?.Labels ?? {};
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return undefined;
      throw new AppError('DOCKER_UNAVAILABLE', `Could not inspect image ${image}: ${describeError(error)}`, { cause: error });
    }
  };
  return {
    async info() {
      try {
        const v = await docker.version();
        return { version: v.Version, apiVersion: v.ApiVersion };
      } catch (error) {
        throw engineUnreachable(error);
      }
    },
    imageLabels,
    async warmSandboxes() {
      const counts = new Map<string, number>();
      for (const c of await docker.listContainers({ filters: JSON.stringify({ label: [LABELS.warm] }) })) {
        const agent = c.Labels?.[LABELS.agent] ?? '?';
        counts.set(agent, (counts.get(agent) ?? 0) + 1);
      }
      return counts;
    },
    async imageExists(image) {
      return (await imageLabels(image)) !== undefined;
    },
  };
}
