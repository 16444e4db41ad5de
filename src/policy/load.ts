import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { basename, extname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatIssues, PARSE_OPTIONS } from '../config/issues.js';
import { parseYaml, sentence } from '../config/load.js';
import { expandHome, stateDir } from '../config/paths.js';
import { describeError } from '../errors.js';
import { policyKeysAt, policySchema, type Policy } from './schema.js';
import { readRegularFile } from '../project/safe-read.js';

/** Shipped presets live in `policies/` at the package root (same depth from src/ and dist/). */
export const PRESETS_DIR = fileURLToPath(new URL('../../policies/', import.meta.url));

export interface PolicySource {
  /** What the agent wrote in `policy:` (or the path given to `policy check`). */
  ref: string;
  path: string;
  preset: boolean;
}

export type PolicyLoad =
  | { kind: 'ok'; source: PolicySource; policy: Policy; hash: string }
  | { kind: 'not-found'; ref: string; searched: string[] }
  | { kind: 'invalid'; source: PolicySource; detail: string };

/** A ref with a slash or a .yaml/.yml ending is a path (relative to the config directory); else a name. */
export function isPolicyPath(ref: string): boolean {
  return ref.includes('/') || ref.startsWith('~') || ['.yaml', '.yml'].includes(extname(ref));
}

/**
 * Resolve `policy:` to a file: a path as written, else `<config dir>/policies/<name>.yaml` (the user's own),
 * else the shipped preset of that name.
 */
export function locatePolicy(ref: string, configDir: string = stateDir()): { found?: PolicySource; searched: string[] } {
  if (isPolicyPath(ref)) {
    const expanded = expandHome(ref);
    const path = isAbsolute(expanded) ? expanded : resolve(configDir, expanded);
    return existsSync(path) ? { found: { ref, path, preset: false }, searched: [path] } : { searched: [path] };
  }
  const candidates = [
    { path: join(configDir, 'policies', `${ref}.yaml`), preset: false },
    { path: join(PRESETS_DIR, `${ref}.yaml`), preset: true },
  ];
  for (const c of candidates) if (existsSync(c.path)) return { found: { ref, ...c }, searched: candidates.map((x) => x.path) };
  return { searched: candidates.map((x) => x.path) };
}

export function loadPolicy(ref: string, configDir: string = stateDir()): PolicyLoad {
  let located: ReturnType<typeof locatePolicy>;
  try {
    located = locatePolicy(ref, configDir);
  } catch (error) {
    return { kind: 'not-found', ref, searched: [describeError(error)] };
  }
  if (!located.found) return { kind: 'not-found', ref, searched: located.searched };
  return loadPolicyFile(located.found);
}

export function loadPolicyFile(source: PolicySource): PolicyLoad {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(readRegularFile(source.path));
  } catch (error) {
    const detail = error instanceof TypeError ? 'not valid UTF-8 (re-save it as UTF-8)' : `could not be read: ${describeError(error)}`;
    return { kind: 'invalid', source, detail };
  }
  const parsed = parseYaml(text);
  if (!parsed.ok) return { kind: 'invalid', source, detail: `not valid YAML: ${parsed.detail}` };
  const result = policySchema.safeParse(parsed.value ?? {}, PARSE_OPTIONS);
  if (!result.success) return { kind: 'invalid', source, detail: formatIssues(result.error.issues, policyKeysAt) };
  return { kind: 'ok', source, policy: result.data, hash: policyHash(result.data) };
}

/** A stable digest of the effective policy (defaults filled in), for labels and audit records. */
export function policyHash(policy: Policy): string {
  return createHash('sha256').update(canonicalJson(policy)).digest('hex').slice(0, 16);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** One line for users: why a policy ref cannot be used and what to do. */
export function describePolicyProblem(load: Exclude<PolicyLoad, { kind: 'ok' }>): string {
  if (load.kind === 'not-found') {
    return `Policy '${load.ref}' not found (looked in ${load.searched.join(', ')}). Use a preset (${presetNames().join(', ')}) or a path to a policy file.`;
  }
  return `Policy '${load.source.ref}' at ${load.source.path} is invalid: ${sentence(load.detail)} Fix it, then run 'agent-dispatch policy check ${load.source.path}'.`;
}

export function presetNames(): string[] {
  try {
    return readdirSync(PRESETS_DIR)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => basename(f, '.yaml'))
      .sort();
  } catch {
    return [];
  }
}
