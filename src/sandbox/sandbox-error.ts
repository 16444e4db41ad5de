import { AppError, describeError, isAppError } from '../errors.js';
import { engineUnreachable } from './engine-calls.js';
import { imageBuildHint } from './image.js';

const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ETIMEDOUT', 'EHOSTUNREACH', 'ECONNRESET', 'EPIPE']);

/** Turn a dockerode failure during `step` into the typed error a user can act on. */
export function sandboxError(error: unknown, step: string, image: string): AppError {
  if (isAppError(error)) return error;
  const code = (error as { code?: string }).code;
  const status = (error as { statusCode?: number }).statusCode;
  const detail = describeError(error);
  if (code && UNREACHABLE.has(code)) return engineUnreachable(error, `${code} while trying to ${step}`);
  if (status === 404 && /image/i.test(detail)) return imageMissing(image, error);
  return new AppError('SANDBOX_FAILED', `Could not ${step}: ${detail.trim().slice(0, 500)}`, {
    hint: 'Run agent-dispatch doctor to check the engine, the image and the policy; the policy may ask for a mount or limit this engine refuses.',
    cause: error,
  });
}

export function imageMissing(image: string, cause?: unknown): AppError {
  return new AppError('IMAGE_NOT_FOUND', `The sandbox image ${image} is not on this machine (agent-dispatch never pulls images).`, {
    hint: `${imageBuildHint(image)}.`,
    cause,
  });
}
