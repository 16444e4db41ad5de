import { isIP } from 'node:net';
import { classifyAddress, normalizeHost } from './addresses.js';
import type { AllowRule } from './protocol.js';

export { classifyAddress, normalizeHost, type AddressClass } from './addresses.js';

export type Decision = { allowed: true; address: string } | { allowed: false; reason: string };

/** `host`, `host:N`, `host:*`, `*`, `*.suffix` (any of them with `:port`), `[v6]:N`. No port means 443. */
export function parseAllowPattern(pattern: string): AllowRule {
  const p = pattern.trim().toLowerCase();
  let host = p;
  let port: string | undefined;
  if (p.startsWith('[')) {
    const end = p.indexOf(']');
    host = p.slice(0, end + 1);
    const rest = p.slice(end + 1);
    if (end < 0 || (rest !== '' && !rest.startsWith(':'))) throw new Error(`'${pattern}' is not a host pattern`);
    port = rest === '' ? undefined : rest.slice(1);
  } else if (isIP(p) !== 6 && p.includes(':')) {
    const at = p.lastIndexOf(':');
    host = p.slice(0, at);
    port = p.slice(at + 1);
  }
  host = normalizeHost(host);
  if (host === '' || /[\s/@]/.test(host)) throw new Error(`'${pattern}' is not a host pattern`);
  if (port === undefined) return { host, port: 443 };
  if (port === '*') return { host, port: '*' };
  const n = Number(port);
  if (!/^\d+$/.test(port) || n < 1 || n > 65535) throw new Error(`'${pattern}' has a port outside 1-65535`);
  return { host, port: n };
}

export function matchesRule(rule: AllowRule, host: string, port: number): boolean {
  if (rule.port !== '*' && rule.port !== port) return false;
  const h = normalizeHost(host);
  const r = normalizeHost(rule.host);
  if (r === '*') return true;
  // A wildcard names a DNS subtree: never an IP literal, and never the bare suffix itself.
  if (r.startsWith('*.')) return isIP(h) === 0 && h.endsWith(r.slice(1));
  return r === h;
}

export function findRule(rules: readonly AllowRule[], host: string, port: number): AllowRule | undefined {
  return rules.find((rule) => matchesRule(rule, host, port));
}

/** The first check, before any DNS query: is host:port listed at all? Null when it is. */
export function checkListed(rules: readonly AllowRule[], host: string, port: number): string | null {
  return findRule(rules, host, port) ? null : 'it is not listed in network.allow';
}

/** True when a rule names this IP literal exactly (wildcards never allow a non-public address). */
function namesAddress(rules: readonly AllowRule[], address: string, port: number): boolean {
  const a = normalizeHost(address);
  return rules.some((rule) => normalizeHost(rule.host) === a && (rule.port === '*' || rule.port === port));
}

/**
 * The policy decision for host:port whose name resolved to `addresses` (an IP literal host is its own single
 * address). Every address must be acceptable, not just the one used: a name that resolves to a public and a
 * private address would otherwise reach the private one on a retry or a DNS change.
 */
export function decide(rules: readonly AllowRule[], host: string, port: number, addresses: readonly string[]): Decision {
  const listed = checkListed(rules, host, port);
  if (listed) return { allowed: false, reason: listed };
  if (addresses.length === 0) return { allowed: false, reason: 'it resolves to no address' };
  const literal = isIP(normalizeHost(host)) !== 0;
  for (const address of addresses) {
    const kind = classifyAddress(address);
    if (kind === 'public' || namesAddress(rules, address, port)) continue;
    const what = literal ? `it is a private address (${kind})` : `it resolves to a private address (${kind})`;
    return { allowed: false, reason: `${what}, which network.allow must name exactly as an IP literal` };
  }
  return { allowed: true, address: normalizeHost(addresses[0]!) };
}
