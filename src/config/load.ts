import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { AppError, describeError } from '../errors.js';
import { configPath } from './paths.js';
import { formatIssues, PARSE_OPTIONS } from './issues.js';
import {
  agentSchema,
  cacheSettingsSchema,
  configSchema,
  emptyConfig,
  groupMemberSchema,
  groupSchema,
  settingsSchema,
  type DispatchConfig,
} from './schema.js';

export type ConfigProblem = 'schema' | 'yaml' | 'encoding' | 'unreadable';

/** Loading never falls back to defaults on a broken file: only `ok` and `missing` are usable. */
export type ConfigLoad =
  | { kind: 'ok'; path: string; config: DispatchConfig }
  | { kind: 'missing'; path: string; config: DispatchConfig }
  | { kind: 'invalid'; path: string; problem: ConfigProblem; detail: string };

const PROBLEM_TEXT: Record<ConfigProblem, string> = {
  schema: 'has an invalid schema',
  yaml: 'is not valid YAML',
  encoding: 'is not valid UTF-8 (re-save it as UTF-8)',
  unreadable: 'could not be read',
};

const FIX_TEXT: Record<ConfigProblem, string> = {
  schema: 'Fix the named key in the file, then retry',
  yaml: 'Fix the YAML syntax at the named line, then retry',
  encoding: 'Re-save the file as UTF-8, then retry',
  unreadable: 'Check that the file and its directory are readable by you, then retry',
};

export function loadConfig(path: string = configPath()): ConfigLoad {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing', path, config: emptyConfig() };
    return { kind: 'invalid', path, problem: 'unreadable', detail: describeError(error) };
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { kind: 'invalid', path, problem: 'encoding', detail: firstBadByte(bytes) };
  }
  const parsed = parseYaml(text);
  if (!parsed.ok) return { kind: 'invalid', path, problem: 'yaml', detail: parsed.detail };
  const result = configSchema.safeParse(parsed.value ?? {}, PARSE_OPTIONS);
  if (!result.success) {
    return { kind: 'invalid', path, problem: 'schema', detail: formatIssues(result.error.issues, knownKeysAt) };
  }
  return { kind: 'ok', path, config: result.data };
}

/** One line naming the file, what is wrong and the fix. */
export function describeConfigProblem(load: Extract<ConfigLoad, { kind: 'invalid' }>): string {
  return `Config at ${load.path} ${PROBLEM_TEXT[load.problem]}: ${sentence(load.detail)} ${FIX_TEXT[load.problem]}.`;
}

/** End a detail as a sentence without doubling its punctuation ('…allowed_tools'?' stays as is). */
export function sentence(detail: string): string {
  const trimmed = detail.trim().replace(/[:,;]+$/, '');
  return /[.?!]$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

/** The config, or an AppError whose message is the one-line description. */
export function requireConfig(load: ConfigLoad): DispatchConfig {
  if (load.kind === 'invalid') {
    throw new AppError(load.problem === 'unreadable' ? 'CONFIG_UNREADABLE' : 'CONFIG_INVALID', describeConfigProblem(load));
  }
  return load.config;
}

/**
 * YAML 1.1 with merge keys, as PyYAML's SafeLoader read the original's files (`yes` is a boolean, `<<: *base`
 * merges). Any warning (an unknown tag such as `!!python/object`) is an error, and so is an alias bomb.
 */
export function parseYaml(text: string): { ok: true; value: unknown } | { ok: false; detail: string } {
  const doc = parseDocument(text, { version: '1.1', merge: true, uniqueKeys: true, prettyErrors: true });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) return { ok: false, detail: problem.message.split('\n')[0] ?? problem.message };
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) };
  } catch (error) {
    return { ok: false, detail: describeError(error) };
  }
}

/** Where the first invalid UTF-8 sequence starts (its lead byte and line), for a message the user can act on. */
export function firstBadByte(bytes: Uint8Array): string {
  let line = 1;
  for (let i = 0; i < bytes.length; ) {
    const lead = bytes[i]!;
    const length = lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    const sequence = bytes.subarray(i, i + Math.max(length, 1));
    const valid = length > 0 && sequence.length === length && isValidSequence(sequence);
    if (!valid) return `byte 0x${lead.toString(16)} on line ${line}`;
    if (lead === 0x0a) line++;
    i += length;
  }
  return 'an invalid byte sequence';
}

function isValidSequence(sequence: Uint8Array): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(sequence);
    return true;
  } catch {
    return false;
  }
}

function keysOf(schema: { shape: Record<string, unknown> }): string[] {
  return Object.keys(schema.shape);
}

/** The keys that are valid at a path of agents.yaml, for "did you mean" suggestions. */
function knownKeysAt(path: PropertyKey[]): string[] {
  const [top, , third] = path;
  if (path.length === 0) return keysOf(configSchema);
  if (top === 'agents' && path.length === 2) return keysOf(agentSchema);
  if (top === 'groups' && path.length === 2) return keysOf(groupSchema);
  if (top === 'groups' && third === 'members') return keysOf(groupMemberSchema);
  if (top === 'settings' && path.length === 1) return keysOf(settingsSchema);
  if (top === 'settings' && path[1] === 'cache') return keysOf(cacheSettingsSchema);
  return [];
}
