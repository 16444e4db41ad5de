/**
 * Where the warm pool shows: doctor's "Warm pool" section (settings.warm_pool and the pre-started sandboxes on
 * the engine) and inspect_agent's `warm_pool` (the settings and this server's sandboxes of the agent).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { doctorCommand } from '../../src/cli/commands/doctor.js';
import type { Engine } from '../../src/sandbox/engine.js';
import { capture, fakeAgentDispatch, fakeClaude, oursServer, setupEnv, type Env } from './cli-harness.js';
import { configYaml, startHarness, type Harness } from './mcp-harness.js';

describe('doctor: the warm pool', () => {
  let env: Env;

  beforeEach(() => {
    env = setupEnv();
    vi.stubEnv('ANTHROPIC_API_KEY', 'sk-doctor-test');
    fakeClaude(env.binDir, { servers: [oursServer('user')] });
    fakeAgentDispatch(env.binDir);
  });

  afterEach(() => {
    env.cleanup();
    vi.unstubAllEnvs();
  });

  function engine(warm: Map<string, number> | Error): Engine {
    return {
      info: async () => ({ version: '27.0.0', apiVersion: '1.46' }),
      imageExists: async () => true,
      imageLabels: async () => ({}),
      warmSandboxes: async () => {
        if (warm instanceof Error) throw warm;
        return warm;
      },
    };
  }

  const doctor = (e: Engine) => capture(() => doctorCommand([], e));

  it('shows the settings and the pre-started sandboxes on the engine per agent', async () => {
    env.writeConfig({ agents: { api: { directory: env.project('api', {}) } }, settings: { warm_pool: { size: 2, idle_minutes: 5, memory_mb: 512 } } });
    const r = await doctor(engine(new Map([['api', 2], ['web', 1]])));
    expect(r.stdout).toContain('Warm pool');
    expect(r.stdout).toContain('[OK] 2 pre-started sandboxes per agent dispatched in the last 5 min (a serving server only; at most 512 MB idle in all)');
    expect(r.stdout).toContain('[OK] Pre-started sandboxes on the engine now (idle or serving): api 2, web 1');
  });

  it('warm_pool: 0 is shown as off; none on the engine is said plainly; a failed listing is a warning', async () => {
    env.writeConfig({ agents: { api: { directory: env.project('api', {}) } }, settings: { warm_pool: 0 } });
    const off = await doctor(engine(new Map()));
    expect(off.stdout).toContain('[OK] Off (settings.warm_pool: 0): every dispatch starts a fresh container');
    expect(off.stdout).toContain('[OK] No pre-started sandbox on the engine now');
    const failed = await doctor(engine(new Error('engine hiccup')));
    expect(failed.stdout).toContain('[WARN] Could not list the pre-started sandboxes: engine hiccup');
  });
});

describe('inspect_agent: the warm pool', () => {
  let h: Harness;

  beforeEach(async () => {
    h = await startHarness({ sandbox: { run: () => Promise.reject(new Error('no dispatch in this test')) } });
  });

  afterEach(async () => {
    await h.close();
  });

  it('reports the agent’s warm_pool settings (defaults when absent) and what this server holds for it', async () => {
    const dir = h.project('api', {});
    h.writeConfig(configYaml({ agents: { api: { directory: dir } } }));
    const defaults = await h.call('inspect_agent', { name: 'api' });
    expect(defaults.json).toMatchObject({ warm_pool: { size: 1, idle_minutes: 10, memory_mb: 1024, idle: 0, ready: 0, starting: false } });
    h.writeConfig(configYaml({ agents: { api: { directory: dir } }, settings: { warm_pool: 3 } }));
    const sized = await h.call('inspect_agent', { name: 'api' });
    expect(sized.json).toMatchObject({ warm_pool: { size: 3, idle_minutes: 10, memory_mb: 1024, idle: 0 } });
  });
});
