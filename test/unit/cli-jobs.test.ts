/**
 * `jobs`, `job ID`, `cancel ID` and `gc` against job files written through the JobStore in a temp
 * AGENT_DISPATCH_JOBS_DIR. No engine: `cancel` runs over a fake sandbox (the real container kill is in
 * test/integration/cli-cancel.test.ts), and gc's volumes come from a fake lister (real ones: volume-gc.test.ts).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cancelCommand } from '../../src/cli/commands/jobs.js';
import { configScopes, gcCommand, type GcDeps } from '../../src/cli/commands/gc.js';
import { DispatchCore } from '../../src/dispatch/core.js';
import { JobStore, type JobRecord } from '../../src/dispatch/job-store.js';
import type { DispatchResult } from '../../src/dispatch/types.js';
import { claudeStateVolume, gatewayVolume, volumeScope } from '../../src/policy/layout.js';
import type { AgentVolume } from '../../src/sandbox/volume-gc.js';
import { FakeSandbox } from '../helpers/fake-sandbox.js';
import { capture, run, setupEnv, STACK_LINE, type Env } from './cli-harness.js';

let env: Env;
let jobsDir: string;
let store: JobStore;
let seq = 0;

beforeEach(() => {
  env = setupEnv();
  jobsDir = join(env.root, 'jobs');
  vi.stubEnv('AGENT_DISPATCH_JOBS_DIR', jobsDir);
  // Nothing in these tests may reach an engine: gc's default volume lister then warns and goes on.
  vi.stubEnv('DOCKER_HOST', `unix://${join(env.root, 'no-engine.sock')}`);
  store = new JobStore(jobsDir);
});
afterEach(() => {
  vi.useRealTimers();
  env.cleanup();
  vi.unstubAllEnvs();
});

const OWNER = { server: '1:1:1', host: 'elsewhere' };

function nextId(): string {
  seq += 1;
  return seq.toString(16).padStart(32, '0');
}

function result(overrides: Partial<DispatchResult> = {}): DispatchResult {
  return { agent: 'api', success: true, result: 'the answer', cost_usd: 0.01234, ...overrides };
}

/** A job created `ageSeconds` ago (the clock is moved back while the store writes it) and brought to `status`. */
async function job(status: JobRecord['status'], options: { agent?: string; task?: string; ageSeconds?: number; result?: DispatchResult; progress?: string[] } = {}): Promise<JobRecord> {
  if (options.ageSeconds) {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(Date.now() - options.ageSeconds * 1000);
  }
  try {
    const id = nextId();
    await store.create({ agent: options.agent ?? 'api', task: options.task ?? 'What is this project?' }, OWNER, id);
    if (status !== 'pending' && status !== 'cancelled') await store.transition(id, { kind: 'start' });
    if (options.progress) await store.transition(id, { kind: 'progress', lines: options.progress });
    if (status === 'done') await store.transition(id, { kind: 'finish', result: options.result ?? result() });
    if (status === 'failed') await store.transition(id, { kind: 'fail', error: 'it broke' });
    if (status === 'cancelled') await store.transition(id, { kind: 'cancel', error: 'Cancelled before execution' });
    return store.get(id)!;
  } finally {
    vi.useRealTimers();
  }
}

const BAD_IDS = ['../x', 'ABCDEF0123456789ABCDEF0123456789', 'a'.repeat(31), 'a'.repeat(33), `${'a'.repeat(31)}/`];

