import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { PRESETS_DIR, presetNames } from '../../src/policy/load.js';
import { PERMISSION_MODES, policySchema, type Policy, type PolicyInput } from '../../src/policy/schema.js';
import { hostPatternCovers, policyWidenings, widenedAxes } from '../../src/policy/widening.js';

/** A policy with the schema's defaults, plus `over` (sections merged one level deep). */
function policy(over: Partial<Record<keyof PolicyInput, unknown>> = {}): Policy {
  return policySchema.parse({ version: 1, ...over });
}

function preset(name: string): Policy {
  return policySchema.parse(parse(readFileSync(join(PRESETS_DIR, `${name}.yaml`), 'utf8')));
}

const axes = (current: Policy, proposed: Policy) => widenedAxes(policyWidenings(current, proposed));
const details = (current: Policy, proposed: Policy) => policyWidenings(current, proposed).map((w) => w.detail);

describe('policyWidenings: one axis at a time, both directions', () => {
  // [axis, narrower, wider]: wider must be reported on exactly that axis, narrower (and equal) never.
  const cases: [string, Policy, Policy][] = [
    ['repo', policy({ repo: 'ro' }), policy({ repo: 'overlay' })],
    ['repo', policy({ repo: 'overlay' }), policy({ repo: 'rw' })],
    ['repo', policy({ repo: 'ro' }), policy({ repo: 'rw' })],
    ['credentials', policy({ credentials: 'inject' }), policy({ credentials: 'env' })],
    ['network', policy({ network: { mode: 'gateway' } }), policy({ network: { mode: 'open' } })],
    ['network', policy({ network: { allow: [] } }), policy({ network: { allow: ['pypi.org'] } })],
    ['network', policy({ network: { allow: ['a.example.com'] } }), policy({ network: { allow: ['*.example.com'] } })],
    ['network', policy({ network: { allow: ['*.example.com'] } }), policy({ network: { allow: ['*'] } })],
    ['network', policy({ network: { allow: ['db.internal:5432'] } }), policy({ network: { allow: ['db.internal:*'] } })],
    ['mounts', policy({ mounts: [] }), policy({ mounts: [{ source: '/data', mode: 'ro' }] })],
    ['mounts', policy({ mounts: [{ source: '/data', mode: 'ro' }] }), policy({ mounts: [{ source: '/data', mode: 'rw' }] })],
    ['mounts', policy({ mounts: [{ source: '/data/sub', mode: 'ro' }] }), policy({ mounts: [{ source: '/data', mode: 'ro' }] })],
    ['env', policy({ env: { pass: [] } }), policy({ env: { pass: ['DATABASE_URL'] } })],
    ['env', policy({ env: { set: {} } }), policy({ env: { set: { LOG_LEVEL: 'debug' } } })],
    ['tools', policy({ tools: { permission_mode: 'default' } }), policy({ tools: { permission_mode: 'bypassPermissions' } })],
    ['tools', policy({ tools: { allow: ['Read'] } }), policy({ tools: { allow: ['Read', 'Bash'] } })],
    ['tools', policy({ tools: { allow: ['Read'] } }), policy({ tools: { allow: null } })],
    ['tools', policy({ tools: { allow: ['Bash(git diff *)'] } }), policy({ tools: { allow: ['Bash'] } })],
    ['tools', policy({ tools: { deny: ['Bash', 'WebFetch'] } }), policy({ tools: { deny: ['WebFetch'] } })],
    ['resources', policy({ resources: { memory: '1g' } }), policy({ resources: { memory: '2g' } })],
    ['resources', policy({ resources: { memory: '1g' } }), policy({ resources: { memory: '1025m' } })],
    ['resources', policy({ resources: { cpus: 1 } }), policy({ resources: { cpus: 1.5 } })],
    ['resources', policy({ resources: { pids: 256 } }), policy({ resources: { pids: 512 } })],
    ['resources', policy({ resources: { nofile: 2048 } }), policy({ resources: { nofile: 4096 } })],
    ['resources', policy({ resources: { tmp_size: '128m' } }), policy({ resources: { tmp_size: '1g' } })],
    ['resources', policy({ resources: { timeout: 600 } }), policy({ resources: { timeout: 3600 } })],
  ];

  it.each(cases)('%s: the wider one is reported on that axis only', (axis, narrower, wider) => {
    expect(axes(narrower, wider)).toEqual([axis]);
  });

  it.each(cases)('%s: narrowing, or keeping, is never reported', (_axis, narrower, wider) => {
    expect(policyWidenings(wider, narrower)).toEqual([]);
    expect(policyWidenings(narrower, narrower)).toEqual([]);
    expect(policyWidenings(wider, wider)).toEqual([]);
  });

  it('the image is an axis of its own: any other image is wider (its contents are unknown)', () => {
    expect(axes(policy(), policy({ image: 'someone/else:latest' }))).toEqual(['image']);
  });

  it('description and version grant nothing', () => {
    expect(policyWidenings(policy({ description: 'a' }), policy({ description: 'b' }))).toEqual([]);
  });

  it('a widening on several axes names each axis once, in a stable order', () => {
    const wide = policy({ repo: 'rw', credentials: 'env', network: { mode: 'open' }, tools: { permission_mode: 'bypassPermissions', allow: null }, env: { pass: ['A', 'B'] } });
    expect(axes(policy({ tools: { allow: ['Read'] } }), wide)).toEqual(['repo', 'env', 'credentials', 'network', 'tools']);
  });
});

