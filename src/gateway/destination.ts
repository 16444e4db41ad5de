import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { checkListed, decide, normalizeHost } from './allowlist.js';
import type { AllowRule } from './protocol.js';

/** Resolves a name to all of its addresses. */
export type Lookup = (host: string) => Promise<string[]>;

export const defaultLookup: Lookup = async (host) =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((entry) => entry.address);

export type Resolution =
  | { kind: 'allowed'; address: string }
  /** Policy said no (403). */
  | { kind: 'refused'; reason: string }
  /** Allowed, but the name did not resolve (502). */
  | { kind: 'failed'; reason: string };

/** The allowlist first (an unlisted name is never even looked up), then DNS, then the address check. */
export async function resolveDestination(rules: readonly AllowRule[], host: string, port: number, lookup: Lookup): Promise<Resolution> {
  const name = normalizeHost(host);
  const unlisted = checkListed(rules, name, port);
  if (unlisted) return { kind: 'refused', reason: unlisted };
  let addresses: string[];
  try {
    addresses = isIP(name) ? [name] : await lookup(name);
  } catch (err) {
    return { kind: 'failed', reason: `DNS lookup of ${name} failed: ${errorCode(err)}` };
  }
  if (addresses.length === 0) return { kind: 'failed', reason: `DNS lookup of ${name} returned no address` };
  const decision = decide(rules, name, port, addresses);
  return decision.allowed ? { kind: 'allowed', address: decision.address } : { kind: 'refused', reason: decision.reason };
}

/** A short, stable description of a network error (its code when it has one). */
export function errorCode(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof err.code === 'string') return err.code;
  return err instanceof Error ? err.message : String(err);
}

/** `host:port` of a CONNECT request (`[v6]:port` for IPv6), or null when it is not one. */
export function parseAuthority(authority: string): { host: string; port: number } | null {
  const match = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(authority);
  if (!match) return null;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return null;
  return { host: normalizeHost(match[1]!), port };
}