describe('jobs', () => {
  it('no jobs: says so, for a status too', async () => {
    expect((await run('jobs')).stdout).toBe('No jobs found.\n');
    expect((await run('jobs', '--status', 'done')).stdout).toBe('No done jobs found.\n');
  });

  it('one line per job, most recent first: id, status, agent, age, task (60 chars, newlines as spaces)', async () => {
    const old = await job('done', { agent: 'web', ageSeconds: 2 * 3600, task: `line one\nline two ${'x'.repeat(100)}` });
    const recent = await job('running', { ageSeconds: 5 });
    const r = await run('jobs');
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(new RegExp(`^${recent.id}  running    api  +\\d+s  What is this project\\?$`));
    expect(lines[1]).toBe(`${old.id}  done       web    2h  ${`line one line two ${'x'.repeat(100)}`.slice(0, 60)}`);
  });

  it('--status filters; --limit caps (default 20)', async () => {
    for (let i = 0; i < 21; i++) await job('pending');
    await job('failed');
    expect((await run('jobs')).stdout.trimEnd().split('\n')).toHaveLength(20);
    expect((await run('jobs', '--limit', '3')).stdout.trimEnd().split('\n')).toHaveLength(3);
    const failed = (await run('jobs', '--status', 'failed')).stdout.trimEnd().split('\n');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toContain('  failed  ');
  });

  it.each([
    [['--status', 'finished'], '--status must be one of pending, running, done, failed, cancelled'],
    [['--limit', '0'], '--limit must be at least 1'],
    [['--limit', 'ten'], "--limit must be a whole number (got 'ten')"],
  ])('%j is a usage error (exit 2)', async (argv, message) => {
    const r = await run('jobs', ...argv);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });
});

describe('job ID', () => {
  it('a finished job: agent, task, times, progress tail (10 lines), success, cost, result', async () => {
    const progress = Array.from({ length: 15 }, (_, i) => `step ${i}`);
    const done = await job('done', { progress, ageSeconds: 300 });
    const r = await run('job', done.id);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${done.id} [done]\n`);
    expect(r.stdout).toContain('  agent:      api\n');
    expect(r.stdout).toContain('  task:       What is this project?\n');
    expect(r.stdout).toMatch(/^ {2}created: {4}5m ago$/m);
    expect(r.stdout).toMatch(/^ {2}completed: {2}5m ago$/m);
    expect(r.stdout).toContain(`  progress:\n${progress.slice(5).map((l) => `    ${l}\n`).join('')}`);
    expect(r.stdout).not.toContain('step 4\n');
    expect(r.stdout).toContain('  success:    true\n  cost_usd:   $0.0123\n');
    expect(r.stdout).toContain('  result:\nthe answer\n');
  });

  it('a long result: the first 2000 characters and how long it was; over budget is flagged', async () => {
    const long = await job('done', { result: result({ result: 'y'.repeat(2500), budget_exceeded: true }) });
    const r = await run('job', long.id);
    expect(r.stdout).toContain(`\n${'y'.repeat(2000)}\n… truncated (2500 chars total)\n`);
    expect(r.stdout).toContain('  budget:     EXCEEDED\n');
  });

  it('a failed job shows its error; a pending one has no result section', async () => {
    const failed = await job('failed');
    expect((await run('job', failed.id)).stdout).toContain('  error:      it broke\n');
    const pending = await job('pending');
    const r = await run('job', pending.id);
    expect(r.stdout).toContain(`${pending.id} [pending]`);
    expect(r.stdout).not.toContain('result:');
    expect(r.stdout).not.toContain('started:');
  });

  it('a job that does not exist: exit 1, "Job not found"', async () => {
    const r = await run('job', 'f'.repeat(32));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Job not found: ${'f'.repeat(32)}`);
  });
});

describe('invalid ids touch no file', () => {
  it.each(BAD_IDS)('job and cancel %j: exit 1 with the original message; the jobs dir is never created, a planted file never read', async (id) => {
    // A well-formed job record where `../x` would resolve, if the id reached the file system.
    writeFileSync(join(env.root, 'x.json'), JSON.stringify({ id: '../x', agent: 'planted', task: 'planted', status: 'pending', created_at: 1 }));
    const before = readFileSync(join(env.root, 'x.json'), 'utf8');
    for (const command of ['job', 'cancel']) {
      const r = await run(command, id);
      expect(r.code, command).toBe(1);
      expect(r.stderr).toContain(`Invalid job id: '${id}' (expected 32 hex chars)`);
      expect(r.all).not.toContain('planted');
      expect(r.all).not.toMatch(STACK_LINE);
    }
    expect(existsSync(jobsDir)).toBe(false);
    expect(readFileSync(join(env.root, 'x.json'), 'utf8')).toBe(before);
  });

  it('an id with control characters is shown without them', async () => {
    const r = await run('job', '\u001b]0;pwned\u0007');
    expect(r.code).toBe(1);
    expect(r.stderr).not.toContain('\u001b');
  });
});

