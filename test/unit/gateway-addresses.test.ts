import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { classifyAddress, type AddressClass } from '../../src/gateway/addresses.js';
import { decide, parseAllowPattern } from '../../src/gateway/allowlist.js';
import { connectVia, fakeUpstream, readUntil, startGateway, type FakeUpstream } from './gateway-harness.js';

/** Each IPv4 special-purpose range: its first and last address, and the addresses just outside it. */
const IPV4: ReadonlyArray<readonly [string, AddressClass]> = [
  ['0.0.0.0', 'unspecified'],
  ['0.255.255.255', 'unspecified'],
  ['1.0.0.0', 'public'],
  ['9.255.255.255', 'public'],
  ['10.0.0.0', 'private'],
  ['10.255.255.255', 'private'],
  ['11.0.0.0', 'public'],
  ['100.63.255.255', 'public'],
  ['100.64.0.0', 'private'],
  ['100.100.100.199', 'private'],
  ['100.100.100.200', 'metadata'],
  ['100.127.255.255', 'private'],
  ['100.128.0.0', 'public'],
  ['126.255.255.255', 'public'],
  ['127.0.0.0', 'loopback'],
  ['127.0.0.1', 'loopback'],
  ['127.255.255.255', 'loopback'],
  ['128.0.0.0', 'public'],
  ['169.253.255.255', 'public'],
  ['169.254.0.0', 'link-local'],
  ['169.254.169.253', 'link-local'],
  ['169.254.169.254', 'metadata'],
  ['169.254.255.255', 'link-local'],
  ['169.255.0.0', 'public'],
  ['172.15.255.255', 'public'],
  ['172.16.0.0', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.0', 'public'],
  ['191.255.255.255', 'public'],
  ['192.0.0.0', 'private'],
  ['192.0.0.170', 'private'],
  ['192.0.0.255', 'private'],
  ['192.0.1.0', 'public'],
  ['192.0.2.0', 'private'],
  ['192.0.2.255', 'private'],
  ['192.0.3.0', 'public'],
  ['192.88.98.255', 'public'],
  ['192.88.99.0', 'private'],
  ['192.88.99.255', 'private'],
  ['192.88.100.0', 'public'],
  ['192.167.255.255', 'public'],
  ['192.168.0.0', 'private'],
  ['192.168.255.255', 'private'],
  ['192.169.0.0', 'public'],
  ['198.17.255.255', 'public'],
  ['198.18.0.0', 'private'],
  ['198.19.255.255', 'private'],
  ['198.20.0.0', 'public'],
  ['198.51.99.255', 'public'],
  ['198.51.100.0', 'private'],
  ['198.51.100.255', 'private'],
  ['198.51.101.0', 'public'],
  ['203.0.112.255', 'public'],
  ['203.0.113.0', 'private'],
  ['203.0.113.255', 'private'],
  ['203.0.114.0', 'public'],
  ['223.255.255.255', 'public'],
  ['224.0.0.0', 'multicast'],
  ['239.255.255.255', 'multicast'],
  ['240.0.0.0', 'private'],
  ['255.255.255.254', 'private'],
  ['255.255.255.255', 'private'],
  ['8.8.8.8', 'public'],
  ['93.184.216.34', 'public'],
];

/** IPv6 ranges with a class of their own (no embedded IPv4), with their edges. */
const IPV6: ReadonlyArray<readonly [string, AddressClass]> = [
  ['::', 'unspecified'],
  ['0:0:0:0:0:0:0:0', 'unspecified'],
  ['::1', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['::2:0:0:1', 'private'], // reserved ::/8, none of the IPv4 forms
  ['ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'private'],
  ['100::', 'private'],
  ['100::ffff:ffff:ffff:ffff', 'private'],
  ['100:0:0:1::', 'public'],
  ['2001:2::', 'private'],
  ['2001:2:0:ffff:ffff:ffff:ffff:ffff', 'private'],
  ['2001:2:1::', 'public'],
  ['2001:db8::', 'private'],
  ['2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', 'private'],
  ['2001:db9::', 'public'],
  ['2001:10::1', 'private'],
  ['2001:1f:ffff::', 'private'],
  ['2001:20::1', 'public'],
  ['3fff::', 'private'],
  ['3fff:fff:ffff::', 'private'],
  ['3fff:1000::', 'public'],
  ['fd00:ec2::254', 'metadata'],
  ['fd00:ec2::253', 'private'],
  ['fbff:ffff::', 'public'],
  ['fc00::', 'private'],
  ['fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'private'],
  ['fe00::', 'public'],
  ['fe80::', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['febf:ffff::', 'link-local'],
  ['fec0::', 'private'],
  ['feff:ffff::', 'private'],
  ['ff00::', 'multicast'],
  ['ff02::1', 'multicast'],
  ['ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'multicast'],
  ['2606:4700::1111', 'public'],
  ['2a00:1450:4001::200e', 'public'],
];

/** One IPv4 address of each class, and what it is. */
const EMBEDDED: ReadonlyArray<readonly [string, AddressClass]> = [
  ['127.0.0.1', 'loopback'],
  ['10.1.2.3', 'private'],
  ['100.64.0.1', 'private'],
  ['198.18.0.1', 'private'],
  ['192.0.2.1', 'private'],
  ['240.0.0.1', 'private'],
  ['169.254.1.1', 'link-local'],
  ['169.254.169.254', 'metadata'],
  ['0.1.2.3', 'unspecified'],
  ['224.0.0.1', 'multicast'],
  ['8.8.8.8', 'public'],
];

const hex = (ipv4: string): [string, string] => {
  const [a, b, c, d] = ipv4.split('.').map(Number) as [number, number, number, number];
  return [((a << 8) | b).toString(16), ((c << 8) | d).toString(16)];
};
const inverted = (group: string): string => (0xffff ^ parseInt(group, 16)).toString(16);

/** Every IPv6 form that carries an IPv4 address: how it spells `ipv4`, and whether a public one stays public. */
const FORMS: ReadonlyArray<{ name: string; spell: (ipv4: string) => string; publicStaysPublic: boolean }> = [
  { name: 'IPv4-mapped, dotted', spell: (v4) => `::ffff:${v4}`, publicStaysPublic: true },
  { name: 'IPv4-mapped, hex', spell: (v4) => `::ffff:${hex(v4).join(':')}`, publicStaysPublic: true },
  { name: 'IPv4-mapped, in full', spell: (v4) => `0:0:0:0:0:ffff:${hex(v4).join(':')}`, publicStaysPublic: true },
  { name: 'IPv4-translated (SIIT)', spell: (v4) => `::ffff:0:${hex(v4).join(':')}`, publicStaysPublic: true },
  { name: 'IPv4-translated, dotted', spell: (v4) => `::ffff:0:${v4}`, publicStaysPublic: true },
  { name: 'IPv4-compatible', spell: (v4) => `::${v4}`, publicStaysPublic: true },
  { name: 'NAT64 well-known, dotted', spell: (v4) => `64:ff9b::${v4}`, publicStaysPublic: true },
  { name: 'NAT64 well-known, hex', spell: (v4) => `64:ff9b::${hex(v4).join(':')}`, publicStaysPublic: true },
  { name: 'NAT64 local-use', spell: (v4) => `64:ff9b:1::${v4}`, publicStaysPublic: false },
  { name: '6to4 site', spell: (v4) => `2002:${hex(v4).join(':')}::`, publicStaysPublic: true },
  { name: '6to4 host', spell: (v4) => `2002:${hex(v4).join(':')}:1:2:3:4:5`, publicStaysPublic: true },
  { name: 'Teredo client', spell: (v4) => `2001:0:4136:e378:8000:63bf:${hex(v4).map(inverted).join(':')}`, publicStaysPublic: false },
];

describe('classifyAddress: IPv4 ranges, at their edges', () => {
  it.each(IPV4)('%s is %s', (ip, kind) => {
    expect(classifyAddress(ip)).toBe(kind);
  });
});

describe('classifyAddress: IPv6 ranges, at their edges', () => {
  it.each(IPV6)('%s is %s', (ip, kind) => {
    expect(classifyAddress(ip)).toBe(kind);
  });
});

describe('classifyAddress: IPv4 carried in IPv6 is classified by the IPv4 rules', () => {
  const rows = FORMS.flatMap((form) =>
    EMBEDDED.map(([v4, kind]) => [form.name, v4, form.spell(v4), kind === 'public' && !form.publicStaysPublic ? 'private' : kind] as const),
  );
  it.each(rows)('%s of %s (%s) is %s', (_form, _v4, ip, kind) => {
    expect(classifyAddress(ip)).toBe(kind);
    expect(classifyAddress(`[${ip.toUpperCase()}]`)).toBe(kind);
  });

  it('the forms named in the security review', () => {
    expect(classifyAddress('::ffff:0:7f00:1')).toBe('loopback');
    expect(classifyAddress('::ffff:127.0.0.1')).toBe('loopback');
    expect(classifyAddress('64:ff9b::a9fe:a9fe')).toBe('metadata');
    expect(classifyAddress('64:ff9b:1::808:808')).toBe('private');
    expect(classifyAddress('2002::')).toBe('unspecified');
    expect(classifyAddress('2002:c612:1::')).toBe('private');
    expect(classifyAddress('198.18.0.1')).toBe('private');
    expect(classifyAddress('2001::1')).toBe('private');
  });
});

describe('classifyAddress: what is not an address', () => {
  it.each(['', 'localhost', 'example.com', '127.1', '0x7f.0.0.1', '2130706433', '017700000001', '1.2.3', '::ffff:1.2.3', '[::1', 'fe80::1%'])(
    '%j is never public',
    (text) => {
      expect(classifyAddress(text)).not.toBe('public');
    },
  );
});

describe('decide: the new non-public forms', () => {
  const rules = (...patterns: string[]) => patterns.map(parseAllowPattern);
  const forms = ['::ffff:0:7f00:1', '64:ff9b::a00:5', '64:ff9b:1::808:808', '2002:a9fe:a9fe::', '2001:0:4136:e378:8000:63bf:80ff:fffe', '198.18.0.1', '192.0.2.10'];

  it.each(forms)('%s is refused as a literal under *:*, and as the address of a wildcard-listed name', (address) => {
    const literal = decide(rules('*:*'), address, 443, [address]);
    expect(literal).toMatchObject({ allowed: false, reason: expect.stringMatching(/^it is a private address \(\w[\w-]*\), which network.allow must name exactly as an IP literal$/) });
    expect(decide(rules('*.example.com'), 'db.example.com', 443, ['93.184.216.34', address])).toMatchObject({ allowed: false, reason: expect.stringContaining('resolves to a private address') });
  });

  it.each(forms)('%s is allowed when network.allow names it exactly', (address) => {
    expect(decide(rules(`[${address}]:443`), address, 443, [address])).toMatchObject({ allowed: true });
  });
});

describe('the gateway refuses them end to end (CONNECT through the real proxy)', () => {
  const TOKEN = 'tok-addresses-0123456789';
  let upstream: FakeUpstream;
  beforeEach(async () => {
    upstream = await fakeUpstream();
  });
  afterEach(async () => {
    await upstream.close();
  });

  it.each([
    ['[::ffff:0:7f00:1]:80', 'loopback'],
    ['[64:ff9b::7f00:1]:80', 'loopback'],
    ['[64:ff9b::a9fe:a9fe]:80', 'metadata'],
    ['[2002:7f00:1::1]:22', 'loopback'],
    ['[2001:0:4136:e378:8000:63bf:80ff:fffe]:443', 'loopback'],
    ['198.18.0.1:443', 'private'],
  ])('CONNECT %s under *:* is 403 (%s)', async (authority, kind) => {
    const gw = await startGateway(upstream.url);
    try {
      gw.proxy.register(TOKEN, [parseAllowPattern('*:*')]);
      const { socket, head } = await connectVia(gw.socketPath, TOKEN, authority);
      expect(head + (await readUntil(socket))).toMatch(new RegExp(`^HTTP/1\\.1 403 [^]*it is a private address \\(${kind}\\)`));
      const [decision] = await gw.proxy.release(TOKEN);
      expect(decision).toMatchObject({ kind: 'connect', allowed: false });
    } finally {
      await gw.close();
    }
  });

  it('a listed name that resolves to a NAT64 address of a private IPv4 is refused', async () => {
    const gw = await startGateway(upstream.url, { lookup: async () => ['64:ff9b::a00:5'] });
    try {
      gw.proxy.register(TOKEN, [parseAllowPattern('*.corp.example')]);
      const { socket, head } = await connectVia(gw.socketPath, TOKEN, 'db.corp.example:443');
      expect(head + (await readUntil(socket))).toMatch(/^HTTP\/1\.1 403 [^]*it resolves to a private address \(private\)/);
      await gw.proxy.release(TOKEN);
    } finally {
      await gw.close();
    }
  });
});
