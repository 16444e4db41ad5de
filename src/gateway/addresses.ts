import { isIP } from 'node:net';

export type AddressClass = 'loopback' | 'link-local' | 'metadata' | 'private' | 'unspecified' | 'multicast' | 'public';

/** Lower case, one trailing dot dropped, `[...]` around an IPv6 literal removed, IPv6 in canonical form. */
export function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return isIP(h) === 6 ? canonicalIPv6(h) : h;
}

function canonicalIPv6(ip: string): string {
  // WHATWG URL serialises IPv6 canonically (RFC 5952), so `0:0::1` and `::1` compare equal. It has no zone
  // index (`fe80::1%eth0`), which only link-local addresses carry: the zone is dropped.
  try {
    return new URL(`http://[${ip.split('%')[0]}]`).hostname.slice(1, -1);
  } catch {
    return ip;
  }
}

/** The eight 16-bit groups of an IPv6 address (zone index ignored), or null. */
function ipv6Groups(ip: string): number[] | null {
  const bare = ip.split('%')[0]!;
  if (isIP(bare) !== 6) return null;
  // The canonical form has no dotted IPv4 tail, so only hex groups and at most one `::` remain.
  const [head = '', rest] = canonicalIPv6(bare).split('::');
  const parse = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * IPv4 special-purpose ranges (IANA registry), first match wins. Everything the internet does not route
 * (documentation, benchmarking, protocol assignments, reserved, broadcast) is `private`: only a literal
 * in network.allow reaches it.
 */
const IPV4_RANGES: ReadonlyArray<readonly [cidr: string, kind: AddressClass]> = [
  ['169.254.169.254/32', 'metadata'], // AWS, GCP, Azure, OpenStack
  ['100.100.100.200/32', 'metadata'], // Alibaba Cloud
  ['0.0.0.0/8', 'unspecified'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['10.0.0.0/8', 'private'],
  ['172.16.0.0/12', 'private'],
  ['192.168.0.0/16', 'private'],
  ['100.64.0.0/10', 'private'], // carrier-grade NAT
  ['192.0.0.0/24', 'private'], // IETF protocol assignments (NAT64 discovery, DS-Lite)
  ['192.0.2.0/24', 'private'], // documentation (TEST-NET-1)
  ['198.51.100.0/24', 'private'], // documentation (TEST-NET-2)
  ['203.0.113.0/24', 'private'], // documentation (TEST-NET-3)
  ['198.18.0.0/15', 'private'], // benchmarking
  ['192.88.99.0/24', 'private'], // the retired 6to4 relay anycast
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'private'], // reserved, and 255.255.255.255 (broadcast)
];

/** Where an IPv6 form carries an IPv4 address, as two 16-bit groups (Teredo stores its client inverted). */
type Embedded = { groups: readonly [number, number]; inverted?: true; neverPublic?: true };

/**
 * IPv6 special-purpose ranges, first match wins. A form that carries an IPv4 address is classified by that
 * address (the IPv4 rules), since a translator or relay delivers to it; a form marked neverPublic is at
 * least `private` whatever it carries, because no public path leads through it.
 */
const IPV6_RANGES: ReadonlyArray<readonly [cidr: string, kind: AddressClass | Embedded]> = [
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::ffff:0:0/96', { groups: [6, 7] }], // IPv4-mapped ::ffff:a.b.c.d
  ['::ffff:0:0:0/96', { groups: [6, 7] }], // IPv4-translated (SIIT) ::ffff:0:a.b.c.d
  ['::/96', { groups: [6, 7] }], // IPv4-compatible (deprecated) ::a.b.c.d
  ['64:ff9b::/96', { groups: [6, 7] }], // NAT64, well-known prefix
  ['64:ff9b:1::/48', { groups: [6, 7], neverPublic: true }], // NAT64, local-use prefix
  ['::/8', 'private'], // the rest of the reserved block (after NAT64: 64:ff9b:: lies inside it)
  ['100::/64', 'private'], // discard-only
  ['2001::/32', { groups: [6, 7], inverted: true, neverPublic: true }], // Teredo: the client's address, inverted
  ['2001:2::/48', 'private'], // benchmarking
  ['2001:db8::/32', 'private'], // documentation
  ['2001:10::/28', 'private'], // ORCHID (deprecated)
  ['2002::/16', { groups: [1, 2] }], // 6to4: 2002:aabb:ccdd::/48 is a.b.c.d's site
  ['3fff::/20', 'private'], // documentation
  ['fd00:ec2::254/128', 'metadata'], // AWS over IPv6
  ['fe80::/10', 'link-local'],
  ['fc00::/7', 'private'], // unique local
  ['fec0::/10', 'private'], // site-local (deprecated)
  ['ff00::/8', 'multicast'],
];

interface Range<Kind> {
  /** The network's leading bits (its prefix length of them), as 0/1 numbers. */
  bits: number[];
  kind: Kind;
}

/** Parses each CIDR of a table once. */
function compile<Kind>(table: ReadonlyArray<readonly [string, Kind]>, toBits: (address: string) => number[] | null): Range<Kind>[] {
  return table.map(([cidr, kind]) => {
    const [address = '', prefix = ''] = cidr.split('/');
    const bits = toBits(address);
    if (!bits) throw new Error(`bad range ${cidr}`);
    return { bits: bits.slice(0, Number(prefix)), kind };
  });
}

const bitsOf = (value: number, width: number): number[] => Array.from({ length: width }, (_, i) => (value >>> (width - 1 - i)) & 1);
const ipv4Bits = (ip: string): number[] | null => (isIP(ip) === 4 ? ip.split('.').flatMap((octet) => bitsOf(Number(octet), 8)) : null);
const ipv6Bits = (ip: string): number[] | null => ipv6Groups(ip)?.flatMap((g) => bitsOf(g, 16)) ?? null;

const V4 = compile(IPV4_RANGES, ipv4Bits);
const V6 = compile(IPV6_RANGES, ipv6Bits);

function lookup<Kind>(ranges: Range<Kind>[], bits: number[]): Kind | undefined {
  return ranges.find((r) => r.bits.every((b, i) => bits[i] === b))?.kind;
}

function classifyIPv6(groups: number[]): AddressClass {
  const kind = lookup(V6, groups.flatMap((g) => bitsOf(g, 16)));
  if (kind === undefined) return 'public';
  if (typeof kind === 'string') return kind;
  const mask = kind.inverted ? 0xffff : 0;
  const [hi, lo] = kind.groups.map((i) => groups[i]! ^ mask) as [number, number];
  const embedded = lookup(V4, [...bitsOf(hi, 16), ...bitsOf(lo, 16)]) ?? 'public';
  return embedded === 'public' && kind.neverPublic ? 'private' : embedded;
}

/** What kind of address `ip` is; a string that is not an IP address is never `public`. */
export function classifyAddress(ip: string): AddressClass {
  const v4 = ipv4Bits(ip);
  if (v4) return lookup(V4, v4) ?? 'public';
  const v6 = ipv6Groups(ip.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1'));
  if (v6) return classifyIPv6(v6);
  return 'unspecified';
}