describe('cancel ID', () => {
  let sandbox: FakeSandbox;
  const cancel = (id: string) => capture(() => cancelCommand([id], new DispatchCore(process.env, sandbox).jobs));
  beforeEach(() => {
    sandbox = new FakeSandbox();
  });

  it('a pending job: cancelled, and any container of it removed', async () => {
    const pending = await job('pending');
    const r = await cancel(pending.id);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`Cancelled: ${pending.id}\n`);
    expect(store.get(pending.id)).toMatchObject({ status: 'cancelled', error: 'Cancelled before execution' });
    expect(sandbox.removedJobs).toEqual([pending.id]);
  });

  it('a running job is cancelled too (the original refused) and its container killed', async () => {
    const running = await job('running');
    const r = await cancel(running.id);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`Cancelled: ${running.id} (it was running; its container was killed and removed)\n`);
    expect(store.get(running.id)?.status).toBe('cancelled');
    expect(sandbox.removedJobs).toEqual([running.id]);
  });

  it.each(['done', 'failed', 'cancelled'] as const)('a %s job: "Job already …; nothing to cancel.", exit 0, untouched', async (status) => {
    const finished = await job(status);
    const before = readFileSync(join(jobsDir, `${finished.id}.json`), 'utf8');
    const r = await cancel(finished.id);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`Job already ${status}; nothing to cancel.\n`);
    expect(readFileSync(join(jobsDir, `${finished.id}.json`), 'utf8')).toBe(before);
    expect(sandbox.removedJobs).toEqual([]);
  });

  it('a missing job: exit 1', async () => {
    const r = await run('cancel', 'e'.repeat(32));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Job not found: ${'e'.repeat(32)}`);
  });

  it('no engine to remove its container: the job still reads cancelled, and the error says how to finish by hand', async () => {
    const running = await job('running');
    const r = await run('cancel', running.id);
    expect(r.stdout).toBe(`Cancelled: ${running.id}\n`);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('The job is cancelled, but its container could not be removed');
    expect(r.stderr).toContain(`docker rm -f $(docker ps -aq --filter label=agent-dispatch.job=${running.id})`);
    expect(r.all).not.toMatch(STACK_LINE);
    expect(store.get(running.id)?.status).toBe('cancelled');
  });
});

describe('gc: jobs', () => {
  async function mix(ageDays: number): Promise<Record<'done' | 'failed' | 'cancelled' | 'pending' | 'running', JobRecord>> {
    const ageSeconds = ageDays * 86_400;
    return {
      done: await job('done', { ageSeconds }),
      failed: await job('failed', { ageSeconds }),
      cancelled: await job('cancelled', { ageSeconds }),
      pending: await job('pending', { ageSeconds }),
      running: await job('running', { ageSeconds }),
    };
  }
  const left = () => readdirSync(jobsDir).filter((f) => f.endsWith('.json')).length;

  it('default 7 days: finished jobs older than that go; pending and running stay, whatever their age', async () => {
    await mix(8);
    await mix(1);
    const r = await run('gc');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Deleted 3 job(s) older than 7 day(s).\n');
    expect(left()).toBe(7);
    expect(r.stderr).toBe('');
  });

  it('--days N and --all', async () => {
    const recent = await mix(2);
    expect((await run('gc', '--days', '1')).stdout).toContain('Deleted 3 job(s) older than 1 day(s).');
    await mix(0);
    expect((await run('gc', '--all')).stdout).toContain('Deleted 3 terminal job(s) (all ages).');
    expect(store.get(recent.running.id)?.status).toBe('running');
    expect(left()).toBe(4);
  });

  it.each(['0', '-3'])('--days %s: exit 1 with the original message, nothing deleted', async (days) => {
    await mix(30);
    const r = await run('gc', '--days', days);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Error: --days must be > 0 (got ${days}). Use --all to purge every terminal job on purpose.`);
    expect(left()).toBe(5);
  });

  it('without --days, settings.job_retention_days decides when it is set', async () => {
    env.writeConfig({ agents: {}, settings: { job_retention_days: 30 } });
    await mix(20);
    expect((await run('gc')).stdout).toContain('Deleted 0 job(s) older than 30 day(s).');
    await mix(40);
    expect((await run('gc')).stdout).toContain('Deleted 3 job(s) older than 30 day(s).');
  });

  it('a broken config is not guessed around without --days; with --days it is not read', async () => {
    env.writeConfigText('agents: [oops');
    await mix(10);
    const r = await run('gc');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('is not valid YAML');
    expect(r.stderr).toContain('pass --days N');
    expect(left()).toBe(5);
    expect((await run('gc', '--days', '7')).stdout).toContain('Deleted 3 job(s)');
  });

  it('with no engine, the jobs are still collected and the volume check says it was skipped (exit 0)', async () => {
    await mix(10);
    const r = await run('gc');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Deleted 3 job(s)');
    expect(r.stdout).toContain(`Warning: volumes not checked on unix://${join(env.root, 'no-engine.sock')} (the environment's engine): Docker engine not reachable`);
  });
});

