/** Small, total helpers for reading claude's untrusted output. None of them throws. */

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An own property only: a hostile payload cannot reach `Object.prototype` through a key we read. */
export function own(record: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Python truthiness, which the original's `x if x else ...` checks use: empty containers are false. */
export function pyTruthy(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  if (isRecord(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

/** Any JSON value as text: strings as is, scalars via String(), containers as JSON; never throws. */
export function toText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return '';
  }
}

/** The first `max` code points (Python's `s[:max]`), never splitting a surrogate pair. */
export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let out = '';
  let count = 0;
  for (const ch of text) {
    if (count >= max) break;
    out += ch;
    count += 1;
  }
  return out;
}

/** Longest error text taken from stderr, stdout or a result payload. */
export const MAX_ERROR_CHARS = 4000;

/** `truncate` with a visible marker, for error text shown to a caller. */
export function capText(text: string, max = MAX_ERROR_CHARS): string {
  const cut = truncate(text, max);
  return cut.length === text.length ? text : `${cut} … [truncated]`;
}

/** A finite, non-negative number, or undefined (claude's numbers are untrusted too). */
export function finiteNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}

/** Python's `format(x, 'g')`: six significant digits, trailing zeros dropped, exponent outside 1e-4 ≤ |x| < 1e6. */
export function formatG(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return '0';
  const [mantissa = '0', exp = '0'] = value.toExponential(5).split('e');
  const exponent = Number(exp);
  if (exponent < -4 || exponent >= 6) {
    const digits = stripZeros(mantissa);
    const sign = exponent < 0 ? '-' : '+';
    return `${digits}e${sign}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  return stripZeros(value.toFixed(5 - exponent));
}

function stripZeros(fixed: string): string {
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed;
}

/** Parses one output line to a JSON object, or undefined (blank, non-JSON, or not an object). */
export function parseJsonObject(line: unknown): Record<string, unknown> | undefined {
  if (typeof line !== 'string') return undefined;
  const text = line.trim();
  if (!text.startsWith('{')) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return isRecord(value) ? value : undefined;
  } catch {
    return undefined;
  }
}
