import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { doctorCommand } from '../../src/cli/commands/doctor.js';
import type { EngineSpec } from '../../src/config/engine-spec.js';
import { configSchema, type DispatchConfig } from '../../src/config/schema.js';
import { AppError } from '../../src/errors.js';
import { EngineRouter, engineKeyOf } from '../../src/sandbox/engine-router.js';
import type { Engine } from '../../src/sandbox/engine.js';
import { LABELS } from '../../src/sandbox/owner.js';
import type { SandboxRun, SandboxRunner } from '../../src/sandbox/runner.js';
import { doctorEnvEach, fakeEngine } from '../helpers/fake-engine.js';
import { capture, run, setupEnv, type Env } from './cli-harness.js';

const TLS = { host: 'tcp://192.0.2.7:2376', tls_cert_dir: '/etc/certs' };

/** A runner double that records what reached it; `fail` makes its runs throw that error. */
function fakeRunner(name: string, log: string[], fail?: Error) {
  const runner = {
    name,
    warmEnabled: false,
    async run(request: SandboxRun) {
      log.push(`${name} run ${request.spec.Labels[LABELS.agent]}`);
      if (fail) throw fail;
      return { containerId: name } as unknown as Awaited<ReturnType<SandboxRunner['run']>>;
    },
    async removeJobContainers(job: string) {
      log.push(`${name} cancel ${job}`);
      if (name.includes('down')) throw new Error('engine down');
      return 1;
    },
    async reapOrphans() {
      log.push(`${name} reap`);
      return 2;
    },
    sweepRunDir() {
      log.push(`${name} sweep`);
      return 0;
    },
    enableWarmPool() {
      runner.warmEnabled = true;
    },
    warmPool: {
      async forget(agent: string) {
        log.push(`${name} forget ${agent}`);
      },
      status: () => [{ agent: name }],
    },
    async shutdown() {
      log.push(`${name} shutdown`);
    },
    overlay: {
      check: async () => undefined,
      mount: () => ({ Type: 'volume', Source: `${name}-overlay`, Target: '/repo' }),
      listMerged: async () => new Map(),
      removeContents: async () => undefined,
    },
  };
  return runner;
}

function config(agents: Record<string, EngineSpec | undefined>, settings: EngineSpec | undefined = undefined): DispatchConfig {
  return configSchema.parse({
    agents: Object.fromEntries(Object.entries(agents).map(([name, engine]) => [name, { directory: '/tmp', ...(engine ? { engine } : {}) }])),
    settings: settings ? { engine: settings } : {},
  });
}

function request(agent: string): SandboxRun {
  return { spec: { Labels: { [LABELS.agent]: agent } } } as unknown as SandboxRun;
}

function router(fail?: Error) {
  const log: string[] = [];
  const made: Array<ReturnType<typeof fakeRunner>> = [];
  const r = new EngineRouter((spec) => {
    const runner = fakeRunner(spec === undefined ? 'local' : typeof spec === 'string' ? spec : spec.host, log, spec === undefined ? undefined : fail);
    made.push(runner);
    return runner as unknown as SandboxRunner;
  });
  return { r, log, made };
}

describe('EngineRouter', () => {
  it("routes each run to its agent's engine, settings.engine for agents without one, one runner per engine", async () => {
    const { r, log, made } = router();
    const sandbox = r.bind(config({ a: 'unix:///run/a.sock', b: 'unix:///run/a.sock', c: undefined, d: TLS }));
    for (const agent of ['a', 'b', 'c', 'd', 'a']) await sandbox.run(request(agent));
    expect(log).toEqual(['unix:///run/a.sock run a', 'unix:///run/a.sock run b', 'local run c', 'tcp://192.0.2.7:2376 run d', 'unix:///run/a.sock run a']);
    expect(made.map((m) => m.name)).toEqual(['unix:///run/a.sock', 'local', 'tcp://192.0.2.7:2376']);

    const viaSettings = r.bind(config({ c: undefined, e: 'unix:///run/e.sock' }, 'ssh://ops@build-host'));
    await viaSettings.run(request('c'));
    await viaSettings.run(request('e'));
    expect(log.slice(-2)).toEqual(['ssh://ops@build-host run c', 'unix:///run/e.sock run e']);
  });

  it('a dispatch keeps the engine of the config it was checked against', async () => {
    const { r, log } = router();
    const before = r.bind(config({ a: 'unix:///run/old.sock' }));
    r.bind(config({ a: 'unix:///run/new.sock' }));
    await before.run(request('a'));
    expect(log).toEqual(['unix:///run/old.sock run a']);
  });

  it('a missing image on a remote engine says to copy it there, naming the agent and the engine', async () => {
    const missing = new AppError('IMAGE_NOT_FOUND', 'The sandbox image agent-dispatch/agent:latest is not on this machine (agent-dispatch never pulls images).', { hint: 'build it' });
    const { r } = router(missing);
    const error = (await r.bind(config({ far: TLS })).run(request('far')).catch((e: unknown) => e)) as AppError;
    expect(error).toBeInstanceOf(AppError);
    expect(error.code).toBe('IMAGE_NOT_FOUND');
    expect(error.message).toContain("is not on engine tcp://192.0.2.7:2376 of agent 'far'");
    expect(error.hint).toContain('agent-dispatch image copy --agent far');
    const other = new AppError('SANDBOX_FAILED', 'boom');
    const passed = await router(other).r.bind(config({ far: TLS })).run(request('far')).catch((e: unknown) => e);
    expect(passed).toBe(other);
  });

  it('reaps, cancels and shuts down on every engine the config names; one engine down does not stop the others', async () => {
    const { r, log, made } = router();
    r.useConfig(config({ a: 'unix:///run/a.sock', b: 'unix:///run/down.sock', c: undefined }, TLS));
    r.enableWarmPool();
    expect(await r.startup()).toBe(8);
    expect(log.filter((l) => l.endsWith('reap')).sort()).toEqual(['local reap', 'tcp://192.0.2.7:2376 reap', 'unix:///run/a.sock reap', 'unix:///run/down.sock reap']);
    expect(log).toContain('local sweep');
    expect(made.every((m) => m.warmEnabled)).toBe(true);
    expect(await r.removeJobContainers('job1')).toBe(3);
    expect(log.filter((l) => l.includes('cancel job1'))).toHaveLength(4);
    await r.forgetAgent('a');
    expect(log.filter((l) => l.endsWith('forget a'))).toHaveLength(4);
    expect(r.warmPoolStatus()).toHaveLength(4);
    await r.shutdown();
    expect(log.filter((l) => l.endsWith('shutdown'))).toHaveLength(4);
  });

  it('refuses repo: overlay for an agent on another engine, before anything is made', () => {
    const { r } = router();
    const sandbox = r.bind(config({ near: undefined, far: 'ssh://u@h' }));
    expect(sandbox.overlay.mount('/repo', {} as never, { [LABELS.agent]: 'near' })).toMatchObject({ Source: 'local-overlay' });
    expect(() => sandbox.overlay.mount('/repo', {} as never, { [LABELS.agent]: 'far' })).toThrow(/another Docker engine \(ssh:\/\/u@h:22\)/);
  });

  it('keys engines by what they are, not how they are written', () => {
    expect(engineKeyOf('ssh://u@h')).toBe(engineKeyOf('ssh://u@h:22'));
    expect(engineKeyOf(undefined)).toBe('environment');
  });
});