describe('gc: volumes', () => {
  let removed: AgentVolume[][];
  let asked: string[];

  function deps(volumes: AgentVolume[] | Error, options: { interactive?: boolean; answer?: boolean } = {}): GcDeps {
    return {
      jobs: new DispatchCore(process.env, new FakeSandbox()).jobs,
      engines: () => [{ label: 'local', spec: undefined }],
      listVolumes: async () => {
        if (volumes instanceof Error) throw volumes;
        return { agent: volumes, unusedSettings: [] };
      },
      removeVolumes: async (_engine, vs) => {
        removed.push(vs);
        return { removed: vs.map((v) => v.name), kept: [] };
      },
      confirm: async (q) => {
        asked.push(q);
        return options.answer ?? false;
      },
      interactive: options.interactive ?? false,
    };
  }

  /** A live agent in the current config, one removed from it, and a config directory that was deleted. */
  function world(): { live: AgentVolume; removedAgent: AgentVolume; deletedConfig: AgentVolume[] } {
    const repo = env.project('api');
    env.writeConfig({ agents: { api: { directory: repo } } });
    const scope = volumeScope(env.stateDir, repo);
    const goneDir = join(env.root, 'deleted-config');
    const goneScope = volumeScope(goneDir, repo);
    const webScope = volumeScope(env.stateDir, env.project('web'));
    return {
      live: { name: claudeStateVolume('api', scope), agent: 'api', scope, configDir: env.stateDir },
      removedAgent: { name: claudeStateVolume('web', webScope), agent: 'web', scope: webScope, configDir: env.stateDir },
      deletedConfig: [
        { name: claudeStateVolume('api', goneScope), agent: 'api', scope: goneScope, configDir: goneDir },
        { name: gatewayVolume('api', goneScope), agent: 'api', scope: goneScope, configDir: goneDir },
      ],
    };
  }

  beforeEach(() => {
    removed = [];
    asked = [];
  });

  it('not a terminal: the orphaned volumes are listed with why, kept, and the command to remove them is named', async () => {
    const w = world();
    const r = await capture(() => gcCommand([], deps([w.live, w.removedAgent, ...w.deletedConfig])));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('3 volume(s) of agents whose config no longer exists:\n');
    expect(r.stdout).toContain(`  ${w.removedAgent.name}  session — agent 'web' is no longer in ${env.configPath} (removed, or moved to another directory)\n`);
    expect(r.stdout).toContain(`  ${w.deletedConfig[0]!.name}  session — config directory ${join(env.root, 'deleted-config')} no longer exists\n`);
    expect(r.stdout).toContain(`  ${w.deletedConfig[1]!.name}  gateway — config directory`);
    expect(r.stdout).not.toContain(w.live.name);
    expect(r.stdout).toContain("Kept them. Remove them with 'agent-dispatch gc --volumes'.");
    expect(asked).toEqual([]);
    expect(removed).toEqual([]);
  });

  it('on a terminal it asks; "no" keeps them, "yes" removes exactly the orphaned ones', async () => {
    const w = world();
    await capture(() => gcCommand([], deps([w.live, w.removedAgent], { interactive: true, answer: false })));
    expect(asked).toEqual(['Remove these 1 volume(s) (session transcripts, gateway sockets, unused tool rules)?']);
    expect(removed).toEqual([]);
    const r = await capture(() => gcCommand([], deps([w.live, w.removedAgent, ...w.deletedConfig], { interactive: true, answer: true })));
    expect(removed).toEqual([[w.removedAgent, ...w.deletedConfig]]);
    expect(r.stdout).toContain('local: Removed 3 volume(s).');
  });

  it('--volumes removes them without asking', async () => {
    const w = world();
    const r = await capture(() => gcCommand(['--volumes'], deps([w.live, ...w.deletedConfig])));
    expect(r.code).toBe(0);
    expect(asked).toEqual([]);
    expect(removed).toEqual([w.deletedConfig]);
  });

  it('nothing orphaned: says so and removes nothing', async () => {
    const w = world();
    const r = await capture(() => gcCommand(['--volumes'], deps([w.live])));
    expect(r.stdout).toContain('No orphaned session or gateway volumes.');
    expect(removed).toEqual([]);
  });

  it('--volumes with the engine down fails (the jobs are collected first)', async () => {
    await job('done', { ageSeconds: 10 * 86_400 });
    await expect(capture(() => gcCommand(['--volumes'], deps(new Error('engine down'))))).rejects.toThrow('No Docker engine answered (local: engine down).');
    expect(readdirSync(jobsDir).filter((f) => f.endsWith('.json'))).toEqual([]);
  });

  it('a broken agents.yaml, or a volume without a recorded config directory that is not ours: kept, listed as undecidable', async () => {
    const w = world();
    const legacy: AgentVolume = { name: 'agent-dispatch-claude.old.0123456789ab', agent: 'old', scope: '0123456789ab' };
    const legacyLive: AgentVolume = { name: w.live.name, agent: 'api', scope: w.live.scope };
    let r = await capture(() => gcCommand(['--volumes'], deps([legacy, legacyLive])));
    expect(r.stdout).toContain('Kept 1 volume(s) whose config cannot be judged from here:');
    expect(r.stdout).toContain(`  ${legacy.name}  session — made before agent-dispatch recorded its config directory`);
    expect(r.stdout).not.toContain(`  ${w.live.name}`);
    expect(removed).toEqual([]);
    env.writeConfigText('agents: [oops');
    r = await capture(() => gcCommand(['--volumes', '--days', '7'], deps([w.removedAgent])));
    expect(r.stdout).toContain('Kept 1 volume(s) whose config cannot be judged from here:');
    expect(r.stdout).toContain('is not valid YAML');
    expect(removed).toEqual([]);
  });
});

