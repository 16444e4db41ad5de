/**
 * The small pieces the dispatch orchestration stands on: the container slots, the job store behind
 * return_ref / fetch_result, the group / ref / fingerprint helpers of dispatch/refs, the runner's line
 * collector, the extra container labels and the owner labels the reaper judges. No Docker, no network.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { configSchema, type DispatchConfig } from '../../src/config/schema.js';
import {
  agentFingerprint,
  DEFAULT_SUMMARY_CHARS,
  fetchedResult,
  MAX_SUMMARY_CHARS,
  mergeGroupContext,
  refPayload,
  requireGroupMember,
} from '../../src/dispatch/refs.js';
import { isValidJobId, JobStore, requireJobId } from '../../src/dispatch/job-store.js';
import { containerLabels } from '../../src/dispatch/service.js';
import { Slots } from '../../src/dispatch/slots.js';
import { makeResult, type DispatchResult } from '../../src/dispatch/types.js';
import { LABEL_PREFIX } from '../../src/policy/layout.js';
import { LineCollector } from '../../src/sandbox/lines.js';
import { LABELS, ownerIsGone, ownerLabels, pidNamespace, processStartTime, serverIdentity } from '../../src/sandbox/owner.js';

let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-support-'));
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Let every queued promise callback run (Slots hands slots over in microtasks). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i += 1) await Promise.resolve();
}

function config(data: Record<string, unknown>): DispatchConfig {
  return configSchema.parse(data);
}

function result(fields: Partial<DispatchResult> = {}): DispatchResult {
  return makeResult({ agent: 'api', success: true, result: 'hello world', ...fields });
}

// ---------------------------------------------------------------------------------------------------------------
describe('Slots', () => {
  it('runs at most `limit` pieces of work at once and hands the slot to the next waiter in order', async () => {
    const slots = new Slots(() => 2);
    const gates = [deferred(), deferred(), deferred(), deferred()];
    const started: number[] = [];
    const runs = gates.map((gate, i) =>
      slots.with(async () => {
        started.push(i);
        await gate.promise;
        return i;
      }),
    );
    await settle();
    expect(started).toEqual([0, 1]);
    expect(slots.inFlight).toBe(2);

    gates[1]!.resolve();
    await settle();
    expect(started).toEqual([0, 1, 2]);
    expect(slots.inFlight).toBe(2);

    gates[0]!.resolve();
    gates[2]!.resolve();
    gates[3]!.resolve();
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3]);
    expect(slots.inFlight).toBe(0);
  });

  it('reads the limit on every acquire, so a raised limit applies to the next piece of work', async () => {
    let limit = 1;
    const slots = new Slots(() => limit);
    const first = deferred();
    const a = slots.with(() => first.promise);
    await settle();
    expect(slots.inFlight).toBe(1);

    limit = 2;
    const second = deferred();
    let secondStarted = false;
    const b = slots.with(async () => {
      secondStarted = true;
      await second.promise;
    });
    await settle();
    expect(secondStarted).toBe(true);
    expect(slots.inFlight).toBe(2);

    // Lowering it again makes the next one wait until the running ones are down to the new limit.
    limit = 1;
    let thirdStarted = false;
    const c = slots.with(async () => {
      thirdStarted = true;
    });
    await settle();
    expect(thirdStarted).toBe(false);
    first.resolve();
    await settle();
    expect(thirdStarted).toBe(false);
    second.resolve();
    await Promise.all([a, b, c]);
    expect(thirdStarted).toBe(true);
    expect(slots.inFlight).toBe(0);
  });

  it('a limit below 1 still lets one piece of work run', async () => {
    const slots = new Slots(() => 0);
    expect(await slots.with(async () => 'ran')).toBe('ran');
  });

  it('releases the slot when the work throws, and the waiter gets it', async () => {
    const slots = new Slots(() => 1);
    const failing = deferred();
    const a = slots.with(() => failing.promise);
    let waiterRan = false;
    const b = slots.with(async () => {
      waiterRan = true;
      return 'b';
    });
    await settle();
    expect(waiterRan).toBe(false);
    failing.reject(new Error('boom'));
    await expect(a).rejects.toThrow('boom');
    expect(await b).toBe('b');
    expect(waiterRan).toBe(true);
    expect(slots.inFlight).toBe(0);
  });

  it('a synchronous throw inside the work also releases the slot', async () => {
    const slots = new Slots(() => 1);
    await expect(
      slots.with(() => {
        throw new Error('sync boom');
      }),
    ).rejects.toThrow('sync boom');
    expect(slots.inFlight).toBe(0);
    expect(await slots.with(async () => 1)).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('JobStore', () => {
  const ID = '0123456789abcdef0123456789abcdef';

  it('createCompleted writes a 0600 file in a 0700 directory it creates', async () => {
    const dir = join(root, 'jobs');
    const store = new JobStore(dir);
    const record = await store.createCompleted({ agent: 'api', task: 'do it', context: 'ctx', caller: '', goal: 'g', result: result() });
    expect(isValidJobId(record.id)).toBe(true);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const file = join(dir, `${record.id}.json`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual([`${record.id}.json`]);
  });

  it('round-trips through get(); a success is done, a failure is failed with its error', async () => {
    const store = new JobStore(join(root, 'jobs'));
    const done = await store.createCompleted({ agent: 'api', task: 't', context: 'c', caller: 'me', goal: '', result: result() }, ID);
    expect(done.id).toBe(ID);
    const read = store.get(ID);
    expect(read).toEqual(done);
    expect(read).toMatchObject({ id: ID, agent: 'api', task: 't', context: 'c', caller: 'me', status: 'done', result: result() });
    expect(read).not.toHaveProperty('goal');
    expect(read).not.toHaveProperty('error');
    expect(read!.started_at).toBe(read!.completed_at);

    const failedResult = result({ success: false, result: '', error: 'it broke', error_type: 'cli_error' });
    const failed = await store.createCompleted({ agent: 'api', task: 't', result: failedResult });
    expect(store.get(failed.id)).toMatchObject({ status: 'failed', error: 'it broke', result: failedResult });
  });

  it('get() of a valid but unknown id is undefined', () => {
    expect(new JobStore(join(root, 'jobs')).get(ID)).toBeUndefined();
  });

  it('get() of an unparseable file or a record with another id is undefined', async () => {
    const dir = join(root, 'jobs');
    mkdirSync(dir);
    writeFileSync(join(dir, `${ID}.json`), '{not json');
    const store = new JobStore(dir);
    expect(store.get(ID)).toBeUndefined();
    writeFileSync(join(dir, `${ID}.json`), JSON.stringify({ id: 'f'.repeat(32), agent: 'x' }));
    expect(store.get(ID)).toBeUndefined();
  });

  const INVALID = ['../x', '..%2f..', ID.toUpperCase(), ID.slice(0, 31), `${ID}0`, '', ` ${ID}`, `${ID}\n`, `../${ID.slice(3)}`];

  it.each(INVALID)('invalid id %j: get() is undefined without touching the file system', (id) => {
    const dir = join(root, 'jobs');
    const store = new JobStore(dir);
    // A record sitting exactly where a path-joining store would look for it.
    const planted = join(dir, `${id}.json`);
    mkdirSync(dirname(planted), { recursive: true });
    writeFileSync(planted, JSON.stringify({ id, agent: 'planted', task: 't', status: 'done', created_at: 0 }));
    expect(store.get(id)).toBeUndefined();
  });

  it.each(INVALID)('invalid id %j: createCompleted refuses with INVALID_INPUT and writes nothing', async (id) => {
    const dir = join(root, 'jobs');
    const store = new JobStore(dir);
    await expect(store.createCompleted({ agent: 'api', task: 't', result: result() }, id)).rejects.toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT', message: `Invalid job_id format: '${id}' (expected a 32-char hex id)` }),
    );
    expect(existsSync(dir)).toBe(false);
    expect(readdirSync(root)).toEqual([]);
  });

  it('requireJobId names what it checked', () => {
    expect(requireJobId(ID)).toBe(ID);
    expect(() => requireJobId('nope')).toThrow("Invalid ref format: 'nope' (expected a 32-char hex id)");
    expect(() => requireJobId('nope', 'job_id')).toThrow("Invalid job_id format: 'nope'");
    expect(isValidJobId(42)).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('dispatch/refs: groups', () => {
  const cfg = () =>
    config({
      agents: { api: { directory: root }, web: { directory: root }, db: { directory: root } },
      groups: {
        team: { description: 'd', shared_context: '  The shared bit.  \n', members: [{ agent: 'api' }, { agent: 'web' }] },
        empty: { members: [] },
        quiet: { shared_context: '   ', members: [{ agent: 'api' }] },
      },
    });

  it('requireGroupMember passes for a member', () => {
    expect(() => requireGroupMember(cfg(), 'team', 'api')).not.toThrow();
  });

  it('unknown group → GROUP_NOT_FOUND listing the groups', () => {
    expect(() => requireGroupMember(cfg(), 'nope', 'api')).toThrow(
      expect.objectContaining({ code: 'GROUP_NOT_FOUND', message: "Unknown group: 'nope'. Available: team, empty, quiet" }),
    );
    expect(() => requireGroupMember(config({}), 'nope', 'api')).toThrow("Unknown group: 'nope'. Available: (none configured)");
  });

  it('a group with no members', () => {
    expect(() => requireGroupMember(cfg(), 'empty', 'api')).toThrow(
      expect.objectContaining({
        code: 'INVALID_INPUT',
        message: "Group 'empty' has no members yet. Add some with 'agent-dispatch group add' or by editing agents.yaml.",
      }),
    );
  });

  it('a non-member', () => {
    expect(() => requireGroupMember(cfg(), 'team', 'db')).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT', message: "Agent 'db' is not a member of group 'team'. Members: api, web" }),
    );
  });

  it('mergeGroupContext: shared + own, both trimmed', () => {
    expect(mergeGroupContext(cfg(), 'team', '\n  my context \n')).toBe("Shared context (group 'team'):\nThe shared bit.\n\nmy context");
  });

  it('mergeGroupContext: only shared', () => {
    expect(mergeGroupContext(cfg(), 'team', '')).toBe("Shared context (group 'team'):\nThe shared bit.");
    expect(mergeGroupContext(cfg(), 'team', '   ')).toBe("Shared context (group 'team'):\nThe shared bit.");
  });

  it('mergeGroupContext: no shared context leaves the caller context byte-identical', () => {
    expect(mergeGroupContext(cfg(), 'quiet', '  keep me \n')).toBe('  keep me \n');
    expect(mergeGroupContext(cfg(), 'empty', '')).toBe('');
  });

  it("mergeGroupContext: group '' changes nothing", () => {
    expect(mergeGroupContext(cfg(), '', '  raw\ncontext  ')).toBe('  raw\ncontext  ');
    expect(mergeGroupContext(cfg(), '', '')).toBe('');
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('dispatch/refs: refPayload', () => {
  const REF = 'a'.repeat(32);

  it('keys in order with a default summary', () => {
    const payload = refPayload(REF, result({ result: 'x'.repeat(600), session_id: 's1', cost_usd: 0.01, duration_ms: 5, num_turns: 2 }), DEFAULT_SUMMARY_CHARS);
    expect(Object.keys(payload)).toEqual(['ref', 'agent', 'success', 'size', 'summary_chars', 'summary', 'session_id', 'cost_usd', 'duration_ms', 'num_turns']);
    expect(payload).toMatchObject({ ref: REF, agent: 'api', success: true, size: 600, summary_chars: 500, summary: 'x'.repeat(500) });
  });

  it('summary_chars larger than the text reports the text length', () => {
    expect(refPayload(REF, result({ result: 'short' }), 500)).toMatchObject({ size: 5, summary_chars: 5, summary: 'short' });
  });

  it('summary_chars=0 gives an empty summary', () => {
    expect(refPayload(REF, result(), 0)).toMatchObject({ size: 11, summary_chars: 0, summary: '' });
  });

  it('clamps summary_chars to 0..100000', () => {
    expect(refPayload(REF, result(), -7)).toMatchObject({ summary_chars: 0, summary: '' });
    const big = 'y'.repeat(MAX_SUMMARY_CHARS + 50);
    const payload = refPayload(REF, result({ result: big }), 10 ** 9);
    expect(payload).toMatchObject({ size: MAX_SUMMARY_CHARS + 50, summary_chars: MAX_SUMMARY_CHARS });
    expect((payload['summary'] as string).length).toBe(MAX_SUMMARY_CHARS);
    expect(refPayload(REF, result(), 3.9)).toMatchObject({ summary_chars: 3, summary: 'hel' });
    expect(refPayload(REF, result(), Number.NaN)).toMatchObject({ summary_chars: 11 });
  });

  it('carries error metadata, budget_exceeded and a null parsed_result', () => {
    const metadata: Partial<DispatchResult> = {
      error: 'nope',
      error_type: 'budget',
      denied_tools: ['Bash'],
      hint: 'h',
      budget_exceeded: true,
      parsed_result: null,
    };
    const payload = refPayload(REF, result({ success: false, result: '', ...metadata }), 10);
    expect(payload).toEqual({ ref: REF, agent: 'api', success: false, size: 0, summary_chars: 0, summary: '', ...metadata });
  });

  it('an overlay result shows that a patch exists (patch_file, patch_truncated) but not the patch text', () => {
    const payload = refPayload(REF, result({ patch: '+x\n'.repeat(10), patch_file: '/cfg/patches/p.patch', patch_truncated: true }), 5);
    expect(payload).toMatchObject({ patch_file: '/cfg/patches/p.patch', patch_truncated: true, summary: 'hello' });
    expect(payload).not.toHaveProperty('patch');
    const plain = refPayload(REF, result(), 5);
    expect(plain).not.toHaveProperty('patch_file');
    expect(plain).not.toHaveProperty('patch_truncated');
  });

  it('leaves parsed_result out when the result has none', () => {
    expect(refPayload(REF, result(), 5)).not.toHaveProperty('parsed_result');
    expect(refPayload(REF, result({ parsed_result: { a: 1 } }), 5)['parsed_result']).toEqual({ a: 1 });
  });
});

describe('dispatch/refs: fetchedResult', () => {
  it('0 (and negatives) return the whole result as a copy', () => {
    const r = result();
    const whole = fetchedResult(r, 0);
    expect(whole).toEqual(r);
    expect(whole).not.toBe(r);
    expect(fetchedResult(r, -3)).toEqual(r);
  });

  it('a cap at or above the length changes nothing', () => {
    expect(fetchedResult(result(), 11)).toEqual(result());
    expect(fetchedResult(result(), 1000)).not.toHaveProperty('truncated');
  });

  it('a smaller cap cuts the text and says so', () => {
    const r = result({ session_id: 's' });
    expect(fetchedResult(r, 5)).toEqual({ ...r, result: 'hello', truncated: true, full_size: 11 });
    expect(r.result).toBe('hello world');
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('dispatch/refs: agentFingerprint', () => {
  function setup(): { configDir: string; cfg: (extra?: Record<string, unknown>, settings?: Record<string, unknown>) => DispatchConfig; writePolicy: (timeout: number) => void } {
    const configDir = join(root, 'config');
    mkdirSync(join(configDir, 'policies'), { recursive: true });
    const writePolicy = (timeout: number) =>
      writeFileSync(
        join(configDir, 'policies', 'open.yaml'),
        stringify({ version: 1, credentials: 'env', network: { mode: 'open' }, resources: { timeout } }),
      );
    writePolicy(300);
    const cfg = (extra: Record<string, unknown> = {}, settings: Record<string, unknown> = {}) =>
      config({ agents: { api: { directory: root, policy: 'open', ...extra } }, settings });
    return { configDir, cfg, writePolicy };
  }

  const fp = (c: DispatchConfig, configDir: string) => agentFingerprint(c.agents['api']!, c.settings, configDir);

  it('is stable for the same agent and policy', () => {
    const { configDir, cfg } = setup();
    const a = fp(cfg(), configDir);
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(fp(cfg(), configDir)).toBe(a);
  });

  it("changes when the agent's model changes", () => {
    const { configDir, cfg } = setup();
    const before = fp(cfg(), configDir);
    expect(fp(cfg({ model: 'sonnet' }), configDir)).not.toBe(before);
    expect(fp(cfg({ model: 'opus' }), configDir)).not.toBe(fp(cfg({ model: 'sonnet' }), configDir));
  });

  it("changes when the policy file's content changes (same ref)", () => {
    const { configDir, cfg, writePolicy } = setup();
    const before = fp(cfg(), configDir);
    writePolicy(600);
    expect(fp(cfg(), configDir)).not.toBe(before);
  });

  it.each([
    { default_allowed_tools: ['Read'] },
    { default_disallowed_tools: ['Bash'] },
    { default_permission_mode: 'plan' },
    { default_max_budget_usd: 0.25 },
    { default_timeout: 60 },
  ])('changes when an inherited setting changes: %j', (settings) => {
    const { configDir, cfg } = setup();
    expect(fp(cfg({}, settings), configDir)).not.toBe(fp(cfg(), configDir));
  });

  it('ignores the settings that only govern the server', () => {
    const { configDir, cfg } = setup();
    const server = { cache: { enabled: false, ttl: 1, max_size: 2 }, max_concurrency: 9, job_retention_days: 7, max_dispatch_depth: 5 };
    expect(fp(cfg({}, server), configDir)).toBe(fp(cfg(), configDir));
  });

  it('does not throw for a missing or broken policy', () => {
    const { configDir, cfg } = setup();
    expect(fp(cfg({ policy: 'nowhere' }), configDir)).toMatch(/^[0-9a-f]{32}$/);
    writeFileSync(join(configDir, 'policies', 'broken.yaml'), 'version: 2\n');
    expect(fp(cfg({ policy: 'broken' }), configDir)).toMatch(/^[0-9a-f]{32}$/);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('LineCollector', () => {
  function collect(chunks: (string | Buffer)[], cap = 1000): { lines: string[]; seen: string[] } {
    const seen: string[] = [];
    const c = new LineCollector(cap, (line) => seen.push(line));
    for (const chunk of chunks) c.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    c.flush();
    return { lines: c.lines, seen };
  }

  it('joins a line split across chunks and calls onLine once per line', () => {
    expect(collect(['{"type":', '"result"}\nsec', 'ond\n'])).toEqual({ lines: ['{"type":"result"}', 'second'], seen: ['{"type":"result"}', 'second'] });
  });

  it('flush emits a last line without a newline; an empty tail emits nothing', () => {
    expect(collect(['a\nb']).lines).toEqual(['a', 'b']);
    expect(collect(['a\n']).lines).toEqual(['a']);
    expect(collect(['a\n\nb\n']).lines).toEqual(['a', '', 'b']);
  });

  it('splits CRLF on the LF only and keeps the CR (overlay patches must round-trip byte for byte)', () => {
    expect(collect(['one\r\ntwo\r', '\nthree\r\n']).lines).toEqual(['one\r', 'two\r', 'three\r']);
    expect(JSON.parse(collect(['{"type":"result"}\r\n']).lines[0]!)).toEqual({ type: 'result' });
  });

  it('keeps a multi-byte character split across chunks intact', () => {
    const bytes = Buffer.from('héllo €\n');
    const chunks = [...bytes].map((b) => Buffer.from([b]));
    expect(collect(chunks).lines).toEqual(['héllo €']);
  });

  it('an invalid UTF-8 byte becomes U+FFFD instead of throwing', () => {
    expect(collect([Buffer.from([0x61, 0xff, 0x62, 0x0a])]).lines).toEqual(['a\uFFFDb']);
    // A truncated sequence at the very end, too.
    expect(collect([Buffer.from([0x61, 0xe2, 0x82])]).lines).toEqual(['a\uFFFD']);
  });

  it('keeps at most `cap` characters in total and drops the rest; every line still reaches onLine', () => {
    const { lines, seen } = collect(['abcd\nefgh\nijkl\n'], 6);
    expect(lines).toEqual(['abcd', 'ef']);
    expect(seen).toEqual(['abcd', 'efgh', 'ijkl']);
  });

  it('a single line longer than the cap is cut instead of buffered forever', () => {
    const c = new LineCollector(8);
    c.push(Buffer.from('x'.repeat(5)));
    expect(c.lines).toEqual([]);
    c.push(Buffer.from('x'.repeat(20)));
    expect(c.lines).toEqual(['x'.repeat(8)]);
    c.push(Buffer.from('more\n'));
    c.flush();
    expect(c.lines).toEqual(['x'.repeat(8)]);
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('containerLabels (AGENT_DISPATCH_CONTAINER_LABELS)', () => {
  it('unset or empty → no labels', () => {
    expect(containerLabels({})).toEqual({});
    expect(containerLabels({ AGENT_DISPATCH_CONTAINER_LABELS: '' })).toEqual({});
  });

  it('parses k=v pairs, trims, keeps "=" inside values, a bare key has an empty value', () => {
    expect(containerLabels({ AGENT_DISPATCH_CONTAINER_LABELS: ' a=1 , b = two words ,c,d=x=y,,=orphan' })).toEqual({
      a: '1',
      b: 'two words',
      c: '',
      d: 'x=y',
    });
  });

  it('ignores the reserved owner and policy labels, so they cannot be forged', () => {
    const reserved = [...Object.values(LABELS), `${LABEL_PREFIX}.policy`, `${LABEL_PREFIX}.policy-hash`];
    const env = { AGENT_DISPATCH_CONTAINER_LABELS: [...reserved.map((k) => `${k}=forged`), 'test.run=42'].join(',') };
    expect(containerLabels(env)).toEqual({ 'test.run': '42' });
    expect(containerLabels({ AGENT_DISPATCH_CONTAINER_LABELS: `${LABEL_PREFIX}.agent=x, ${LABEL_PREFIX}.job =y` })).toEqual({});
  });
});

// ---------------------------------------------------------------------------------------------------------------
describe('owner labels', () => {
  const here = hostname();

  function deadPid(): number {
    // A process that has exited and been reaped: its pid is (almost certainly) free.
    const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    return Number(child.stdout);
  }

  it("processStartTime('self') is defined and equals the pid's", () => {
    const self = processStartTime('self');
    expect(self).toMatch(/^\d+$/);
    expect(processStartTime(process.pid)).toBe(self);
    expect(serverIdentity()).toBe(`${process.pid}:${self}:${pidNamespace()}`);
  });

  it('processStartTime of a pid that does not exist is undefined', () => {
    expect(processStartTime(deadPid())).toBeUndefined();
  });

  it('ownerLabels ties a container to this server', () => {
    const labels = ownerLabels('f'.repeat(32), 60_000, 1_000_000);
    expect(labels).toEqual({
      [LABELS.job]: 'f'.repeat(32),
      [LABELS.serverPid]: String(process.pid),
      [LABELS.server]: serverIdentity(),
      [LABELS.host]: here,
      [LABELS.created]: new Date(1_000_000).toISOString(),
      [LABELS.deadline]: String(1_060_000),
    });
    expect(ownerIsGone(labels)).toBe(false);
  });

  const ns = () => pidNamespace()!;

  it('a dead server pid is gone', () => {
    expect(ownerIsGone({ [LABELS.host]: here, [LABELS.server]: `${deadPid()}:12345:${ns()}` }, here)).toBe(true);
  });

  it('a live pid with another start time (the pid was reused) is gone; an unknown start time is not judged', () => {
    const start = processStartTime('self')!;
    expect(ownerIsGone({ [LABELS.host]: here, [LABELS.server]: `${process.pid}:${Number(start) + 1}:${ns()}` }, here)).toBe(true);
    expect(ownerIsGone({ [LABELS.host]: here, [LABELS.server]: `${process.pid}:?:${ns()}` }, here)).toBe(false);
    expect(ownerIsGone({ [LABELS.host]: here, [LABELS.server]: `${process.pid}:${start}:${ns()}` }, here)).toBe(false);
  });

  it('a server in another PID namespace (same hostname) is never judged by its pid', () => {
    expect(ownerIsGone({ [LABELS.host]: here, [LABELS.server]: `${deadPid()}:12345:1` }, here)).toBe(false);
    expect(ownerIsGone({ [LABELS.host]: here, [LABELS.server]: `${deadPid()}:12345` }, here)).toBe(false);
  });

  it('a server on another host is never judged gone', () => {
    expect(ownerIsGone({ [LABELS.host]: 'some-other-host', [LABELS.server]: `${deadPid()}:1` }, here)).toBe(false);
    expect(ownerIsGone({ [LABELS.server]: `${deadPid()}:1` }, here)).toBe(false);
  });

  it('missing or malformed identities are not judged gone', () => {
    expect(ownerIsGone({ [LABELS.host]: here }, here)).toBe(false);
    for (const identity of ['', 'abc:1', '0:1', '-5:1', '1.5:1']) {
      expect(ownerIsGone({ [LABELS.host]: here, [LABELS.server]: identity }, here)).toBe(false);
    }
  });
});
