import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AppError } from '../errors.js';
import { positionalRange, synopsis, type CommandSpec } from './spec.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** The spec's option table as util.parseArgs takes it (the help-only fields dropped). */
function parserOptions(spec: CommandSpec): Options {
  const options: Options = {};
  for (const [name, { type, short, multiple, default: value }] of Object.entries(spec.options)) {
    options[name] = { type, ...(short !== undefined ? { short } : {}), ...(multiple !== undefined ? { multiple } : {}), ...(value !== undefined ? { default: value } : {}) };
  }
  return options;
}

/** util.parseArgs over the command's spec, with usage errors that name the command; `--` ends options (e.g. `group add -- -bad`). */
export function parse(spec: CommandSpec, argv: string[]): Parsed {
  const options = parserOptions(spec);
  let parsed: Parsed;
  try {
    parsed = parseArgs({ args: joinNegativeValues(argv, options), options, allowPositionals: true, strict: true }) as Parsed;
  } catch (error) {
    throw new UsageError(`${spec.name}: ${(error as Error).message}. Run 'agent-dispatch ${spec.name} --help'.`);
  }
  const count = parsed.positionals.length;
  const { min, max } = positionalRange(spec);
  if (count < min || count > max) throw new UsageError(`usage: ${synopsis(spec)}`);
  return parsed;
}

/**
 * `--timeout -5`: util.parseArgs refuses a value that starts with '-' as ambiguous, but a negative number is
 * a value (the original accepted it and answered with the range message), so it becomes `--timeout=-5`.
 */
function joinNegativeValues(argv: string[], options: Options): string[] {
  const joined: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      joined.push(...argv.slice(i));
      break;
    }
    const next = argv[i + 1];
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\.?\d/.test(next)) {
      joined.push(`${arg}=${next}`);
      i++;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}

export function str(parsed: Parsed, key: string): string | undefined {
  const v = parsed.values[key];
  return typeof v === 'string' ? v : undefined;
}

export function list(parsed: Parsed, key: string): string[] {
  const v = parsed.values[key];
  return Array.isArray(v) ? v : [];
}

export function int(parsed: Parsed, key: string, flag = `--${key}`): number | undefined {
  const v = str(parsed, key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new UsageError(`${flag} must be a whole number (got '${v}')`);
  return n;
}

export function num(parsed: Parsed, key: string, flag = `--${key}`): number | undefined {
  const v = str(parsed, key);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`${flag} must be a number (got '${v}')`);
  return n;
}

export function fail(message: string): never {
  throw new AppError('INVALID_INPUT', message);
}