describe('configScopes', () => {
  it('a directory with agents.yaml: the scopes of its agents; other YAML that is not a config is ignored', () => {
    const dir = join(env.root, 'cfg');
    mkdirSync(dir);
    writeFileSync(join(dir, 'agents.yaml'), 'agents:\n  api:\n    directory: /srv/api\n');
    writeFileSync(join(dir, 'other.yml'), 'services: {web: {image: x}}\n');
    const scopes = configScopes(dir);
    expect(scopes).toMatchObject({ kind: 'live', files: [join(dir, 'agents.yaml')] });
    expect(scopes.kind === 'live' && [...scopes.scopes]).toEqual([`api\0${volumeScope(dir, '/srv/api')}`]);
  });

  it('a config under another name counts too (AGENT_DISPATCH_CONFIG=/dir/team.yaml)', () => {
    const dir = join(env.root, 'cfg');
    mkdirSync(dir);
    writeFileSync(join(dir, 'team.yaml'), 'agents:\n  api:\n    directory: /srv/api\n');
    expect(configScopes(dir)).toMatchObject({ kind: 'live', files: [join(dir, 'team.yaml')] });
  });

  it('gone: the directory, or every config in it', () => {
    expect(configScopes(join(env.root, 'nope'))).toEqual({ kind: 'gone', reason: `config directory ${join(env.root, 'nope')} no longer exists` });
    const empty = join(env.root, 'empty');
    mkdirSync(empty);
    expect(configScopes(empty)).toEqual({ kind: 'gone', reason: `no config is left in ${empty}` });
    rmSync(empty, { recursive: true });
  });
});
