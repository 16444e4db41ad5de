import { posix } from 'node:path';
import { parseSize } from './container-spec.js';
import { permissionRank, toolName } from './permissions.js';
import type { Mount, Policy } from './schema.js';

/**
 * Is one resolved policy wider than another? Used to let an MCP caller (a model, possibly prompt-injected)
 * narrow an agent's sandbox but never widen it (settings.mcp_policy_changes). Pure: two parsed policies in,
 * the list of ways the second grants more than the first out; empty means "no wider on any axis".
 *
 * Fails closed: a policy key this module has no rule for (a field added to the schema later) counts as widened
 * whenever its value differs, until someone writes the rule.
 */

export type PolicyAxis = 'repo' | 'mounts' | 'env' | 'credentials' | 'network' | 'tools' | 'resources' | 'image' | 'other';

export interface Widening {
  axis: PolicyAxis;
  /** What grows, in words; names and paths only, never env.set values. */
  detail: string;
}

/** Keys that grant nothing. */
const INERT_KEYS = new Set(['version', 'description']);

const REPO_RANK: Record<Policy['repo'], number> = { ro: 0, overlay: 1, rw: 2 };
const CREDENTIAL_RANK: Record<Policy['credentials'], number> = { inject: 0, env: 1 };
const MOUNT_MODE_RANK: Record<Mount['mode'], number> = { ro: 0, rw: 1 };

type Section = Record<string, unknown>;
type Rule = (current: Policy, proposed: Policy) => Widening[];

const RULES: Record<string, Rule> = {
  repo: (c, p) => (REPO_RANK[p.repo] > REPO_RANK[c.repo] ? [{ axis: 'repo', detail: `repo ${c.repo} → ${p.repo}` }] : []),
  credentials: (c, p) =>
    CREDENTIAL_RANK[p.credentials] > CREDENTIAL_RANK[c.credentials] ? [{ axis: 'credentials', detail: `credentials ${c.credentials} → ${p.credentials}` }] : [],
  image: (c, p) => (p.image !== c.image ? [{ axis: 'image', detail: `image ${c.image} → ${p.image}` }] : []),
  repo_git: (c, p) =>
    (c as Section)['repo_git'] === 'protected' && (p as Section)['repo_git'] !== 'protected' ? [{ axis: 'repo', detail: `repo_git protected → ${String((p as Section)['repo_git'])}` }] : [],
  mounts: (c, p) =>
    p.mounts.filter((m) => !c.mounts.some((held) => mountCovers(held, m))).map((m) => ({ axis: 'mounts', detail: `mounts add ${m.source} (${m.mode}) at ${mountTarget(m)}` })),
  env: (c, p) => [
    ...p.env.pass.filter((name) => !c.env.pass.includes(name)).map((name) => ({ axis: 'env' as const, detail: `env.pass adds ${name}` })),
    ...Object.entries(p.env.set)
      .filter(([name, value]) => !Object.hasOwn(c.env.set, name) || c.env.set[name] !== value)
      .map(([name]) => ({ axis: 'env' as const, detail: `env.set ${Object.hasOwn(c.env.set, name) ? 'changes' : 'adds'} ${name}` })),
    ...otherKeys('env', c.env, p.env, ['pass', 'set']),
  ],
  network: (c, p) => [...networkWidenings(c.network, p.network), ...otherKeys('network', c.network, p.network, ['mode', 'allow'])],
  tools: (c, p) => [...toolWidenings(c.tools, p.tools), ...mcpServerWidenings(c.tools, p.tools), ...otherKeys('tools', c.tools, p.tools, ['permission_mode', 'allow', 'deny', 'mcp_servers'])],
  resources: (c, p) => resourceWidenings(c.resources, p.resources),
};

/** Every way `proposed` grants more than `current`; empty when it is no wider on any axis. */
export function policyWidenings(current: Policy, proposed: Policy): Widening[] {
  const found: Widening[] = [];
  const keys = new Set([...Object.keys(current), ...Object.keys(proposed)]);
  for (const key of keys) {
    if (INERT_KEYS.has(key)) continue;
    const rule = RULES[key];
    if (rule) found.push(...rule(current, proposed));
    else if (!sameJson((current as Section)[key], (proposed as Section)[key])) found.push({ axis: 'other', detail: `${key} changes` });
  }
  return found;
}

/** The axes named once each, in a stable order (for messages and audit records). */
export function widenedAxes(widenings: readonly Widening[]): PolicyAxis[] {
  return [...new Set(widenings.map((w) => w.axis))];
}

function networkWidenings(c: Policy['network'], p: Policy['network']): Widening[] {
  if (c.mode === 'open') return [];
  if (p.mode === 'open') return [{ axis: 'network', detail: 'network mode gateway → open (any destination)' }];
  const added = p.allow.filter((pattern) => !c.allow.some((held) => hostPatternCovers(held, pattern)));
  return added.length > 0 ? [{ axis: 'network', detail: `network.allow adds ${added.join(', ')}` }] : [];
}