describe('permission modes follow the order the agent narrowing uses', () => {
  const pairs = PERMISSION_MODES.flatMap((a, i) => PERMISSION_MODES.map((b, j) => [a, b, j > i] as const));
  it.each(pairs)('%s → %s widens: %s', (from, to, wider) => {
    const found = policyWidenings(policy({ tools: { permission_mode: from } }), policy({ tools: { permission_mode: to } }));
    expect(found.length > 0).toBe(wider);
  });
});

describe('details say what grows, without env.set values', () => {
  it('names added hosts, tools, env names and mounts', () => {
    const current = policy({ tools: { allow: ['Read'] } });
    const proposed = policy({
      network: { allow: ['pypi.org'] },
      tools: { allow: ['Read', 'Bash'] },
      env: { pass: ['TOKEN_NAME'], set: { SECRETISH: 'hunter2' } },
      mounts: [{ source: '/srv/data', target: '/data', mode: 'rw' }],
    });
    const text = details(current, proposed).join('\n');
    expect(text).toContain('network.allow adds pypi.org');
    expect(text).toContain('tools.allow adds Bash');
    expect(text).toContain('env.pass adds TOKEN_NAME');
    expect(text).toContain('env.set adds SECRETISH');
    expect(text).toContain('mounts add /srv/data (rw) at /data');
    expect(text).not.toContain('hunter2');
  });

  it('a changed env.set value counts, and says changes', () => {
    expect(details(policy({ env: { set: { A: '1' } } }), policy({ env: { set: { A: '2' } } }))).toEqual(['env.set changes A']);
    expect(policyWidenings(policy({ env: { set: { A: '1', B: '2' } } }), policy({ env: { set: { A: '1' } } }))).toEqual([]);
  });
});

describe('mount coverage', () => {
  const held = { source: '/srv/data', target: '/data', mode: 'rw' as const };
  it.each([
    [{ source: '/srv/data', target: '/data', mode: 'ro' as const }, true],
    [{ source: '/srv/data/', target: '/data/', mode: 'rw' as const }, true],
    [{ source: '/srv/data/sub', target: '/data/sub', mode: 'ro' as const }, true],
    [{ source: '/srv/data/sub', target: '/elsewhere', mode: 'ro' as const }, false],
    [{ source: '/srv/data2', target: '/data2', mode: 'ro' as const }, false],
    [{ source: '/srv', target: '/srv', mode: 'ro' as const }, false],
    [{ source: '/srv/data/../secrets', target: '/secrets', mode: 'ro' as const }, false],
    [{ source: '~/data', mode: 'ro' as const }, false],
  ])('%j covered by /srv/data → /data (rw): %s', (mount, covered) => {
    expect(policyWidenings(policy({ mounts: [held] }), policy({ mounts: [mount] })).length === 0).toBe(covered);
  });

  it('a mount without a target lands at its source path', () => {
    expect(policyWidenings(policy({ mounts: [{ source: '/srv/data', mode: 'ro' }] }), policy({ mounts: [{ source: '/srv/data', target: '/srv/data', mode: 'ro' }] }))).toEqual([]);
  });
});

