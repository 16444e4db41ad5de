/**
 * The audit trail (src/dispatch/audit.ts): the egress summary a result carries, the private append-only file,
 * finding an agent's last record from the file's tail, and the result facts a record keeps. Then through
 * runDispatch with a FAKE sandbox: one record per dispatch, refusals included, with variable names but never
 * their values. No Docker.
 */
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfig, requireConfig } from '../../src/config/load.js';
import { appendAudit, AUDIT_FILE, lastAuditRecord, resultFacts, summariseEgress, type AuditRecord } from '../../src/dispatch/audit.js';
import { runDispatch, type DispatchDeps } from '../../src/dispatch/dispatcher.js';
import { makeResult } from '../../src/dispatch/types.js';
import { AppError } from '../../src/errors.js';
import type { EgressDecision } from '../../src/gateway/protocol.js';
import { openNetworkPolicy } from '../../src/selftest/open-policy.js';
import { FakeSandbox, outcome, resultLine, succeeds } from '../helpers/fake-sandbox.js';

let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-audit-'));
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function decision(host: string, port: number, allowed: boolean, extra: Partial<EgressDecision> = {}): EgressDecision {
  return { time: '2025-01-01T00:00:00.000Z', kind: 'connect', host, port, allowed, bytesOut: 0, bytesIn: 0, ...(allowed ? {} : { reason: 'not in network.allow' }), ...extra };
}

function record(agent: string, fields: Partial<AuditRecord> = {}): AuditRecord {
  return { time: new Date().toISOString(), job: 'j'.repeat(32), agent, success: true, duration_ms: 1, ...fields };
}

function lines(dir: string): AuditRecord[] {
  return readFileSync(join(dir, AUDIT_FILE), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as AuditRecord);
}

