/**
 * The async job tools, dispatch_parallel and dispatch_dialogue over a real in-memory MCP client, with a FAKE
 * sandbox behind the server (the real-engine versions are in test/integration/jobs.test.ts).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import type { Progress } from '@modelcontextprotocol/sdk/types.js';
import { FakeSandbox, gate, resultLine, succeeds, UNIT_OPEN_POLICY, type Script } from '../helpers/fake-sandbox.js';
import { startHarness, type Harness } from './mcp-harness.js';

const BAD_IDS = ['../x', '../../etc/passwd', 'ABCDEF0123456789ABCDEF0123456789', 'a'.repeat(31), 'a'.repeat(33), '', `${'a'.repeat(31)}/`];

let h: Harness;
let sandbox: FakeSandbox;

function config(settings: Record<string, unknown> = {}, agents: string[] = ['api', 'web', 'db']): void {
  mkdirSync(join(h.configDir, 'policies'), { recursive: true });
  writeFileSync(join(h.configDir, 'policies', 'open.yaml'), stringify(UNIT_OPEN_POLICY));
  const entries = Object.fromEntries(agents.map((a) => [a, { directory: h.project(a), policy: 'open', description: a }]));
  h.writeConfig(stringify({ agents: entries, groups: { team: { description: 't', shared_context: 'We ship on Fridays.', members: [{ agent: 'api' }] } }, settings }));
}

beforeEach(async () => {
  sandbox = new FakeSandbox(succeeds([resultLine()]));
  h = await startHarness({ sandbox, env: { ANTHROPIC_API_KEY: 'sk-unit' } });
  config();
});

afterEach(async () => {
  await h.context.dispatcher.shutdown();
  await h.close();
});

const jobsDir = () => join(h.configDir, 'jobs');

describe('every string input is bounded', () => {
  const big = 'x'.repeat(1_000_001);
  it.each([
    ['dispatch', { agent: big, task: 't' }, 'agent must be at most 64 characters'],
    ['dispatch_async', { agent: 'api', task: 't', caller: big }, 'caller must be at most 200 characters'],
    ['dispatch_session', { agent: 'api', task: 't', session_id: big }, 'session_id must be at most 128 characters'],
    ['dispatch_status', { job_id: big }, 'job_id must be at most 64 characters'],
    ['dispatch_dialogue', { requester: 'api', responder: big, topic: 't' }, 'responder must be at most 64 characters'],
    ['dispatch_parallel', { dispatches: JSON.stringify([{ agent: 'api', task: 't', goal: big }]) }, 'dispatches[0].goal must be at most 2000 characters'],
  ])('%s refuses an over-long value, naming the field and the limit', async (tool, args, message) => {
    const answer = await h.call(tool, args);
    expect(answer.isError).toBe(true);
    expect(answer.text).toContain(message);
    expect(answer.text.length).toBeLessThan(10_000);
    expect(sandbox.runs).toHaveLength(0);
  });
});

describe('dispatch_async → dispatch_status → dispatch_wait', () => {
  it('returns a pending job at once, shows live progress while it runs, and the result when done', async () => {
    const g = gate();
    sandbox.scripts = [g.script];
    const started = await h.call('dispatch_async', { agent: 'api', task: 'Long task', caller: 'me', response_format: '' });
    expect(started.json).toEqual({ job_id: expect.stringMatching(/^[0-9a-f]{32}$/), status: 'pending', agent: 'api' });
    const id = started.json.job_id;
    await g.started;
    await vi.waitFor(async () => {
      const status = (await h.call('dispatch_status', { job_id: id })).json;
      expect(status).toMatchObject({ id, status: 'running', agent: 'api', task: 'Long task', caller: 'me' });
      expect(status.progress).toEqual(['Let me look.', 'Using tool: Bash']);
    }, { timeout: 3000 });
    g.release();
    const waited = (await h.call('dispatch_wait', { job_id: id, timeout_seconds: 10 })).json;
    expect(waited).toMatchObject({ id, status: 'done', result: { success: true, result: 'gated answer' } });
    expect(waited).not.toHaveProperty('timed_out_waiting');
    expect((await h.call('fetch_result', { ref: id })).json).toMatchObject({ result: 'gated answer' });
  });

  it('the job file is 0600 in a 0700 directory and holds no secret value', async () => {
    const { job_id } = (await h.call('dispatch_async', { agent: 'api', task: 't' })).json;
    await h.call('dispatch_wait', { job_id, timeout_seconds: 10 });
    const { statSync } = await import('node:fs');
    expect(statSync(jobsDir()).mode & 0o777).toBe(0o700);
    expect(statSync(join(jobsDir(), `${job_id}.json`)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(jobsDir(), `${job_id}.json`), 'utf8')).not.toContain('sk-unit');
  });

  it('dispatch_wait gives up after timeout_seconds (clamped to at least 1) with timed_out_waiting; the job runs on', async () => {
    const g = gate();
    sandbox.scripts = [g.script];
    const { job_id } = (await h.call('dispatch_async', { agent: 'api', task: 't' })).json;
    const t0 = Date.now();
    const waited = (await h.call('dispatch_wait', { job_id, timeout_seconds: -5 })).json;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(waited).toMatchObject({ id: job_id, timed_out_waiting: true });
    expect(['pending', 'running']).toContain(waited.status);
    g.release();
    expect((await h.call('dispatch_wait', { job_id, timeout_seconds: 10 })).json.status).toBe('done');
  });

  it('dispatch_wait sends progress notifications naming the phase to a caller with a progress token', async () => {
    const g = gate();
    sandbox.scripts = [g.script];
    const { job_id } = (await h.call('dispatch_async', { agent: 'api', task: 't' })).json;
    await g.started;
    const progress: Progress[] = [];
    setTimeout(() => g.release(), 1500);
    await h.call('dispatch_wait', { job_id, timeout_seconds: 10 }, { onprogress: (p) => progress.push(p) });
    expect(progress[0]?.message).toContain('dispatch_wait: waiting for job');
    expect(progress.some((p) => p.message?.includes('running: Using tool: Bash'))).toBe(true);
  });

  it('an unknown agent is refused before any job exists', async () => {
    const answer = await h.call('dispatch_async', { agent: 'nope', task: 't' });
    expect(answer.isError).toBe(true);
    expect(answer.json.error).toContain("Unknown agent: 'nope'");
    expect(() => readdirSync(jobsDir())).toThrow();
  });
});

describe('dispatch_cancel', () => {
  it('a running job: the run is aborted, its containers removed, the job reads cancelled and stays so', async () => {
    const g = gate();
    sandbox.scripts = [g.script];
    const { job_id } = (await h.call('dispatch_async', { agent: 'api', task: 't' })).json;
    await g.started;
    const answer = (await h.call('dispatch_cancel', { job_id })).json;
    expect(answer).toMatchObject({ job_id, outcome: 'cancelled_running', status: 'cancelled' });
    expect(sandbox.removedJobs).toContain(job_id);
    await vi.waitFor(() => expect(h.context.dispatcher.service.inFlight).toBe(0));
    const status = (await h.call('dispatch_status', { job_id })).json;
    expect(status).toMatchObject({ status: 'cancelled', error: expect.stringContaining('container was killed') });
    expect(status).not.toHaveProperty('result');
    expect((await h.call('dispatch_cancel', { job_id })).json).toMatchObject({ outcome: 'already_terminal', status: 'cancelled' });
  });

  it('a pending job (queued behind max_concurrency 1) never starts', async () => {
    config({ max_concurrency: 1 });
    const g = gate();
    sandbox.scripts = [g.script, succeeds()];
    const first = (await h.call('dispatch_async', { agent: 'api', task: 'first' })).json.job_id;
    await g.started;
    const second = (await h.call('dispatch_async', { agent: 'web', task: 'second' })).json.job_id;
    expect((await h.call('dispatch_status', { job_id: second })).json.status).toBe('pending');
    expect((await h.call('dispatch_cancel', { job_id: second })).json).toMatchObject({ outcome: 'cancelled', status: 'cancelled' });
    g.release();
    expect((await h.call('dispatch_wait', { job_id: first, timeout_seconds: 10 })).json.status).toBe('done');
    await vi.waitFor(() => expect(h.context.dispatcher.service.inFlight).toBe(0));
    expect(sandbox.runs).toHaveLength(1);
    expect((await h.call('dispatch_status', { job_id: second })).json).toMatchObject({ status: 'cancelled', error: 'Cancelled before execution' });
  });

  it('a job cancelled by another process (the CLI writes the file) is aborted by the server that runs it', async () => {
    const g = gate();
    sandbox.scripts = [g.script];
    const { job_id } = (await h.call('dispatch_async', { agent: 'api', task: 't' })).json;
    const run = await g.started;
    const { JobStore } = await import('../../src/dispatch/job-store.js');
    await new JobStore(jobsDir()).transition(job_id, { kind: 'cancel', error: 'Cancelled from the CLI' });
    await vi.waitFor(() => expect(run.signal?.aborted).toBe(true), { timeout: 3000 });
    await vi.waitFor(() => expect(h.context.dispatcher.service.inFlight).toBe(0));
    expect((await h.call('dispatch_status', { job_id })).json).toMatchObject({ status: 'cancelled', error: 'Cancelled from the CLI' });
  });
});

describe('job ids: malformed, traversing, unknown or wrong-length ids touch no file', () => {
  it.each(['dispatch_status', 'dispatch_wait', 'dispatch_cancel'])('%s', async (tool) => {
    for (const id of BAD_IDS) {
      const answer = await h.call(tool, { job_id: id });
      expect(answer.isError).toBe(true);
      expect(answer.json.error).toMatch(/Invalid job_id format/);
      expect(answer.json.hint).toBeTruthy();
    }
    const unknown = await h.call(tool, { job_id: '0'.repeat(32) });
    expect(unknown.json).toEqual({ error: `Job not found: ${'0'.repeat(32)}`, hint: expect.any(String) });
    expect(() => readdirSync(jobsDir())).toThrow();
  });

  it('fetch_result of a bad or unknown ref', async () => {
    for (const ref of BAD_IDS) expect((await h.call('fetch_result', { ref })).json.error).toMatch(/Invalid ref format/);
    expect((await h.call('fetch_result', { ref: 'f'.repeat(32) })).json).toEqual({ error: `Ref not found: ${'f'.repeat(32)}`, hint: expect.any(String) });
  });
});

describe('dispatch_jobs and dispatch_gc', () => {
  async function finishedJobs(n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const { job_id } = (await h.call('dispatch_async', { agent: 'api', task: `task ${i}\nsecond line` })).json;
      await h.call('dispatch_wait', { job_id, timeout_seconds: 10 });
      ids.push(job_id);
    }
    return ids;
  }

  it('lists most recent first with the original fields; filters by status; clamps the limit', async () => {
    const ids = await finishedJobs(3);
    const all = (await h.call('dispatch_jobs')).json;
    expect(all.map((j: { id: string }) => j.id)).toEqual([...ids].reverse());
    expect(all[0]).toEqual({ id: ids[2], agent: 'api', status: 'done', task: 'task 2\nsecond line', created_at: expect.any(Number), started_at: expect.any(Number), completed_at: expect.any(Number), success: true, cost_usd: 0.00054 });
    expect((await h.call('dispatch_jobs', { status: ' DONE ' })).json).toHaveLength(3);
    expect((await h.call('dispatch_jobs', { status: 'failed' })).json).toEqual([]);
    expect((await h.call('dispatch_jobs', { limit: -3 })).json).toHaveLength(1);
    const bad = await h.call('dispatch_jobs', { status: 'finished' });
    expect(bad.json).toEqual({ error: "Invalid status: 'finished'. Use one of: cancelled, done, failed, pending, running or empty.", hint: expect.any(String) });
  });

  it('gc deletes only finished jobs older than the threshold; refuses <= 0 and non-finite ages', async () => {
    const [old, recent] = await finishedJobs(2);
    const path = join(jobsDir(), `${old}.json`);
    const record = JSON.parse(readFileSync(path, 'utf8'));
    writeFileSync(path, JSON.stringify({ ...record, completed_at: record.completed_at - 10 * 86_400 }));
    expect((await h.call('dispatch_gc', { max_age_days: 7 })).json).toEqual({ purged: 1, max_age_days: 7 });
    expect((await h.call('dispatch_status', { job_id: recent })).json.status).toBe('done');
    expect((await h.call('dispatch_gc', { max_age_days: 0 })).json.error).toBe('max_age_days must be > 0');
    expect((await h.call('dispatch_gc', { max_age_days: -1 })).json.error).toBe('max_age_days must be > 0');
    expect((await h.call('dispatch_gc', { max_age_days: 1e308 })).json.error).toBe('max_age_days is too large (non-finite)');
  });
});

describe('dispatch_parallel', () => {
  const items = (list: unknown[]) => ({ dispatches: JSON.stringify(list) });

  it.each([
    ['not JSON', { dispatches: '[{' }, /^Invalid JSON in dispatches: /],
    ['empty', items([]), /^dispatches must be a non-empty JSON array$/],
    ['an object', { dispatches: '{"agent": "api"}' }, /^dispatches must be a non-empty JSON array$/],
    ['a non-object item', items([{ agent: 'api', task: 't' }, 7]), /^dispatches\[1\] must be an object, got number$/],
    ['a missing key', items([{ agent: 'api' }]), /^dispatches\[0\] must have 'agent' and 'task' keys$/],
    ['a non-string task', items([{ agent: 'api', task: 5 }]), /^dispatches\[0\]\.agent and \.task must be strings$/],
    ['an unknown agent', items([{ agent: 'api', task: 't' }, { agent: 'ghost', task: 't' }]), /^Unknown agent: 'ghost'/],
    ['a non-member group', items([{ agent: 'web', task: 't', group: 'team' }]), /not a member of group 'team'/],
    ['a bad number', items([{ agent: 'api', task: 't', timeout_seconds: 'abc' }]), /^dispatches\[0\]\.timeout_seconds must be a number, got "abc"$/],
    ['too many', items(Array.from({ length: 101 }, () => ({ agent: 'api', task: 't' }))), /^Too many dispatches: 101 > 100\./],
  ])('refuses %s before anything starts', async (_name, args, message) => {
    const answer = await h.call('dispatch_parallel', args);
    expect(answer.isError).toBe(true);
    expect(answer.json.error).toMatch(message);
    expect(answer.json.hint).toBeTruthy();
    expect(sandbox.runs).toHaveLength(0);
  });

  it('an unknown aggregate agent is refused before anything starts', async () => {
    const answer = await h.call('dispatch_parallel', { ...items([{ agent: 'api', task: 't' }]), aggregate: 'ghost' });
    expect(answer.json.error).toMatch(/^Unknown agent: 'ghost'/);
    expect(sandbox.runs).toHaveLength(0);
  });

  it('results come back in input order; refs, group context, numeric strings and the cache per item', async () => {
    sandbox.scripts = [(run) => succeeds([resultLine({ result: `answer to: ${run.stdin.includes('first') ? 'first' : 'other'}` })])(run, 0)];
    const list = [
      { agent: 'api', task: 'first', group: 'team', timeout_seconds: '900' },
      { agent: 'web', task: 'second', return_ref: true, summary_chars: 6 },
      { agent: 'api', task: 'first', group: 'team' },
    ];
    const { json } = await h.call('dispatch_parallel', items(list));
    expect(json).toHaveLength(3);
    expect(json[0]).toMatchObject({ agent: 'api', success: true, result: 'answer to: first' });
    expect(json[1]).toMatchObject({ agent: 'web', ref: expect.stringMatching(/^[0-9a-f]{32}$/), summary: 'answer', summary_chars: 6 });
    expect(sandbox.runs[0]!.stdin).toContain('We ship on Fridays.');
    expect(sandbox.runs.length).toBeGreaterThanOrEqual(2);
  });

  it('never runs more than max_concurrency at once, and the aggregate agent receives every result', async () => {
    config({ max_concurrency: 3 });
    let running = 0;
    let peak = 0;
    sandbox.scripts = [
      async (run) => {
        running += 1;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 20));
        running -= 1;
        const answer = run.stdin.includes('Synthesize') ? 'the synthesis' : `result of ${/task (\d+)/.exec(run.stdin)?.[0]}`;
        return succeeds([resultLine({ result: answer })])(run, 0);
      },
    ];
    const list = Array.from({ length: 10 }, (_, i) => ({ agent: ['api', 'web', 'db'][i % 3], task: `task ${i}` }));
    const progress: Progress[] = [];
    const { json } = await h.call('dispatch_parallel', { ...items(list), aggregate: 'db' }, { onprogress: (p) => progress.push(p) });
    expect(peak).toBe(3);
    expect(json.individual_results).toHaveLength(10);
    expect(json.aggregated).toMatchObject({ agent: 'db', success: true, result: 'the synthesis' });
    const aggregation = sandbox.runs.at(-1)!.stdin;
    for (let i = 0; i < 10; i++) expect(aggregation).toContain(`result of task ${i}`);
    expect(aggregation).toContain('## Agent: api [OK]');
    expect(progress.at(-1)?.message).toContain('aggregating 10 result(s) with db');
  });
});

describe('dispatch_dialogue', () => {
  function speakers(answers: Record<string, string[]>): Script {
    const turns: Record<string, number> = {};
    return (run) => {
      const who = run.stdin.includes("agent 'web'") || run.stdin.includes("Agent 'web'") ? 'api' : 'web';
      const n = (turns[who] = (turns[who] ?? 0) + 1);
      const text = answers[who]![n - 1] ?? 'still thinking';
      return succeeds([resultLine({ result: text, session_id: `${who}-session`, total_cost_usd: 0.01, duration_ms: 100 })])(run, 0);
    };
  }

  it('alternates responder and requester, carries each session, and stops at [RESOLVED]', async () => {
    sandbox.scripts = [speakers({ api: ['Here is the schema. Questions?', 'Use v2. [RESOLVED]'], web: ['Which version?'] })];
    const { json } = await h.call('dispatch_dialogue', { requester: 'web', responder: 'api', topic: 'Agree on the API schema' });
    expect(json).toMatchObject({ resolved: true, rounds: 2, total_cost_usd: 0.03, total_duration_ms: 300, final_answer: 'Use v2.' });
    expect(json.conversation.map((t: { agent: string; role: string; round: number }) => [t.agent, t.role, t.round])).toEqual([
      ['api', 'responder', 1],
      ['web', 'requester', 1],
      ['api', 'responder', 2],
    ]);
    expect(sandbox.runs[0]!.stdin).toContain("You are starting a collaborative dialogue with agent 'web'");
    expect(sandbox.runs[1]!.stdin).toContain('Agree on the API schema');
    expect(sandbox.runs[2]!.cmd.join(' ')).toContain('--resume api-session');
  });

  it('resolves on the responder\'s first turn (marker stripped), or when the requester says [RESOLVED]', async () => {
    sandbox.scripts = [speakers({ api: ['It is 42. [RESOLVED]'], web: [] })];
    expect((await h.call('dispatch_dialogue', { requester: 'web', responder: 'api', topic: 'x' })).json).toMatchObject({ resolved: true, rounds: 1, final_answer: 'It is 42.' });
    expect(sandbox.runs).toHaveLength(1);
    sandbox.scripts = [speakers({ api: ['Proposal A.', 'ok'], web: ['[RESOLVED] A works for us.'] })];
    const { json } = await h.call('dispatch_dialogue', { requester: 'web', responder: 'api', topic: 'y' });
    expect(json).toMatchObject({ resolved: true, rounds: 1, final_answer: 'A works for us.' });
    expect(json.conversation.at(-1)).toMatchObject({ agent: 'web', role: 'requester' });
  });

  it('max_rounds: 2 runs four turns and ends unresolved', async () => {
    sandbox.scripts = [speakers({ api: [], web: [] })];
    const { json } = await h.call('dispatch_dialogue', { requester: 'web', responder: 'api', topic: 'x', max_rounds: 2 });
    expect(json).toMatchObject({ resolved: false, rounds: 2 });
    expect(json.conversation).toHaveLength(4);
  });

  it('max_rounds is clamped to 1..10; an unresolved dialogue ends with the last message', async () => {
    sandbox.scripts = [speakers({ api: [], web: [] })];
    const { json } = await h.call('dispatch_dialogue', { requester: 'web', responder: 'api', topic: 'x', max_rounds: 0 });
    expect(json).toMatchObject({ resolved: false, rounds: 1, final_answer: 'still thinking' });
    expect(sandbox.runs).toHaveLength(2);
  });

  it('a failed turn stops the dialogue with its error', async () => {
    sandbox.scripts = [succeeds([resultLine({ is_error: true, subtype: 'error_during_execution', result: '' })], { exitCode: 1 })];
    const { json } = await h.call('dispatch_dialogue', { requester: 'web', responder: 'api', topic: 'x', max_rounds: 5 });
    expect(json.resolved).toBe(false);
    expect(json.conversation).toHaveLength(1);
    expect(json.conversation[0]).toMatchObject({ agent: 'api', error_type: expect.any(String) });
    expect(json.final_answer).toBe(json.conversation[0].error);
  });

  it('unknown agents are refused before any turn', async () => {
    expect((await h.call('dispatch_dialogue', { requester: 'ghost', responder: 'api', topic: 'x' })).json.error).toMatch(/Unknown agent: 'ghost'/);
    expect(sandbox.runs).toHaveLength(0);
  });
});

describe('the original’s job, parallel and aggregation cases (§9.6)', () => {
  it('dispatch_async forwards response_format and the per-call timeout; parsed_result lands in the job', async () => {
    sandbox.scripts = [succeeds([resultLine({ result: '{"n": 1}' })])];
    const { job_id } = (await h.call('dispatch_async', { agent: 'api', task: 't', response_format: 'json', timeout_seconds: 500 })).json;
    const job = (await h.call('dispatch_wait', { job_id, timeout_seconds: 10 })).json;
    expect(job).toMatchObject({ status: 'done', response_format: 'json', result: { parsed_result: { n: 1 } } });
    expect(sandbox.last.timeoutMs).toBeGreaterThanOrEqual(500_000);
  });

  it('a failed dispatch marks the job failed and keeps its result; a crashing run marks it failed with the reason', async () => {
    sandbox.scripts = [succeeds([resultLine({ is_error: true, subtype: 'error_during_execution', result: '' })], { exitCode: 1 }), () => Promise.reject(new Error('engine exploded'))];
    const failed = (await h.call('dispatch_async', { agent: 'api', task: 't' })).json.job_id;
    expect((await h.call('dispatch_wait', { job_id: failed, timeout_seconds: 10 })).json).toMatchObject({ status: 'failed', result: { success: false }, error: expect.any(String) });
    const crashed = (await h.call('dispatch_async', { agent: 'api', task: 't' })).json.job_id;
    const job = (await h.call('dispatch_wait', { job_id: crashed, timeout_seconds: 10 })).json;
    expect(job.status).toBe('failed');
    expect(job.error).toContain('engine exploded');
  });

  it('progress lines are cut to 300 chars and kept as a 20-line tail after the job is done; dispatch_jobs shows last_progress only while running', async () => {
    const g = gate();
    const lines = Array.from({ length: 25 }, (_, i) =>
      JSON.stringify({ type: 'assistant', message: { role: 'assistant', content: [{ type: 'text', text: `line ${i} ${'y'.repeat(1000)}` }] } }),
    );
    sandbox.scripts = [
      async (run, i) => {
        for (const line of lines) run.onStdoutLine?.(line);
        return g.script(run, i);
      },
    ];
    const { job_id } = (await h.call('dispatch_async', { agent: 'api', task: 't' })).json;
    await g.started;
    await vi.waitFor(async () => expect((await h.call('dispatch_jobs')).json[0].last_progress).toBe('Using tool: Bash'), { timeout: 3000 });
    g.release();
    const job = (await h.call('dispatch_wait', { job_id, timeout_seconds: 10 })).json;
    expect(job.progress).toHaveLength(20);
    expect(job.progress.every((l: string) => l.length <= 300)).toBe(true);
    expect((await h.call('dispatch_jobs')).json[0]).not.toHaveProperty('last_progress');
  });

  it('an unusable jobs dir is an I/O envelope naming the path', async () => {
    writeFileSync(jobsDir(), 'not a directory');
    const answer = await h.call('dispatch_async', { agent: 'api', task: 't' });
    expect(answer.isError).toBe(true);
    expect(answer.json.error).toContain(jobsDir());
    expect(answer.json.hint).toContain('AGENT_DISPATCH_JOBS_DIR');
  });

  it('parallel: a failing item does not affect the others, items use the cache a dispatch primed, per-item formats and timeouts apply', async () => {
    await h.call('dispatch', { agent: 'api', task: 'primed' });
    const runsBefore = sandbox.runs.length;
    sandbox.scripts = [
      (run) =>
        run.stdin.includes('will fail')
          ? succeeds([resultLine({ is_error: true, subtype: 'error_during_execution', result: '' })], { exitCode: 1 })(run, 0)
          : succeeds([resultLine({ result: run.stdin.includes('as json') ? '[1, 2]' : 'plain' })])(run, 0),
    ];
    const list = [
      { agent: 'api', task: 'primed' },
      { agent: 'web', task: 'will fail' },
      { agent: 'db', task: 'as json', response_format: 'json', timeout_seconds: 600 },
      { agent: 'db', task: 'default timeout', timeout_seconds: null },
    ];
    const { json } = await h.call('dispatch_parallel', { dispatches: JSON.stringify(list) });
    expect(json[0]).toMatchObject({ success: true, cached: true });
    expect(json[1]).toMatchObject({ agent: 'web', success: false });
    expect(json[2]).toMatchObject({ success: true, parsed_result: [1, 2] });
    expect(sandbox.runs.length - runsBefore).toBe(3);
    const byTask = (t: string) => sandbox.runs.find((r) => r.stdin.includes(t))!;
    expect(byTask('as json').timeoutMs).toBeGreaterThanOrEqual(600_000);
    expect(byTask('default timeout').timeoutMs).toBeLessThan(byTask('as json').timeoutMs);
  });

  it('the aggregator of ref items receives their summary ("preview of N chars"), not an empty body', async () => {
    sandbox.scripts = [(run) => succeeds([resultLine({ result: run.stdin.includes('Synthesize') ? 'synth' : 'z'.repeat(3000) })])(run, 0)];
    const list = [{ agent: 'api', task: 'long', return_ref: true, summary_chars: 3 }];
    const { json } = await h.call('dispatch_parallel', { dispatches: JSON.stringify(list), aggregate: 'web' });
    expect(json.individual_results[0]).toMatchObject({ summary: 'zzz', size: 3000 });
    expect(sandbox.last.stdin).toContain('## Agent: api [OK, preview of 3000 chars]\nzzz');
  });
});
