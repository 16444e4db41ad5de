import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { AppError, describeError } from '../errors.js';
import { logger } from '../log.js';

const log = logger('sandbox');
/** How long a removal may take before the container is left to the reaper of the next server start. */
const REMOVE_MS = 15_000;

/** Reject with a clear error when the engine does not answer a call in time (a hung engine must not hang us). */
export function bounded<T>(promise: Promise<T>, ms: number, step: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new AppError('SANDBOX_FAILED', `The Docker engine did not answer within ${Math.ceil(ms / 1000)} s while trying to ${step}.`, {
            hint: 'Check the engine (docker info); agent-dispatch doctor shows its state.',
          }),
        ),
      ms,
    );
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The engine did not answer at all: the one message and hint for every place that talks to it. */
export function engineUnreachable(error: unknown, detail: string = describeError(error)): AppError {
  return new AppError('DOCKER_UNAVAILABLE', `Docker engine not reachable (${detail}).`, {
    hint: 'Start the Docker engine (or set DOCKER_HOST to it), then retry. agent-dispatch never runs a dispatch outside a container.',
    cause: error,
  });
}

/**
 * Force-remove a container and return once it is gone; never throws and never waits longer than REMOVE_MS.
 * A removal already in progress (409: the engine's AutoRemove, or shutdown racing a dispatch's own cleanup) is
 * waited for, so no caller counts a container that is about to vanish.
 */
export async function removeQuietly(container: Docker.Container): Promise<void> {
  const started = Date.now();
  try {
    await bounded(container.remove({ force: true, v: true }), REMOVE_MS, 'remove the container');
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    if (status === 404) return;
    if (status === 409) {
      await bounded(container.wait({ condition: 'removed' }) as Promise<unknown>, Math.max(1000, REMOVE_MS - (Date.now() - started)), 'wait for the container removal').catch(() => undefined);
      return;
    }
    log.warn(`could not remove container ${container.id.slice(0, 12)} (the next server start reaps it): ${describeError(error)}`);
  }
}

/**
 * Connection options from the environment's DOCKER_HOST (unix:// or tcp://) and, for tcp, DOCKER_TLS_VERIFY /
 * DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem), as the docker CLI reads them. Default: the local socket.
 */
export function dockerOptions(env: NodeJS.ProcessEnv): Docker.DockerOptions {
  const host = env['DOCKER_HOST'];
  if (!host) return { socketPath: '/var/run/docker.sock' };
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  if (!host.startsWith('tcp://')) return {};
  const url = new URL(host.replace(/^tcp:/, 'http:'));
  const certPath = env['DOCKER_CERT_PATH'];
  const tls = (env['DOCKER_TLS_VERIFY'] ?? '') !== '' || certPath !== undefined;
  if (!tls) return { host: url.hostname, port: Number(url.port || 2375) };
  const dir = certPath ?? join(env['HOME'] ?? '', '.docker');
  const read = (name: string) => readFileSync(join(dir, name));
  return { protocol: 'https', host: url.hostname, port: Number(url.port || 2376), ca: read('ca.pem'), cert: read('cert.pem'), key: read('key.pem') };
}