// ---------------------------------------------------------------------------------------------------------------
describe('summariseEgress', () => {
  it('counts allowed and denied decisions', () => {
    const summary = summariseEgress([decision('api.anthropic.com', 443, true, { kind: 'api' }), decision('a.example', 443, true), decision('evil.example', 443, false)]);
    expect(summary).toEqual({ allowed: 2, denied: 1, denied_hosts: ['evil.example:443'] });
  });

  it('no decisions: zeros, and not unavailable', () => {
    expect(summariseEgress([])).toEqual({ allowed: 0, denied: 0, denied_hosts: [] });
    expect(summariseEgress([])).not.toHaveProperty('unavailable');
  });

  it('denied_hosts are host:port, deduplicated, in first-seen order; a host on two ports is two entries', () => {
    const summary = summariseEgress([
      decision('b.example', 443, false),
      decision('a.example', 80, false),
      decision('b.example', 443, false),
      decision('a.example', 80, false),
      decision('a.example', 443, false),
      decision('ok.example', 443, true),
    ]);
    expect(summary).toEqual({ allowed: 1, denied: 5, denied_hosts: ['b.example:443', 'a.example:80', 'a.example:443'] });
  });

  it('denied_hosts stop at 20 distinct entries; the denied count does not', () => {
    const denied = Array.from({ length: 30 }, (_, i) => decision(`h${i}.example`, 443, false));
    const summary = summariseEgress([...denied, ...denied]);
    expect(summary.denied).toBe(60);
    expect(summary.denied_hosts).toHaveLength(20);
    expect(summary.denied_hosts).toEqual(Array.from({ length: 20 }, (_, i) => `h${i}.example:443`));
  });

  it('undefined (the gateway could not report) → unavailable, zero counts', () => {
    expect(summariseEgress(undefined)).toEqual({ allowed: 0, denied: 0, denied_hosts: [], unavailable: true });
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('appendAudit', () => {
  it('creates the directory 0700 and the file 0600', () => {
    const dir = join(root, 'state', 'nested');
    appendAudit(dir, record('api'));
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, AUDIT_FILE)).mode & 0o777).toBe(0o600);
  });

  it('the file is 0600 whatever the umask', () => {
    const old = process.umask(0);
    try {
      appendAudit(root, record('api'));
    } finally {
      process.umask(old);
    }
    expect(statSync(join(root, AUDIT_FILE)).mode & 0o777).toBe(0o600);
  });

  it('one JSON line per record, appended in order, earlier ones kept', () => {
    appendAudit(root, record('api', { job: 'first' }));
    appendAudit(root, record('web', { job: 'second' }));
    appendAudit(root, record('api', { job: 'third', success: false, error_type: 'sandbox' }));
    const text = readFileSync(join(root, AUDIT_FILE), 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(text.split('\n')).toHaveLength(4);
    expect(lines(root).map((r) => r.job)).toEqual(['first', 'second', 'third']);
    expect(lines(root)[2]).toMatchObject({ agent: 'api', success: false, error_type: 'sandbox' });
  });

  it('a value with newlines stays on one line', () => {
    appendAudit(root, record('api', { goal: 'line one\nline two\r\n', caller: '}\n{"agent":"evil"}' }));
    expect(lines(root)).toHaveLength(1);
    expect(lines(root)[0]!.goal).toBe('line one\nline two\r\n');
  });

  it('appends to an existing file rather than replacing it', () => {
    writeFileSync(join(root, AUDIT_FILE), `${JSON.stringify(record('old'))}\n`, { mode: 0o600 });
    appendAudit(root, record('new'));
    expect(lines(root).map((r) => r.agent)).toEqual(['old', 'new']);
  });

  it('makes an existing file that was loosened private again', () => {
    writeFileSync(join(root, AUDIT_FILE), '', { mode: 0o644 });
    chmodSync(join(root, AUDIT_FILE), 0o644);
    appendAudit(root, record('api'));
    expect(statSync(join(root, AUDIT_FILE)).mode & 0o777).toBe(0o600);
  });

  it('throws when it cannot write (the caller logs it)', () => {
    const file = join(root, 'not-a-dir');
    writeFileSync(file, 'x');
    expect(() => appendAudit(file, record('api'))).toThrow();
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('lastAuditRecord', () => {
  it('skips lines of another kind (config-change), which are not dispatches', () => {
    appendAudit(root, record('api', { job: 'dispatch' }));
    appendAudit(root, { kind: 'config-change', time: new Date().toISOString(), agent: 'api', via: 'mcp', tool: 'update_agent', policy: { from: 'default', to: 'builder' }, mode: 'narrow-only', outcome: 'refused', reason: 'wider' });
    expect(lastAuditRecord(root, 'api')?.job).toBe('dispatch');
    expect(readFileSync(join(root, AUDIT_FILE), 'utf8').trim().split('\n')).toHaveLength(2);
  });

  it("the agent's most recent record among other agents' records", () => {
    appendAudit(root, record('api', { job: 'a1' }));
    appendAudit(root, record('web', { job: 'w1' }));
    appendAudit(root, record('api', { job: 'a2' }));
    appendAudit(root, record('web', { job: 'w2' }));
    expect(lastAuditRecord(root, 'api')?.job).toBe('a2');
    expect(lastAuditRecord(root, 'web')?.job).toBe('w2');
  });

  it('an agent with no record → undefined', () => {
    appendAudit(root, record('api'));
    expect(lastAuditRecord(root, 'web')).toBeUndefined();
  });

  it('an agent whose name is a prefix of another agent does not match the longer name', () => {
    appendAudit(root, record('api', { job: 'short' }));
    appendAudit(root, record('api-v2', { job: 'long' }));
    appendAudit(root, record('apiv2', { job: 'longer' }));
    expect(lastAuditRecord(root, 'api')?.job).toBe('short');
    expect(lastAuditRecord(root, 'api-v2')?.job).toBe('long');
    appendAudit(root, record('web', { job: 'only-web' }));
    expect(lastAuditRecord(root, 'we')).toBeUndefined();
  });

  it('a record that merely mentions the agent in another field does not count', () => {
    appendAudit(root, record('api', { job: 'real' }));
    appendAudit(root, record('web', { job: 'mention', goal: 'ask "agent":"api" something', caller: 'api' }));
    expect(lastAuditRecord(root, 'api')?.job).toBe('real');
  });

  it('a corrupt or cut line is skipped; the record before it is found', () => {
    appendAudit(root, record('api', { job: 'good' }));
    const full = JSON.stringify(record('api', { job: 'cut' }));
    const cut = full.slice(0, full.indexOf('"agent":"api"') + 20);
    expect(cut).toContain('"agent":"api"');
    appendFileSync(join(root, AUDIT_FILE), `${cut}\n{"agent":"api", not json\n`);
    expect(lastAuditRecord(root, 'api')?.job).toBe('good');
  });

  it('a cut first line (the tail starts mid-record) is skipped', () => {
    const full = JSON.stringify(record('api', { job: 'cut-first' }));
    writeFileSync(join(root, AUDIT_FILE), `${full.slice(5)}\n`, { mode: 0o600 });
    expect(lastAuditRecord(root, 'api')).toBeUndefined();
    appendAudit(root, record('api', { job: 'after' }));
    expect(lastAuditRecord(root, 'api')?.job).toBe('after');
  });

  it('a missing file or directory → undefined', () => {
    expect(lastAuditRecord(root, 'api')).toBeUndefined();
    expect(lastAuditRecord(join(root, 'nowhere'), 'api')).toBeUndefined();
  });

  it('an empty file → undefined', () => {
    writeFileSync(join(root, AUDIT_FILE), '');
    expect(lastAuditRecord(root, 'api')).toBeUndefined();
  });

  it('a file larger than the 4 MiB tail still yields the last record', () => {
    const path = join(root, AUDIT_FILE);
    appendAudit(root, record('api', { job: 'ancient' }));
    // ~6 MiB of other agents' records, so the first record lies before the tail and the tail starts mid-line
    const filler = `${JSON.stringify(record('web', { goal: 'x'.repeat(1000) }))}\n`;
    appendFileSync(path, filler.repeat(Math.ceil((6 * 1024 * 1024) / filler.length)));
    appendAudit(root, record('api', { job: 'recent' }));
    appendFileSync(path, filler.repeat(100));
    expect(statSync(path).size).toBeGreaterThan(4 * 1024 * 1024);
    expect(lastAuditRecord(root, 'api')?.job).toBe('recent');
    expect(lastAuditRecord(root, 'web')?.goal).toHaveLength(1000);
  });

  it('a record older than the 4 MiB tail is not found (bounded read)', () => {
    const path = join(root, AUDIT_FILE);
    appendAudit(root, record('api', { job: 'ancient' }));
    const filler = `${JSON.stringify(record('web', { goal: 'x'.repeat(1000) }))}\n`;
    appendFileSync(path, filler.repeat(Math.ceil((5 * 1024 * 1024) / filler.length)));
    expect(lastAuditRecord(root, 'api')).toBeUndefined();
  });

  it('a record with non-ASCII text (multi-byte UTF-8) round-trips', () => {
    appendAudit(root, record('api', { goal: 'résumé — 日本語 🚀' }));
    expect(lastAuditRecord(root, 'api')?.goal).toBe('résumé — 日本語 🚀');
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('resultFacts', () => {
  it('a success: success, cost and session id; no error_type', () => {
    const facts = resultFacts(makeResult({ agent: 'api', success: true, result: 'done', cost_usd: 0.25, session_id: 'sess-1', duration_ms: 10, num_turns: 2 }));
    expect(facts).toEqual({ success: true, cost_usd: 0.25, session_id: 'sess-1' });
  });

  it('a failure: success false and its error_type; the result text and error message are not kept', () => {
    const facts = resultFacts(makeResult({ agent: 'api', success: false, result: 'secret-ish output', error: 'boom', error_type: 'sandbox', hint: 'h' }));
    expect(facts).toEqual({ success: false, error_type: 'sandbox' });
  });

  it('a zero cost is kept (0 is a real cost); an empty session id is not', () => {
    expect(resultFacts({ agent: 'api', success: true, result: '', cost_usd: 0, session_id: '' })).toEqual({ success: true, cost_usd: 0 });
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('runDispatch writes one audit record per dispatch', () => {
  const SECRET = 'server-secret-value-never-audited-7f3a';
  const API_KEY = 'sk-unit-audit-key-never-audited-9c1e';

  function install() {
    const configDir = join(root, 'config');
    mkdirSync(join(configDir, 'policies'), { recursive: true });
    writeFileSync(join(configDir, 'policies', 'open.yaml'), stringify(openNetworkPolicy('agent-dispatch/agent:unit', { env: { pass: ['PASSED_SECRET'], set: {} } })));
    writeFileSync(join(configDir, 'policies', 'gw.yaml'), stringify(openNetworkPolicy('agent-dispatch/agent:unit', { env: { pass: ['PASSED_SECRET'], set: {} }, network: { mode: 'gateway', allow: ['registry.npmjs.org'] }, credentials: 'inject' })));
    const project = join(root, 'projects', 'api');
    mkdirSync(project, { recursive: true });
    writeFileSync(join(project, 'README.md'), '# api\n');
    const configPath = join(configDir, 'agents.yaml');
    const agents = {
      api: { directory: project, policy: 'open' },
      gated: { directory: project, policy: 'gw' },
      lost: { directory: join(root, 'gone'), policy: 'open' },
    };
    writeFileSync(configPath, stringify({ agents, groups: {}, settings: {} }), { mode: 0o600 });
    const env = { PATH: process.env['PATH'], HOME: root, AGENT_DISPATCH_CONFIG: configPath, ANTHROPIC_API_KEY: API_KEY, PASSED_SECRET: SECRET };
    const deps = (sandbox: FakeSandbox): DispatchDeps => ({ config: requireConfig(loadConfig(configPath)), configDir, env, sandbox });
    return { configDir, deps };
  }

  it('a preflight refusal (missing directory) and a success: two records, names but no values', async () => {
    const { configDir, deps } = install();
    const sandbox = new FakeSandbox(succeeds());
    const refused = await runDispatch(deps(sandbox), { agent: 'lost', task: 't', caller: 'me', goal: 'g' });
    expect(refused).toMatchObject({ success: false, error_type: 'not_found' });
    expect(sandbox.runs).toHaveLength(0);
    expect(existsSync(join(configDir, AUDIT_FILE))).toBe(true);
    expect(lines(configDir)).toHaveLength(1);

    const ok = await runDispatch(deps(sandbox), { agent: 'api', task: 'Summarise', caller: 'web-agent', goal: 'ship' });
    expect(ok.success).toBe(true);
    const records = lines(configDir);
    expect(records).toHaveLength(2);

    const [first, second] = records as [AuditRecord, AuditRecord];
    expect(first).toMatchObject({ agent: 'lost', success: false, error_type: 'not_found', caller: 'me', goal: 'g' });
    expect(first.job).toMatch(/^[0-9a-f]{32}$/);
    // refused before a sandbox was compiled: nothing about one
    for (const key of ['policy', 'image', 'mounts', 'env_names', 'network', 'exit_code', 'egress', 'egress_lost']) expect(first).not.toHaveProperty(key);

    expect(second).toMatchObject({ agent: 'api', success: true, caller: 'web-agent', goal: 'ship', network: 'open', exit_code: 0, image: { name: 'agent-dispatch/agent:unit', id: 'sha256:1' }, policy: { name: 'open' } });
    expect(second.session_id).toBeTruthy();
    expect(second.cost_usd).toBeGreaterThan(0);
    expect(second.duration_ms).toBeGreaterThanOrEqual(0);
    expect(Number.isNaN(Date.parse(second.time))).toBe(false);
    expect(second.env_names).toContain('PASSED_SECRET');
    expect(second.env_names).toContain('ANTHROPIC_API_KEY');
    expect(second.env_names).toEqual([...second.env_names!].sort());
    expect(second).not.toHaveProperty('egress');

    // the values reached the container env ...
    expect(sandbox.last.spec.Env).toContain(`PASSED_SECRET=${SECRET}`);
    // ... and never the audit file
    const text = readFileSync(join(configDir, AUDIT_FILE), 'utf8');
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(API_KEY);
    expect(text).not.toContain('Summarise');
    expect(statSync(join(configDir, AUDIT_FILE)).mode & 0o777).toBe(0o600);
  });

  it('a sandbox failure and a gateway dispatch: its decisions, or egress_lost when they are lost', async () => {
    const { configDir, deps } = install();
    const decisions = [decision('api.anthropic.com', 443, true, { kind: 'api', method: 'POST', path: '/v1/messages', status: 200 }), decision('evil.example', 443, false)];
    const sandbox = new FakeSandbox(
      () => outcome({ stdoutLines: [resultLine()], egress: decisions }),
      () => outcome({ stdoutLines: [resultLine()], egress: undefined }),
    );
    await runDispatch(deps(sandbox), { agent: 'gated', task: 't' });
    await runDispatch(deps(sandbox), { agent: 'gated', task: 't' });
    const [withDecisions, lost] = lines(configDir) as [AuditRecord, AuditRecord];
    expect(withDecisions).toMatchObject({ network: 'gateway', egress: decisions, success: true });
    expect(withDecisions).not.toHaveProperty('egress_lost');
    // the bridge's variables are in the container too (added by the runner), so their names are listed
    expect(withDecisions.env_names).toEqual(expect.arrayContaining(['ANTHROPIC_API_KEY', 'HTTPS_PROXY', 'ANTHROPIC_BASE_URL']));
    expect(lost).toMatchObject({ network: 'gateway', egress_lost: true });
    expect(lost).not.toHaveProperty('egress');
    // under credentials: inject the container holds the placeholder, never the key (and neither does the audit)
    expect(sandbox.last.spec.Env.some((e) => e.includes(API_KEY))).toBe(false);
    expect(readFileSync(join(configDir, AUDIT_FILE), 'utf8')).not.toContain(API_KEY);
    expect(lastAuditRecord(configDir, 'gated')).toEqual(lost);
  });

  it('a sandbox that throws: the record says sandbox, with no exit code', async () => {
    const { configDir, deps } = install();
    const sandbox = new FakeSandbox(() => {
      throw new AppError('SANDBOX_FAILED', 'the engine is gone');
    });
    const result = await runDispatch(deps(sandbox), { agent: 'api', task: 't' });
    expect(result).toMatchObject({ success: false, error_type: 'sandbox' });
    const [only] = lines(configDir) as [AuditRecord];
    expect(only).toMatchObject({ agent: 'api', success: false, error_type: 'sandbox', network: 'open', policy: { name: 'open' } });
    expect(only).not.toHaveProperty('exit_code');
    expect(only.image).toEqual({ name: 'agent-dispatch/agent:unit' });
  });

  it('an unwritable audit location does not fail the dispatch', async () => {
    const { configDir, deps } = install();
    mkdirSync(join(configDir, AUDIT_FILE));
    const result = await runDispatch(deps(new FakeSandbox(succeeds())), { agent: 'api', task: 't' });
    expect(result.success).toBe(true);
  });
});
