import { AppError } from '../errors.js';
import { NAME_PATTERN, nameError } from '../config/schema.js';

export function validateName(name: string): void {
  if (!NAME_PATTERN.test(name)) throw new AppError('INVALID_INPUT', nameError(name));
}

/** Split on commas, trim, drop empties. */
export function parseCsv(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function isClearSentinel(value: string): boolean {
  const v = value.trim().toLowerCase();
  return v === 'none' || v === '';
}

export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