describe('hostPatternCovers follows the gateway matching', () => {
  it.each([
    ['*', 'anything.example.com', true],
    ['*', '*.example.com', true],
    ['*:*', 'db:5432', true],
    ['*', 'db:5432', false],
    ['*.example.com', 'api.example.com', true],
    ['*.example.com', 'a.b.example.com', true],
    ['*.example.com', '*.api.example.com', true],
    ['*.example.com', '*.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'evilexample.com', false],
    ['*.example.com', '*', false],
    ['api.example.com', 'api.example.com:443', true],
    ['API.example.com', 'api.example.com', true],
    ['api.example.com', 'api.example.com:8443', false],
    ['api.example.com:*', 'api.example.com:8443', true],
    ['api.example.com', '*.api.example.com', false],
  ])('%s covers %s: %s', (held, pattern, covered) => {
    expect(hostPatternCovers(held, pattern)).toBe(covered);
  });
});

describe('the shipped presets', () => {
  const names = presetNames();

  it('are ordered readonly-inspector ⊂ default, and builder is wider than both', () => {
    expect(names).toEqual(expect.arrayContaining(['builder', 'default', 'readonly-inspector']));
    expect(policyWidenings(preset('default'), preset('readonly-inspector'))).toEqual([]);
    expect(axes(preset('readonly-inspector'), preset('default'))).toEqual(['tools', 'resources']);
    expect(axes(preset('default'), preset('builder'))).toEqual(['repo', 'network', 'tools', 'resources']);
  });

  it.each(names)('%s is no wider than itself', (name) => {
    expect(policyWidenings(preset(name), preset(name))).toEqual([]);
  });
});

describe('fails closed on keys it has no rule for', () => {
  it('a top-level key without a rule counts as widened whenever it differs', () => {
    const current = policy();
    const proposed = { ...policy(), future_knob: 'wide open' } as unknown as Policy;
    expect(policyWidenings(current, proposed)).toEqual([{ axis: 'other', detail: 'future_knob changes' }]);
    expect(policyWidenings(proposed, proposed)).toEqual([]);
  });

  it('a sub-key without a rule inside network, tools or env counts too', () => {
    const current = policy();
    for (const section of ['network', 'tools', 'env'] as const) {
      const proposed = { ...current, [section]: { ...current[section], extra: true } } as unknown as Policy;
      expect(details(current, proposed)).toEqual([`${section}.extra changes`]);
    }
  });

  it('tools.mcp_servers: none ⊂ a list ⊂ repo', () => {
    const withServers = (value: unknown) => ({ ...policy(), tools: { ...policy().tools, mcp_servers: value } }) as unknown as Policy;
    expect(details(withServers('none'), withServers(['db']))).toEqual(['tools.mcp_servers adds db']);
    expect(details(withServers(['db']), withServers('repo'))).toEqual(['tools.mcp_servers adds every server in the repo']);
    expect(policyWidenings(withServers('repo'), withServers(['db']))).toEqual([]);
    expect(policyWidenings(withServers(['db', 'logs']), withServers(['db']))).toEqual([]);
    expect(policyWidenings(withServers(['db']), withServers('none'))).toEqual([]);
  });

  it('repo_git: protected → writable widens the repo axis', () => {
    const git = (value: string) => ({ ...policy(), repo_git: value }) as unknown as Policy;
    expect(axes(git('protected'), git('writable'))).toEqual(['repo']);
    expect(policyWidenings(git('writable'), git('protected'))).toEqual([]);
  });
});
