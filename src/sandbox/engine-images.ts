import Docker from 'dockerode';
import type { EngineSpec } from '../config/engine-spec.js';
import { AppError, describeError } from '../errors.js';
import { bounded, engineUnreachable } from './engine-calls.js';
import { engineDockerOptions } from './engine-options.js';

export interface ImageCopy {
  image: string;
  id: string;
  /** copied: sent to the target engine; present: the target already had this very image (same id). */
  status: 'copied' | 'present';
  bytes: number;
  ms: number;
}

/** Long enough for a few hundred MB over a slow link; a hung engine still ends the copy. */
const COPY_MS = 15 * 60_000;
const INSPECT_MS = 15_000;

async function imageId(docker: Docker, image: string, where: string): Promise<string | undefined> {
  try {
    return (await bounded(docker.getImage(image).inspect(), INSPECT_MS, `inspect ${image} on ${where}`)).Id;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    if ((error as { code?: string }).code) throw engineUnreachable(error, `${where}: ${describeError(error)}`);
    throw error;
  }
}

/**
 * Copy an image from one engine to another: the source's `docker save` stream loaded into the target (`docker
 * load`). A copy of what this machine has, never a pull: a remote engine gets exactly the image the local one
 * runs. An image the target already holds under the same id is left alone.
 */
export async function copyImage(from: Docker, to: Docker, image: string, names: { from: string; to: string }): Promise<ImageCopy> {
  const started = Date.now();
  const id = await imageId(from, image, names.from);
  if (!id) {
    throw new AppError('IMAGE_NOT_FOUND', `${image} is not on ${names.from}, so it cannot be copied (agent-dispatch never pulls images).`, {
      hint: 'Build it there first: agent-dispatch image build (or tag an image you have with this name).',
    });
  }
  if ((await imageId(to, image, names.to)) === id) return { image, id, status: 'present', bytes: 0, ms: Date.now() - started };
  let bytes = 0;
  const copy = async (): Promise<void> => {
    const saved = (await from.getImage(image).get()) as NodeJS.ReadableStream;
    saved.on('data', (chunk: Buffer) => (bytes += chunk.length));
    const loaded = (await to.loadImage(saved, { quiet: true })) as NodeJS.ReadableStream;
    await new Promise<void>((resolve, reject) => {
      to.modem.followProgress(
        loaded,
        (error: Error | null) => (error ? reject(error) : resolve()),
        (event: { error?: string; errorDetail?: { message?: string } }) => {
          if (event.error) reject(new Error(event.errorDetail?.message ?? event.error));
        },
      );
    });
  };
  try {
    await bounded(copy(), COPY_MS, `copy ${image} to ${names.to}`);
  } catch (error) {
    throw new AppError('IMAGE_BUILD_FAILED', `Could not copy ${image} from ${names.from} to ${names.to}: ${describeError(error)}`, {
      hint: 'Check that both engines answer (agent-dispatch doctor) and that the target has room for the image, then retry.',
      cause: error,
    });
  }
  const copied = await imageId(to, image, names.to);
  if (copied !== id) throw new AppError('IMAGE_BUILD_FAILED', `${image} on ${names.to} is ${copied ?? 'missing'} after the copy, not ${id}.`, { hint: 'Retry the copy.' });
  return { image, id, status: 'copied', bytes, ms: Date.now() - started };
}

/** Copy images from the environment's engine (DOCKER_HOST, else the local socket) to a configured engine. */
export async function copyImagesToEngine(spec: EngineSpec, images: string[], env: NodeJS.ProcessEnv, target: string, onCopied?: (copy: ImageCopy) => void): Promise<ImageCopy[]> {
  const from = new Docker(engineDockerOptions(undefined, env));
  const to = new Docker(engineDockerOptions(spec, env));
  const copies: ImageCopy[] = [];
  for (const image of images) {
    const copy = await copyImage(from, to, image, { from: "this machine's engine", to: target });
    onCopied?.(copy);
    copies.push(copy);
  }
  return copies;
}
