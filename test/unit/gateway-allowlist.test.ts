import { describe, expect, it } from 'vitest';
import { classifyAddress, decide, findRule, matchesRule, normalizeHost, parseAllowPattern } from '../../src/gateway/allowlist.js';
import type { AllowRule } from '../../src/gateway/protocol.js';

const rules = (...patterns: string[]): AllowRule[] => patterns.map(parseAllowPattern);

describe('parseAllowPattern', () => {
  it.each([
    ['api.example.com', { host: 'api.example.com', port: 443 }],
    ['API.Example.COM', { host: 'api.example.com', port: 443 }],
    ['api.example.com.', { host: 'api.example.com', port: 443 }],
    ['api.example.com:8443', { host: 'api.example.com', port: 8443 }],
    ['api.example.com:*', { host: 'api.example.com', port: '*' }],
    ['*', { host: '*', port: 443 }],
    ['*:*', { host: '*', port: '*' }],
    ['*.example.com', { host: '*.example.com', port: 443 }],
    ['*.example.com:80', { host: '*.example.com', port: 80 }],
    ['172.17.0.1:8080', { host: '172.17.0.1', port: 8080 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['[2001:DB8::1]', { host: '2001:db8::1', port: 443 }],
    ['2001:db8::1', { host: '2001:db8::1', port: 443 }],
  ])('%s', (pattern, rule) => {
    expect(parseAllowPattern(pattern)).toEqual(rule);
  });

  it.each(['', 'host:0', 'host:65536', 'host:abc', 'host:-1', '[::1', 'a b', 'user@host'])('rejects %j', (pattern) => {
    expect(() => parseAllowPattern(pattern)).toThrow();
  });
});

describe('normalizeHost', () => {
  it.each([
    ['Example.COM.', 'example.com'],
    ['[::1]', '::1'],
    ['[0:0:0:0:0:0:0:1]', '::1'],
    ['[::FFFF:127.0.0.1]', '::ffff:7f00:1'],
    ['10.0.0.1', '10.0.0.1'],
    ['[fe80::1%eth0]', 'fe80::1'],
  ])('%s -> %s', (host, normal) => {
    expect(normalizeHost(host)).toBe(normal);
  });
});

describe('matchesRule / findRule', () => {
  const wildcard = parseAllowPattern('*.example.com');

  it('a wildcard matches subdomains at any depth but not the bare domain', () => {
    expect(matchesRule(wildcard, 'a.example.com', 443)).toBe(true);
    expect(matchesRule(wildcard, 'a.b.example.com', 443)).toBe(true);
    expect(matchesRule(wildcard, 'A.Example.Com.', 443)).toBe(true);
    expect(matchesRule(wildcard, 'example.com', 443)).toBe(false);
    expect(matchesRule(wildcard, 'badexample.com', 443)).toBe(false);
    expect(matchesRule(wildcard, 'example.com.evil.org', 443)).toBe(false);
  });

  it('the port must match unless the rule says *', () => {
    expect(matchesRule(wildcard, 'a.example.com', 80)).toBe(false);
    expect(matchesRule(parseAllowPattern('*.example.com:*'), 'a.example.com', 80)).toBe(true);
    expect(matchesRule(parseAllowPattern('example.com'), 'example.com', 443)).toBe(true);
    expect(matchesRule(parseAllowPattern('example.com'), 'example.com', 80)).toBe(false);
  });

  it('* matches any host, IP literals included', () => {
    const any = parseAllowPattern('*:*');
    expect(matchesRule(any, 'anything.org', 1)).toBe(true);
    expect(matchesRule(any, '10.0.0.1', 22)).toBe(true);
  });

  it('an exact rule matches only that host; a wildcard never matches an IP literal', () => {
    expect(matchesRule(parseAllowPattern('example.com'), 'www.example.com', 443)).toBe(false);
    expect(matchesRule(parseAllowPattern('*.0.0.1'), '127.0.0.1', 443)).toBe(false);
    expect(matchesRule(parseAllowPattern('[::1]:80'), '[0::1]', 80)).toBe(true);
  });

  it('findRule returns the first matching rule', () => {
    const list = rules('a.org', '*.example.com:*', '*');
    expect(findRule(list, 'x.example.com', 22)).toEqual({ host: '*.example.com', port: '*' });
    expect(findRule(list, 'z.net', 443)).toEqual({ host: '*', port: 443 });
    expect(findRule(list, 'z.net', 80)).toBeUndefined();
  });
});

describe('classifyAddress', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['169.254.1.1', 'link-local'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['169.254.169.254', 'metadata'],
    ['fd00:ec2::254', 'metadata'],
    ['100.100.100.200', 'metadata'],
    ['10.0.0.5', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['100.64.0.1', 'private'],
    ['100.127.255.255', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.255', 'multicast'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:169.254.169.254', 'metadata'],
    ['::ffff:8.8.8.8', 'public'],
    ['64:ff9b::10.0.0.1', 'private'],
    ['255.255.255.255', 'private'],
    ['8.8.8.8', 'public'],
    ['172.15.255.255', 'public'],
    ['172.32.0.0', 'public'],
    ['100.63.255.255', 'public'],
    ['100.128.0.0', 'public'],
    ['2606:4700::1111', 'public'],
    ['fec0::1', 'private'],
    ['not-an-ip', 'unspecified'],
  ])('%s is %s', (ip, kind) => {
    expect(classifyAddress(ip)).toBe(kind);
  });
});

describe('decide', () => {
  it('refuses an unlisted host before looking at addresses', () => {
    expect(decide(rules('example.com'), 'other.com', 443, ['93.184.216.34'])).toEqual({ allowed: false, reason: 'it is not listed in network.allow' });
  });

  it('allows a listed host with public addresses, using the first one', () => {
    expect(decide(rules('example.com'), 'example.com', 443, ['93.184.216.34', '2606:2800::1'])).toEqual({ allowed: true, address: '93.184.216.34' });
  });

  it('refuses a listed name that resolves to a private address', () => {
    for (const list of [rules('*.example.com'), rules('internal.example.com'), rules('*')]) {
      const d = decide(list, 'internal.example.com', 443, ['10.0.0.5']);
      expect(d.allowed).toBe(false);
      expect(d.allowed === false && d.reason).toMatch(/resolves to a private address \(private\)/);
    }
  });

  it('refuses when any address is non-public (no mixing a public and a private answer)', () => {
    const d = decide(rules('example.com'), 'example.com', 443, ['93.184.216.34', '127.0.0.1']);
    expect(d).toEqual({ allowed: false, reason: expect.stringMatching(/private address \(loopback\)/) });
    expect(decide(rules('example.com'), 'example.com', 443, ['169.254.169.254']).allowed).toBe(false);
  });

  it('allows a non-public address only when a rule names that IP literal and port', () => {
    expect(decide(rules('172.17.0.1:8080'), '172.17.0.1', 8080, ['172.17.0.1'])).toEqual({ allowed: true, address: '172.17.0.1' });
    expect(decide(rules('172.17.0.1:8080'), '172.17.0.1', 8081, ['172.17.0.1']).allowed).toBe(false);
    expect(decide(rules('172.17.0.1:*'), '172.17.0.1', 22, ['172.17.0.1']).allowed).toBe(true);
    expect(decide(rules('[::1]:8080'), '::1', 8080, ['::1'])).toEqual({ allowed: true, address: '::1' });
    // A name whose address a rule names literally is allowed too (that address:port is allowed anyway).
    expect(decide(rules('db.internal:5432', '10.0.0.5:5432'), 'db.internal', 5432, ['10.0.0.5']).allowed).toBe(true);
  });

  it('a wildcard rule never allows a private IP literal', () => {
    const d = decide(rules('*:*'), '10.0.0.5', 22, ['10.0.0.5']);
    expect(d).toEqual({ allowed: false, reason: expect.stringMatching(/^it is a private address \(private\)/) });
    expect(decide(rules('*:*'), '8.8.8.8', 53, ['8.8.8.8']).allowed).toBe(true);
  });

  it('an IPv4-mapped IPv6 answer counts as its IPv4 address', () => {
    expect(decide(rules('example.com'), 'example.com', 443, ['::ffff:127.0.0.1']).allowed).toBe(false);
    expect(decide(rules('example.com'), 'example.com', 443, ['::ffff:93.184.216.34']).allowed).toBe(true);
  });

  it('refuses a name without addresses', () => {
    expect(decide(rules('example.com'), 'example.com', 443, []).allowed).toBe(false);
  });
});
