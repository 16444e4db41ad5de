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

function ipv4Octets(ip: string): number[] | null {
  if (isIP(ip) !== 4) return null;
  return ip.split('.').map(Number);
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

function classifyIPv4([a, b, c, d]: number[]): AddressClass {
  if (a === 169 && b === 254 && c === 169 && d === 254) return 'metadata';
  if (a === 100 && b === 100 && c === 100 && d === 200) return 'metadata';
  if (a === 127) return 'loopback';
  if (a === 0) return 'unspecified';
  if (a === 169 && b === 254) return 'link-local';
  if (a === 10 || (a === 172 && b! >= 16 && b! <= 31) || (a === 192 && b === 168)) return 'private';
  if (a === 100 && b! >= 64 && b! <= 127) return 'private'; // CGNAT
  if (a! >= 224 && a! <= 239) return 'multicast';
  // 240/4 (reserved) and 255.255.255.255 (broadcast) never reach the internet: treat them as private.
  if (a! >= 240) return 'private';
  return 'public';
}

function classifyIPv6(g: number[]): AddressClass {
  const embedded = (): AddressClass => classifyIPv4([g[6]! >> 8, g[6]! & 0xff, g[7]! >> 8, g[7]! & 0xff]);
  const zeros = (from: number, to: number): boolean => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 8)) return 'unspecified';
  if (zeros(0, 7) && g[7] === 1) return 'loopback';
  if (zeros(0, 5) && g[5] === 0xffff) return embedded(); // ::ffff:a.b.c.d, IPv4-mapped
  if (zeros(0, 6)) return embedded(); // ::a.b.c.d, the deprecated IPv4-compatible form
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return embedded(); // NAT64 reaches the embedded IPv4
  if (g[0] === 0xfd00 && g[1] === 0x0ec2 && zeros(2, 7) && g[7] === 0x254) return 'metadata';
  if ((g[0]! & 0xffc0) === 0xfe80) return 'link-local';
  if ((g[0]! & 0xfe00) === 0xfc00) return 'private'; // unique local fc00::/7
  if ((g[0]! & 0xffc0) === 0xfec0) return 'private'; // deprecated site-local
  if ((g[0]! & 0xff00) === 0xff00) return 'multicast';
  return 'public';
}

/** What kind of address `ip` is; a string that is not an IP address is never `public`. */
export function classifyAddress(ip: string): AddressClass {
  const v4 = ipv4Octets(ip);
  if (v4) return classifyIPv4(v4);
  const v6 = ipv6Groups(ip.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1'));
  if (v6) return classifyIPv6(v6);
  return 'unspecified';
}
