import { expect } from 'vitest';
import { AppError } from '../../src/errors.js';

/** The AppError `run` throws (or its promise rejects with); the test fails when it returns or throws anything else. */
export async function appErrorOf(run: () => unknown): Promise<AppError> {
  try {
    await run();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected an AppError, but nothing was thrown');
}