describe('doctor checks each engine the config names', () => {
  const envOf = doctorEnvEach();

  const engine = (images: string[], down = false): Engine =>
    fakeEngine({ images, down, version: '20.10.24', apiVersion: '1.41', downMessage: 'Docker engine not reachable (connect ECONNREFUSED 192.0.2.7:2376).' });

  it('reachable with its version, images present or a copy hint; an unreachable engine fails', async () => {
    const dir = envOf().project('api');
    envOf().writeConfig({ agents: { far: { directory: dir, engine: TLS }, down: { directory: dir, engine: 'ssh://ops@gone' }, near: { directory: dir } } });
    const asked: string[] = [];
    const engines: Record<string, Engine> = {
      [TLS.host]: engine(['agent-dispatch/agent:latest']),
      'ssh://ops@gone': engine([], true),
    };
    const r = await capture(() =>
      doctorCommand([], engine(['agent-dispatch/agent:latest', 'agent-dispatch/gateway:latest']), (spec) => {
        const key = typeof spec === 'string' ? spec : spec.host;
        asked.push(key);
        return engines[key]!;
      }),
    );
    expect(asked.sort()).toEqual(['ssh://ops@gone', TLS.host].sort());
    expect(r.stdout).toContain('Remote engines');
    expect(r.stdout).toContain('[OK] tcp://192.0.2.7:2376 reachable: server 20.10.24 (API 1.41)');
    expect(r.stdout).toContain('[OK] tcp://192.0.2.7:2376: agent-dispatch/agent:latest present');
    expect(r.stdout).toMatch(/\[FAIL\] tcp:\/\/192\.0\.2\.7:2376: agent-dispatch\/gateway:latest is not there[^\n]*\n\s+Copy it from this machine: agent-dispatch image copy --agent far/);
    expect(r.stdout).toMatch(/\[FAIL\] ssh:\/\/ops@gone:22: Docker engine not reachable/);
    expect(r.code).toBe(1);
  });

  it('a config without engines has no remote section', async () => {
    envOf().writeConfig({ agents: { near: { directory: envOf().project('api') } } });
    const r = await capture(() => doctorCommand([], engine(['agent-dispatch/agent:latest', 'agent-dispatch/gateway:latest']), () => {
      throw new Error('no engine should be made');
    }));
    expect(r.stdout).not.toContain('Remote engines');
  });
});

describe('image copy: what it refuses before talking to any engine', () => {
  let env: Env;
  beforeEach(() => {
    env = setupEnv();
  });
  afterEach(() => env.cleanup());

  it('needs exactly one of --agent and --engine; --tls-cert-dir only with --engine', async () => {
    for (const argv of [[], ['--agent', 'a', '--engine', 'unix:///x.sock'], ['--agent', 'a', '--tls-cert-dir', '/c']]) {
      const r = await run('image', 'copy', ...argv);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('image copy needs --agent NAME or --engine SPEC');
    }
  });

  it('refuses plain tcp to another host, and an agent that runs on this machine', async () => {
    const plain = await run('image', 'copy', '--engine', 'tcp://192.0.2.1:2375');
    expect(plain.code).toBe(2);
    expect(plain.stderr).toContain('plain TCP without TLS');
    env.writeConfig({ agents: { near: { directory: env.project('api') } } });
    const near = await run('image', 'copy', '--agent', 'near');
    expect(near.code).toBe(2);
    expect(near.stderr).toContain("runs on this machine's engine");
    const unknown = await run('image', 'copy', '--agent', 'ghost');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("'ghost'");
  });
});
