import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { run, setupEnv, STACK_LINE, type Env } from './cli-harness.js';

/** A disk that fills up on demand: the atomic write throws ENOSPC while `fail.on` is set (TestWriteFailureMessages). */
const fail = vi.hoisted(() => ({ on: false }));

vi.mock('../../src/config/atomic-write.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/config/atomic-write.js')>();
  return {
    ...real,
    writeFileAtomic(path: string, text: string) {
      if (fail.on) throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), { code: 'ENOSPC' });
      real.writeFileAtomic(path, text);
    },
  };
});

let env: Env;

beforeEach(() => {
  env = setupEnv();
  fail.on = false;
});

afterEach(() => {
  fail.on = false;
  env.cleanup();
});

describe('a failed config write is a message, not a trace', () => {
  it('add reports the write failure and that the previous config is intact', async () => {
    expect((await run('add', 'api', env.project('api'), '-d', 'first')).code).toBe(0);
    const before = readFileSync(env.configPath, 'utf8');
    fail.on = true;
    const r = await run('add', 'web', env.project('web'), '-d', 'second');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Error: could not write ${env.configPath}: ENOSPC: no space left on device`);
    expect(r.stderr).toContain('Nothing was changed — the previous config is intact (the write is atomic). Check free space and permissions.');
    expect(r.all).not.toMatch(STACK_LINE);
    expect(r.all).not.toContain('Unexpected error');
    expect(readFileSync(env.configPath, 'utf8')).toBe(before);
  });

  it('a failed remove leaves the agent in the config', async () => {
    expect((await run('add', 'api', env.project('api'), '-d', 'first')).code).toBe(0);
    fail.on = true;
    const r = await run('remove', 'api');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('previous config is intact');
    fail.on = false;
    const list = await run('list');
    expect(list.stdout).toContain('  api [OK]');
    expect(list.stdout).toContain('    desc: first');
  });

  it('a failed update keeps the original description', async () => {
    expect((await run('add', 'api', env.project('api'), '-d', 'original')).code).toBe(0);
    fail.on = true;
    const r = await run('update', 'api', '-d', 'changed');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('could not write');
    fail.on = false;
    expect((await run('list')).stdout).toContain('    desc: original');
  });

  it('init reports a failed first write and exits 1', async () => {
    fail.on = true;
    const r = await run('init', '--no-register');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('could not write');
    expect(r.all).not.toMatch(STACK_LINE);
    expect(env.configExists()).toBe(false);
  });
});
