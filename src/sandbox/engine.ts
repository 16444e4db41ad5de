import Docker from 'dockerode';
import { AppError, describeError } from '../errors.js';
import { engineUnreachable } from './engine-calls.js';

/** The one place that talks to the Docker engine (dockerode never escapes src/sandbox). */
export interface EngineInfo {
  version: string;
  apiVersion: string;
}

export interface Engine {
  info(): Promise<EngineInfo>;
  imageExists(image: string): Promise<boolean>;
}

export function createEngine(options: Docker.DockerOptions = {}): Engine {
  const docker = new Docker(options);
  return {
    async info() {
      try {
        const v = await docker.version();
        return { version: v.Version, apiVersion: v.ApiVersion };
      } catch (error) {
        throw engineUnreachable(error);
      }
    },
    async imageExists(image) {
      try {
        await docker.getImage(image).inspect();
        return true;
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) return false;
        throw new AppError('DOCKER_UNAVAILABLE', `Could not inspect image ${image}: ${describeError(error)}`, { cause: error });
      }
    },
  };
}
