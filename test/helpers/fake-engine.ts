import { afterEach, beforeEach, vi } from 'vitest';
import { AppError } from '../../src/errors.js';
import { GATEWAY_PROTOCOL } from '../../src/gateway/protocol.js';
import type { Engine } from '../../src/sandbox/engine.js';
import { GATEWAY_PROTOCOL_LABEL } from '../../src/sandbox/gateway-image.js';
import { setupEnv, type Env } from '../unit/cli-harness.js';

export interface FakeEngineOptions {
  /** The engine does not answer: info() throws as a down engine does. */
  down?: boolean;
  /** The error message of a down engine. */
  downMessage?: string;
  /** Images present (default: the agent and gateway images). */
  images?: string[];
  version?: string;
  apiVersion?: string;
}

/**
 * Test double for Docker availability only (doctor): `info()` answers or throws as a down engine does, and
 * `imageExists()` says which images are present; `asked` records every image looked up.
 */
export function fakeEngine(options: FakeEngineOptions = {}): Engine & { asked: string[] } {
  const asked: string[] = [];
  const images = options.images ?? ['agent-dispatch/agent:latest', 'agent-dispatch/gateway:latest'];
  return {
    asked,
    async info() {
      if (options.down) throw new AppError('DOCKER_UNAVAILABLE', options.downMessage ?? 'Docker engine not reachable: connect ENOENT /var/run/docker.sock');
      return { version: options.version ?? '27.0.0', apiVersion: options.apiVersion ?? '1.46' };
    },
    async imageExists(image) {
      asked.push(image);
      return images.includes(image);
    },
    async imageLabels(image) {
      const labels: Record<string, string> = image.includes('gateway') ? { [GATEWAY_PROTOCOL_LABEL]: String(GATEWAY_PROTOCOL) } : {};
      return (await this.imageExists(image)) ? labels : undefined;
    },
  };
}

/**
 * A fresh CLI environment for each doctor test (the returned function gives the current one), with the
 * credential the gateway check looks for (a shell without one gets a warning).
 */
export function doctorEnvEach(): () => Env {
  let env: Env;
  beforeEach(() => {
    env = setupEnv();
    vi.stubEnv('ANTHROPIC_API_KEY', 'sk-doctor-test');
  });
  afterEach(() => {
    env.cleanup();
    vi.unstubAllEnvs();
  });
  return () => env;
}