function toolWidenings(c: Policy['tools'], p: Policy['tools']): Widening[] {
  const found: Widening[] = [];
  if ((permissionRank(p.permission_mode) ?? Infinity) > (permissionRank(c.permission_mode) ?? Infinity)) {
    found.push({ axis: 'tools', detail: `tools.permission_mode ${c.permission_mode} → ${p.permission_mode}` });
  }
  if (c.allow !== null) {
    if (p.allow === null) found.push({ axis: 'tools', detail: 'tools.allow: a list → no limit' });
    else {
      const added = p.allow.filter((tool) => !toolCovered(c.allow!, tool));
      if (added.length > 0) found.push({ axis: 'tools', detail: `tools.allow adds ${added.join(', ')}` });
    }
  }
  const dropped = c.deny.filter((tool) => !toolCovered(p.deny, tool));
  if (dropped.length > 0) found.push({ axis: 'tools', detail: `tools.deny drops ${dropped.join(', ')}` });
  return found;
}

/** tools.mcp_servers: `none` ⊂ a list of names ⊂ `repo` (every server the repo's .mcp.json names). */
function mcpServerWidenings(c: object, p: object): Widening[] {
  const was = (c as Section)['mcp_servers'] ?? 'none';
  const now = (p as Section)['mcp_servers'] ?? 'none';
  const names = (v: unknown): string[] | 'all' => (v === 'repo' ? 'all' : Array.isArray(v) ? v.map(String) : v === 'none' ? [] : 'all');
  const held = names(was);
  const asked = names(now);
  if (held === 'all') return [];
  const added = asked === 'all' ? ['every server in the repo'] : asked.filter((n) => !held.includes(n));
  return added.length > 0 ? [{ axis: 'tools', detail: `tools.mcp_servers adds ${added.join(', ')}` }] : [];
}

/** `Bash` in a list covers `Bash(git *)`, as in the policy's own narrowing (permissions.ts). */
function toolCovered(list: readonly string[], tool: string): boolean {
  return list.includes(tool) || list.includes(toolName(tool));
}

const SIZE_KEYS = new Set(['memory', 'tmp_size']);

function resourceWidenings(c: Policy['resources'], p: Policy['resources']): Widening[] {
  const found: Widening[] = [];
  for (const key of new Set([...Object.keys(c), ...Object.keys(p)])) {
    const was = (c as Section)[key];
    const now = (p as Section)[key];
    const measure = (v: unknown) => (SIZE_KEYS.has(key) && typeof v === 'string' ? parseSize(v) : v);
    const a = measure(was);
    const b = measure(now);
    const larger = typeof a === 'number' && typeof b === 'number' ? b > a : !sameJson(was, now);
    if (larger) found.push({ axis: 'resources', detail: `resources.${key} ${String(was)} → ${String(now)}` });
  }
  return found;
}

/** Sub-keys without a rule: any difference counts (fail closed). */
function otherKeys(section: string, c: object, p: object, known: string[]): Widening[] {
  const keys = new Set([...Object.keys(c), ...Object.keys(p)].filter((k) => !known.includes(k)));
  return [...keys].filter((k) => !sameJson((c as Section)[k], (p as Section)[k])).map((k) => ({ axis: 'other' as const, detail: `${section}.${k} changes` }));
}

function mountTarget(m: Mount): string {
  return normalize(m.target ?? m.source);
}

function normalize(path: string): string {
  const n = posix.normalize(path);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/**
 * `held` already exposes what `m` would: `m`'s source is `held`'s or lies under it, at the matching place inside
 * the container, and `m` is no more writable. Paths are compared as written (`~` is not expanded), so a
 * spelling that differs only by `~` counts as new: conservative.
 */
function mountCovers(held: Mount, m: Mount): boolean {
  if (MOUNT_MODE_RANK[m.mode] > MOUNT_MODE_RANK[held.mode]) return false;
  const heldSource = normalize(held.source);
  const source = normalize(m.source);
  const prefix = heldSource.endsWith('/') ? heldSource : `${heldSource}/`;
  if (source !== heldSource && !source.startsWith(prefix)) return false;
  return mountTarget(m) === normalize(posix.join(mountTarget(held), source.slice(heldSource.length)));
}

interface HostPattern {
  host: string;
  port: string;
}

function parseHostPattern(pattern: string): HostPattern {
  const lower = pattern.toLowerCase();
  const colon = lower.lastIndexOf(':');
  return colon === -1 ? { host: lower, port: '443' } : { host: lower.slice(0, colon), port: lower.slice(colon + 1) };
}

/**
 * Every destination `pattern` allows is already allowed by `held` (the gateway's matching: `*` is any host,
 * `*.s` any name strictly under s, no port means 443, `:*` any port).
 */
export function hostPatternCovers(held: string, pattern: string): boolean {
  const a = parseHostPattern(held);
  const b = parseHostPattern(pattern);
  if (a.port !== '*' && a.port !== b.port) return false;
  if (a.host === '*') return true;
  if (b.host === '*') return false;
  if (a.host.startsWith('*.')) {
    return b.host.endsWith(a.host.slice(1));
  }
  return a.host === b.host;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Section).sort(([x], [y]) => x.localeCompare(y)).map(([k, v]) => [k, canonical(v)]));
  }
  return value;
}
