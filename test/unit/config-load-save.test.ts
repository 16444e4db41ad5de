import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { AppError } from '../../src/errors.js';
import { configPath, jobsDir, stateDir } from '../../src/config/paths.js';
import { describeConfigProblem, firstBadByte, loadConfig, requireConfig, sentence, type ConfigLoad } from '../../src/config/load.js';
import { renderConfig, saveConfig } from '../../src/config/save.js';
import { mutateConfig, readConfig } from '../../src/config/store.js';
import { withFileLock } from '../../src/config/lock.js';
import { configSchema, emptyConfig, parseAgent, type DispatchConfig } from '../../src/config/schema.js';
import { ORIGINAL_DEFAULT_SETTINGS } from '../helpers/fixtures.js';

let dir: string;
let cfg: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ad-config-'));
  cfg = join(dir, 'agents.yaml');
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function invalid(load: ConfigLoad): Extract<ConfigLoad, { kind: 'invalid' }> {
  expect(load.kind).toBe('invalid');
  return load as Extract<ConfigLoad, { kind: 'invalid' }>;
}

function ok(load: ConfigLoad): DispatchConfig {
  expect(load.kind, load.kind === 'invalid' ? describeConfigProblem(load) : '').toBe('ok');
  return (load as Extract<ConfigLoad, { kind: 'ok' }>).config;
}

function withAgent(config: DispatchConfig, name: string, fields: Record<string, unknown> = {}): DispatchConfig {
  config.agents[name] = parseAgent({ directory: dir, ...fields });
  return config;
}

function tempFiles(where: string): string[] {
  return readdirSync(where).filter((f) => f.endsWith('.tmp'));
}

function expectAppError(error: unknown, code: string): AppError {
  expect(error).toBeInstanceOf(AppError);
  expect((error as AppError).code).toBe(code);
  return error as AppError;
}

describe('loadConfig', () => {
  it("reports a missing file as kind 'missing' with an empty config", () => {
    const load = loadConfig(join(dir, 'nope.yaml'));
    expect(load.kind).toBe('missing');
    expect(load).toMatchObject({ path: join(dir, 'nope.yaml') });
    expect((load as Extract<ConfigLoad, { kind: 'missing' }>).config).toEqual(emptyConfig());
    expect(requireConfig(load)).toEqual(emptyConfig());
  });

  it('loads an empty file (or only comments) as an empty config', () => {
    writeFileSync(cfg, '');
    expect(ok(loadConfig(cfg))).toEqual(emptyConfig());
    writeFileSync(cfg, '# nothing here yet\n');
    expect(ok(loadConfig(cfg))).toEqual(emptyConfig());
  });

  it('reads AGENT_DISPATCH_CONFIG through configPath() on every call', () => {
    const other = join(dir, 'elsewhere', 'my-agents.yaml');
    mkdirSync(join(dir, 'elsewhere'));
    writeFileSync(other, `agents:\n  api:\n    directory: ${dir}\n    description: from env\n`);
    vi.stubEnv('AGENT_DISPATCH_CONFIG', other);
    vi.stubEnv('AGENT_DISPATCH_JOBS_DIR', '');
    expect(configPath()).toBe(other);
    expect(stateDir()).toBe(join(dir, 'elsewhere'));
    expect(jobsDir()).toBe(join(dir, 'elsewhere', 'jobs'));
    expect(ok(loadConfig()).agents['api']!.description).toBe('from env');
    expect(readConfig().agents['api']!.description).toBe('from env');
    vi.stubEnv('AGENT_DISPATCH_CONFIG', join(dir, 'none.yaml'));
    expect(loadConfig().kind).toBe('missing');
  });

  it('defaults to ~/.config/agent-dispatch/agents.yaml and expands ~ in the override', () => {
    expect(configPath({})).toBe(join(homedir(), '.config', 'agent-dispatch', 'agents.yaml'));
    expect(configPath({ AGENT_DISPATCH_CONFIG: '~/x/agents.yaml' })).toBe(join(homedir(), 'x', 'agents.yaml'));
    expect(jobsDir({ AGENT_DISPATCH_CONFIG: '/a/b/agents.yaml', AGENT_DISPATCH_JOBS_DIR: '/j' })).toBe('/j');
  });

  it('rejects !!python/object tags: invalid YAML, never executed, never accepted', () => {
    const marker = join(dir, 'pwned');
    writeFileSync(cfg, `agents:\n  x: !!python/object/apply:os.system ["touch ${marker}"]\n`);
    const load = invalid(loadConfig(cfg));
    expect(load.problem).toBe('yaml');
    expect(load.detail).toContain('python/object/apply:os.system');
    expect(existsSync(marker)).toBe(false);
    expect(() => requireConfig(load)).toThrowError(expect.objectContaining({ code: 'CONFIG_INVALID' }));

    writeFileSync(cfg, '!!python/object/apply:os.system\nargs: ["true"]\n');
    expect(invalid(loadConfig(cfg)).problem).toBe('yaml');
  });

  it("reports non-UTF-8 bytes (cp1251) as problem 'encoding'", () => {
    const cp1251Privet = Buffer.from([0xcf, 0xf0, 0xe8, 0xe2, 0xe5, 0xf2]);
    writeFileSync(cfg, Buffer.concat([Buffer.from(`agents:\n  api:\n    directory: ${dir}\n    description: `), cp1251Privet, Buffer.from('\n')]));
    const load = invalid(loadConfig(cfg));
    expect(load.problem).toBe('encoding');
    expect(load.detail).toMatch(/byte 0x[0-9a-f]{2} on line 4/);
    const line = describeConfigProblem(load);
    expect(line).toContain('UTF-8');
    expect(line).not.toContain('\n');
  });

  it("reports broken YAML as problem 'yaml' with one line", () => {
    writeFileSync(cfg, 'agents:\n  api: [unclosed\n  web: {\n');
    const load = invalid(loadConfig(cfg));
    expect(load.problem).toBe('yaml');
    expect(describeConfigProblem(load)).not.toContain('\n');
    expect(describeConfigProblem(load)).toContain(cfg);
  });

  it("reports a duplicate key as problem 'yaml'", () => {
    writeFileSync(cfg, `agents:\n  api:\n    directory: ${dir}\n  api:\n    directory: /tmp\n`);
    expect(invalid(loadConfig(cfg)).problem).toBe('yaml');
  });

  it('describes a typo as one line with the file, the key path and a suggestion', () => {
    writeFileSync(cfg, `agents:\n  api:\n    directory: ${dir}\n    allowed_tool: [Read]\n`);
    const load = invalid(loadConfig(cfg));
    expect(load.problem).toBe('schema');
    const line = describeConfigProblem(load);
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toContain(cfg);
    expect(line).toContain('agents.api.allowed_tool');
    expect(line).toContain("did you mean 'allowed_tools'");
  });

  it('suggests keys in settings and cache too', () => {
    writeFileSync(cfg, 'settings:\n  max_concurency: 2\n  cache:\n    ttll: 5\n');
    const line = describeConfigProblem(invalid(loadConfig(cfg)));
    expect(line).toContain("settings.max_concurency: unknown key; did you mean 'max_concurrency'");
    expect(line).toContain("settings.cache.ttll: unknown key; did you mean 'ttl'");
  });

  it('names the key and the wrong value of a wrong type', () => {
    writeFileSync(cfg, `agents:\n  x:\n    directory: ${dir}\n    timeout: "abc"\n`);
    const load = invalid(loadConfig(cfg));
    expect(load.problem).toBe('schema');
    const line = describeConfigProblem(load);
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toContain('agents.x.timeout');
    expect(line).toContain('expected number, got string "abc"');
  });

  it('says a required key is missing', () => {
    writeFileSync(cfg, 'agents:\n  x:\n    description: no directory\n');
    expect(describeConfigProblem(invalid(loadConfig(cfg)))).toContain('agents.x.directory: expected string, got nothing (the key is missing)');
  });

  it('says why an agent name is invalid', () => {
    writeFileSync(cfg, `agents:\n  -bad:\n    directory: ${dir}\n`);
    expect(describeConfigProblem(invalid(loadConfig(cfg)))).toContain("agents.-bad: Invalid agent name: '-bad'");
  });

  it("reports a directory where the file should be as 'unreadable' (CONFIG_UNREADABLE)", () => {
    mkdirSync(cfg);
    const load = invalid(loadConfig(cfg));
    expect(load.problem).toBe('unreadable');
    let caught: unknown;
    try {
      requireConfig(load);
    } catch (error) {
      caught = error;
    }
    expect(expectAppError(caught, 'CONFIG_UNREADABLE').message).toContain(cfg);
  });
});

describe('saveConfig', () => {
  it('round-trips an agent', () => {
    saveConfig(withAgent(emptyConfig(), 'api', { description: 'The API', timeout: 60, max_budget_usd: 0.5, allowed_tools: [] }), cfg);
    const agent = ok(loadConfig(cfg)).agents['api']!;
    expect(agent.description).toBe('The API');
    expect(agent.timeout).toBe(60);
    expect(agent.max_budget_usd).toBe(0.5);
    expect(agent.allowed_tools).toEqual([]);
    expect(agent.disallowed_tools).toBeUndefined();
    expect(agent.directory).toBe(dir);
    expect(agent.policy).toBe('default');
  });

  it('round-trips settings', () => {
    const config = emptyConfig();
    config.settings.max_concurrency = 2;
    config.settings.cache.enabled = false;
    config.settings.cache.ttl = 0;
    saveConfig(config, cfg);
    const settings = ok(loadConfig(cfg)).settings;
    expect(settings.max_concurrency).toBe(2);
    expect(settings.cache).toEqual({ enabled: false, ttl: 0, max_size: 1000 });
  });

  it('writes the full settings block for an empty config (what init writes)', () => {
    saveConfig(emptyConfig(), cfg);
    expect(parse(readFileSync(cfg, 'utf8'))).toEqual({
      agents: {},
      settings: ORIGINAL_DEFAULT_SETTINGS,
    });
  });

  it('is owner-only: file 0600, new directory 0700', () => {
    const nested = join(dir, 'a', 'b', 'agents.yaml');
    saveConfig(emptyConfig(), nested);
    expect(statSync(nested).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'a', 'b')).mode & 0o777).toBe(0o700);
  });

  it('tightens an existing world-readable file to 0600', () => {
    writeFileSync(cfg, 'agents: {}\n', { mode: 0o644 });
    saveConfig(emptyConfig(), cfg);
    expect(statSync(cfg).mode & 0o777).toBe(0o600);
  });

  it('omits empty capabilities; declared ones round-trip', () => {
    const config = withAgent(emptyConfig(), 'plain');
    withAgent(config, 'rich', { capabilities: ['sql_queries'], risky_capabilities: ['prod_access'] });
    saveConfig(config, cfg);
    const data = parse(readFileSync(cfg, 'utf8'));
    expect(data.agents.plain).not.toHaveProperty('capabilities');
    expect(data.agents.plain).not.toHaveProperty('risky_capabilities');
    const loaded = ok(loadConfig(cfg));
    expect(loaded.agents['rich']!.capabilities).toEqual(['sql_queries']);
    expect(loaded.agents['rich']!.risky_capabilities).toEqual(['prod_access']);
    expect(loaded.agents['plain']!.capabilities).toEqual([]);
  });

  it('drops null and unset optional fields, keeps empty strings', () => {
    const config = withAgent(emptyConfig(), 'api', { model: null, description: '' });
    saveConfig(config, cfg);
    const agent = parse(readFileSync(cfg, 'utf8')).agents.api;
    expect(agent).not.toHaveProperty('model');
    expect(agent).not.toHaveProperty('allowed_tools');
    expect(agent.description).toBe('');
  });

  it('round-trips groups and writes keys in the order agents, groups, settings', () => {
    const config = withAgent(withAgent(emptyConfig(), 'api'), 'web');
    config.groups['product'] = {
      description: 'product team',
      shared_context: 'monorepo',
      members: [
        { agent: 'api', use_for: 'backend' },
        { agent: 'web', use_for: '' },
      ],
    };
    saveConfig(config, cfg);
    const text = readFileSync(cfg, 'utf8');
    expect(Object.keys(parse(text))).toEqual(['agents', 'groups', 'settings']);
    expect(ok(loadConfig(cfg)).groups).toEqual(config.groups);
  });

  it('omits groups entirely when there are none', () => {
    saveConfig(withAgent(emptyConfig(), 'api'), cfg);
    const text = readFileSync(cfg, 'utf8');
    expect(text).not.toMatch(/^groups:/m);
    expect(Object.keys(parse(text))).toEqual(['agents', 'settings']);
  });

  it('prunes an empty members list', () => {
    const config = emptyConfig();
    config.groups['lonely'] = { description: 'nobody yet', shared_context: '', members: [] };
    saveConfig(config, cfg);
    const data = parse(readFileSync(cfg, 'utf8'));
    expect(data.groups.lonely).toEqual({ description: 'nobody yet', shared_context: '' });
    expect(ok(loadConfig(cfg)).groups['lonely']!.members).toEqual([]);
  });

  it('round-trips a Cyrillic description unescaped', () => {
    saveConfig(withAgent(emptyConfig(), 'ru', { description: 'Привет, мир — сервис платежей' }), cfg);
    const text = readFileSync(cfg, 'utf8');
    expect(text).toContain('Привет, мир — сервис платежей');
    expect(text).not.toMatch(/\\u[0-9a-f]{4}|\\x[0-9a-f]{2}/i);
    expect(ok(loadConfig(cfg)).agents['ru']!.description).toBe('Привет, мир — сервис платежей');
  });

  it('round-trips descriptions that look like other YAML types', () => {
    const tricky = ['yes', 'null', '123', '- item', 'key: value', '#hash', "it's", 'multi\nline'];
    const config = emptyConfig();
    tricky.forEach((description, i) => withAgent(config, `a${i}`, { description }));
    saveConfig(config, cfg);
    const loaded = ok(loadConfig(cfg));
    tricky.forEach((description, i) => expect(loaded.agents[`a${i}`]!.description).toBe(description));
  });

  it('renders what it saves', () => {
    const config = withAgent(emptyConfig(), 'api');
    saveConfig(config, cfg);
    expect(readFileSync(cfg, 'utf8')).toBe(renderConfig(config));
  });

  it('leaves no temp files after a normal save', () => {
    saveConfig(emptyConfig(), cfg);
    saveConfig(withAgent(emptyConfig(), 'api'), cfg);
    expect(readdirSync(dir)).toEqual(['agents.yaml']);
  });

  it('writes through a symlink: the link stays, the real file is updated', () => {
    const dotfiles = join(dir, 'dotfiles');
    const config = join(dir, 'config');
    mkdirSync(dotfiles);
    mkdirSync(config);
    const real = join(dotfiles, 'agents.yaml');
    const link = join(config, 'agents.yaml');
    writeFileSync(real, 'agents: {}\n');
    symlinkSync(real, link);
    saveConfig(withAgent(emptyConfig(), 'linked', { description: 'via link' }), link);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe(real);
    expect(ok(loadConfig(real)).agents['linked']!.description).toBe('via link');
    expect(tempFiles(dotfiles)).toEqual([]);
    expect(tempFiles(config)).toEqual([]);
  });
});

describe('atomic save failures', () => {
  it('a write that fails leaves the original bytes intact and no temp file (real ENAMETOOLONG)', () => {
    // The temp file name is longer than the target's; a 250-byte name is valid, its temp name is not.
    const target = join(dir, `${'a'.repeat(245)}.yaml`);
    const original = `agents:\n  keep:\n    directory: ${dir}\n`;
    writeFileSync(target, original);
    let caught: unknown;
    try {
      saveConfig(emptyConfig(), target);
    } catch (error) {
      caught = error;
    }
    const error = expectAppError(caught, 'CONFIG_WRITE_FAILED');
    expect(error.hint).toContain('previous config is intact');
    expect(error.message).toContain(target);
    expect(readFileSync(target, 'utf8')).toBe(original);
    expect(tempFiles(dir)).toEqual([]);
  });

  it('a failed replace removes the temp file it had written (real EISDIR on rename)', () => {
    mkdirSync(cfg);
    writeFileSync(join(cfg, 'inside'), 'untouched');
    expect(() => saveConfig(emptyConfig(), cfg)).toThrowError(expect.objectContaining({ code: 'CONFIG_WRITE_FAILED' }));
    expect(tempFiles(dir)).toEqual([]);
    expect(readFileSync(join(cfg, 'inside'), 'utf8')).toBe('untouched');
  });

  it('a parent that is a regular file is a CONFIG_WRITE_FAILED with the intact hint', () => {
    const parent = join(dir, 'not-a-dir');
    writeFileSync(parent, 'just a file');
    let caught: unknown;
    try {
      saveConfig(emptyConfig(), join(parent, 'agents.yaml'));
    } catch (error) {
      caught = error;
    }
    expect(expectAppError(caught, 'CONFIG_WRITE_FAILED').hint).toContain('previous config is intact');
    expect(readFileSync(parent, 'utf8')).toBe('just a file');
    expect(tempFiles(dir)).toEqual([]);
  });
});

describe('mutateConfig', () => {
  it('creates the file when it is missing and returns the mutation result', async () => {
    const result = await mutateConfig((config) => {
      withAgent(config, 'api');
      return 'added';
    }, cfg);
    expect(result).toBe('added');
    expect(Object.keys(ok(loadConfig(cfg)).agents)).toEqual(['api']);
    expect(existsSync(`${cfg}.lock`)).toBe(false);
  });

  it('never overwrites an invalid config', async () => {
    const broken = `agents:\n  api:\n    directory: ${dir}\n    allowed_tool: [Read]\n`;
    writeFileSync(cfg, broken);
    const mutate = vi.fn((config: DispatchConfig) => withAgent(config, 'new'));
    await expect(mutateConfig(mutate, cfg)).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('agents.api.allowed_tool') });
    expect(mutate).not.toHaveBeenCalled();
    expect(readFileSync(cfg, 'utf8')).toBe(broken);
    expect(existsSync(`${cfg}.lock`)).toBe(false);
  });

  it('never overwrites an undecodable config', async () => {
    const bytes = Buffer.from([0x61, 0x67, 0x65, 0x6e, 0x74, 0x73, 0x3a, 0x20, 0xff, 0x0a]);
    writeFileSync(cfg, bytes);
    await expect(mutateConfig((c) => c, cfg)).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    expect(readFileSync(cfg)).toEqual(bytes);
  });

  it('does not save when the mutation throws', async () => {
    saveConfig(withAgent(emptyConfig(), 'api'), cfg);
    const before = readFileSync(cfg, 'utf8');
    await expect(
      mutateConfig((config) => {
        withAgent(config, 'half');
        throw new Error('changed my mind');
      }, cfg),
    ).rejects.toThrow('changed my mind');
    expect(readFileSync(cfg, 'utf8')).toBe(before);
  });

  it('serialises concurrent writers in one process: every agent lands', async () => {
    const names = ['alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta'];
    await Promise.all(names.map((name) => mutateConfig((config) => withAgent(config, name), cfg)));
    expect(Object.keys(ok(loadConfig(cfg)).agents).sort()).toEqual([...names].sort());
  });
});

describe('withFileLock', () => {
  const children: ChildProcess[] = [];

  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  /** A node process that creates the lock file (O_EXCL, its own PID), says so, and removes it after `holdMs`. */
  async function foreignHolder(lockPath: string, holdMs: number): Promise<ChildProcess> {
    const script = `
      const fs = require('node:fs');
      fs.writeFileSync(process.argv[1], process.pid + '\\n', { flag: 'wx', mode: 0o600 });
      process.stdout.write('locked\\n');
      setTimeout(() => { fs.unlinkSync(process.argv[1]); process.stdout.write('released\\n'); setTimeout(() => {}, 60000); }, Number(process.argv[2]));
    `;
    const child = spawn(process.execPath, ['-e', script, lockPath, String(holdMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    const [chunk] = (await once(child.stdout!, 'data')) as [Buffer];
    expect(chunk.toString()).toContain('locked');
    return child;
  }

  it('runs fn, returns its value, and removes the lock file; the lock file is 0600 while held', async () => {
    const lock = join(dir, 'x.lock');
    const value = await withFileLock(lock, () => {
      expect(readFileSync(lock, 'utf8').split(' ')[0]).toBe(String(process.pid));
      expect(statSync(lock).mode & 0o777).toBe(0o600);
      return 42;
    });
    expect(value).toBe(42);
    expect(existsSync(lock)).toBe(false);
  });

  it('releases the lock when fn throws', async () => {
    const lock = join(dir, 'x.lock');
    await expect(withFileLock(lock, () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(existsSync(lock)).toBe(false);
    await expect(withFileLock(lock, () => 'again', { timeoutMs: 200 })).resolves.toBe('again');
  });

  it('serialises critical sections in one process (no overlap, FIFO)', async () => {
    const lock = join(dir, 'x.lock');
    const events: string[] = [];
    let inside = 0;
    const section = (id: number) =>
      withFileLock(lock, async () => {
        inside++;
        expect(inside).toBe(1);
        events.push(`in${id}`);
        await new Promise((r) => setTimeout(r, 10));
        events.push(`out${id}`);
        inside--;
        return id;
      });
    expect(await Promise.all([section(1), section(2), section(3)])).toEqual([1, 2, 3]);
    expect(events).toEqual(['in1', 'out1', 'in2', 'out2', 'in3', 'out3']);
  });

  it('gives up with CONFIG_LOCKED while another live process holds the lock', async () => {
    const lock = join(dir, 'agents.yaml.lock');
    const holder = await foreignHolder(lock, 60_000);
    const fn = vi.fn();
    const started = Date.now();
    let caught: unknown;
    try {
      await withFileLock(lock, fn, { timeoutMs: 300, pollMs: 20 });
    } catch (error) {
      caught = error;
    }
    const error = expectAppError(caught, 'CONFIG_LOCKED');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    expect(error.message).toContain(String(holder.pid));
    expect(error.hint).toContain(lock);
    expect(fn).not.toHaveBeenCalled();
    expect(readFileSync(lock, 'utf8').trim()).toBe(String(holder.pid));
  });

  it('waits for another process to release the lock, then runs', async () => {
    const lock = join(dir, 'agents.yaml.lock');
    const holder = await foreignHolder(lock, 400);
    const started = Date.now();
    const ran = await withFileLock(
      lock,
      () => {
        expect(readFileSync(lock, 'utf8').split(' ')[0]).toBe(String(process.pid));
        return Date.now() - started;
      },
      { timeoutMs: 10_000, pollMs: 20 },
    );
    expect(ran).toBeGreaterThanOrEqual(250);
    expect(holder.exitCode).toBeNull();
    expect(existsSync(lock)).toBe(false);
  });

  it('mutateConfig waits for a foreign holder of <config>.lock and then saves', async () => {
    await foreignHolder(`${cfg}.lock`, 300);
    await mutateConfig((config) => withAgent(config, 'after-wait'), cfg);
    expect(Object.keys(ok(loadConfig(cfg)).agents)).toEqual(['after-wait']);
  });

  it('takes over a lock file whose PID is dead', async () => {
    const dead = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
    await once(dead, 'exit');
    const lock = join(dir, 'x.lock');
    writeFileSync(lock, `${dead.pid}\n`);
    const started = Date.now();
    await expect(withFileLock(lock, () => 'mine', { timeoutMs: 200 })).resolves.toBe('mine');
    expect(Date.now() - started).toBeLessThan(200);
    expect(existsSync(lock)).toBe(false);
  });

  it('treats an ownerless lock file as held until it is stale', async () => {
    const lock = join(dir, 'x.lock');
    writeFileSync(lock, 'garbage\n');
    await expect(withFileLock(lock, () => 'no', { timeoutMs: 100, staleMs: 60_000 })).rejects.toMatchObject({
      code: 'CONFIG_LOCKED',
      message: expect.stringContaining('unknown'),
    });
    await new Promise((r) => setTimeout(r, 30));
    await expect(withFileLock(lock, () => 'stale', { timeoutMs: 1000, staleMs: 10 })).resolves.toBe('stale');
  });
});

describe('schema/serialisation agreement', () => {
  it('every saved config parses back with the schema', () => {
    const config = withAgent(emptyConfig(), 'api', { model: 'sonnet', permission_mode: 'plan', disallowed_tools: ['Bash'] });
    config.settings.default_max_budget_usd = 1.25;
    expect(configSchema.safeParse(parse(renderConfig(config))).success).toBe(true);
  });
});

describe('withFileLock re-entrancy', () => {
  it('a nested lock on the same path in the same call chain re-enters instead of deadlocking', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ad-lock-'));
    const lockPath = `${dir}/agents.yaml.lock`;
    const order: string[] = [];
    const result = await withFileLock(
      lockPath,
      async () => {
        order.push('outer');
        return withFileLock(lockPath, () => {
          order.push('inner');
          return 42;
        }, { timeoutMs: 500 });
      },
      { timeoutMs: 500 },
    );
    expect(result).toBe(42);
    expect(order).toEqual(['outer', 'inner']);
  });

  it('concurrent, unrelated callers still wait for each other', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ad-lock-'));
    const lockPath = `${dir}/agents.yaml.lock`;
    let inside = 0;
    let peak = 0;
    const work = () =>
      withFileLock(lockPath, async () => {
        inside++;
        peak = Math.max(peak, inside);
        await new Promise((r) => setTimeout(r, 20));
        inside--;
      });
    await Promise.all([work(), work(), work()]);
    expect(peak).toBe(1);
  });
});

describe('a config directory that cannot exist', () => {
  it('mutateConfig reports CONFIG_WRITE_FAILED in one line (no stack), and writes nothing', async () => {
    const base = mkdtempSync(join(tmpdir(), 'ad-nodir-'));
    writeFileSync(join(base, 'blocker'), 'a file where the config directory should be');
    const path = join(base, 'blocker', 'agents.yaml');
    const error = await mutateConfig(() => undefined, path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AppError);
    expect((error as AppError).code).toBe('CONFIG_WRITE_FAILED');
    expect((error as AppError).message).toContain(`${path}.lock`);
    expect((error as AppError).hint).toContain('Nothing was changed');
    expect(readFileSync(join(base, 'blocker'), 'utf8')).toBe('a file where the config directory should be');
  });
});

describe('a lock path that is not a file', () => {
  it('a directory squatting on the lock path is an error, not an endless loop', async () => {
    const base = mkdtempSync(join(tmpdir(), 'ad-lockdir-'));
    const path = join(base, 'agents.yaml');
    mkdirSync(`${path}.lock`);
    const old = new Date(Date.now() - 3_600_000);
    utimesSync(`${path}.lock`, old, old);
    const error = await mutateConfig(() => undefined, path).catch((e: unknown) => e);
    expect((error as AppError).code).toBe('CONFIG_WRITE_FAILED');
  });
});

describe('one-line problem messages', () => {
  it('names the lead byte of the first invalid UTF-8 sequence and its line, not the byte after it', () => {
    expect(firstBadByte(Buffer.from([0x61, 0x0a, 0x62, 0xe9, 0x74, 0xe9]))).toBe('byte 0xe9 on line 2');
    expect(firstBadByte(Buffer.from('ok é\n', 'utf8').subarray(0, 4))).toBe('byte 0xc3 on line 1');
    expect(firstBadByte(Buffer.from([0xc3, 0xa9, 0x0a, 0xff]))).toBe('byte 0xff on line 2');
  });

  it('does not double punctuation after a detail that already ends a sentence', () => {
    expect(sentence("did you mean 'allowed_tools'?")).toBe("did you mean 'allowed_tools'?");
    expect(sentence('at line 4, column 1:')).toBe('at line 4, column 1.');
    expect(sentence('expected number')).toBe('expected number.');
  });
});

describe('error messages never echo file contents', () => {
  it('a file that is one long string (a .env, a key) is described by type and length only', () => {
    const secret = 'DB_PASSWORD=hunter2 API_TOKEN=abc123 PRIVATE_KEY=abcdefghijklmnop';
    writeFileSync(cfg, secret);
    const load = loadConfig(cfg);
    expect(load.kind).toBe('invalid');
    const line = describeConfigProblem(load as Extract<ConfigLoad, { kind: 'invalid' }>);
    expect(line).not.toContain('hunter2');
    expect(line).toContain(`a string of ${secret.length} characters`);
  });

  it('a long string value under a key is not echoed either', () => {
    writeFileSync(cfg, `agents:\n  api:\n    directory: /tmp\n    timeout: "sk-ant-this-is-a-long-secret-value"\n`);
    const line = describeConfigProblem(loadConfig(cfg) as Extract<ConfigLoad, { kind: 'invalid' }>);
    expect(line).toContain('agents.api.timeout: expected number, got a string of 34 characters');
    expect(line).not.toContain('sk-ant');
  });
});

describe('YAML as the original read it (PyYAML SafeLoader, YAML 1.1)', () => {
  it('reads yes/no booleans and << merge keys', () => {
    writeFileSync(cfg, 'agents:\n  api: &api\n    directory: /tmp\n    timeout: 60\n  web:\n    <<: *api\n    description: merged\nsettings:\n  cache: {enabled: no}\n');
    const config = requireConfig(loadConfig(cfg));
    expect(config.agents['web']).toMatchObject({ directory: '/tmp', timeout: 60, description: 'merged' });
    expect(config.settings.cache.enabled).toBe(false);
  });

  it('writes strings that a 1.1 reader would take for booleans with quotes, so they survive a round trip', () => {
    const config = emptyConfig();
    config.agents['api'] = parseAgent({ directory: '/tmp', description: 'yes' });
    saveConfig(config, cfg);
    expect(readFileSync(cfg, 'utf8')).toContain('description: "yes"');
    expect(requireConfig(loadConfig(cfg)).agents['api']!.description).toBe('yes');
  });

  it('an alias bomb is a YAML problem in one line, not a stack trace', () => {
    writeFileSync(cfg, 'a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n');
    const load = loadConfig(cfg);
    expect(load).toMatchObject({ kind: 'invalid', problem: 'yaml' });
  });
});

describe('lock ownership', () => {
  it('release never removes a lock file that another process now owns', async () => {
    const lockPath = join(dir, 'own.lock');
    await withFileLock(lockPath, () => {
      // Simulate a takeover while we held it (we were judged stale): the file now belongs to someone else.
      writeFileSync(lockPath, '424242 someone-else\n');
    });
    expect(readFileSync(lockPath, 'utf8')).toBe('424242 someone-else\n');
  });

  it('the lock file names the owner pid first (what a waiter reports)', async () => {
    const lockPath = join(dir, 'pid.lock');
    await withFileLock(lockPath, () => {
      expect(readFileSync(lockPath, 'utf8').split(' ')[0]).toBe(String(process.pid));
    });
    expect(existsSync(lockPath)).toBe(false);
  });
});

describe('private directories', () => {
  it('a shared sticky directory (like /tmp) is never tightened', () => {
    const shared = join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    saveConfig(emptyConfig(), join(shared, 'agents.yaml'));
    expect(statSync(shared).mode & 0o7777).toBe(0o1777);
  });

  it('an existing directory of ours is tightened to 0700', () => {
    const mine = join(dir, 'mine');
    mkdirSync(mine);
    chmodSync(mine, 0o755);
    saveConfig(emptyConfig(), join(mine, 'agents.yaml'));
    expect(statSync(mine).mode & 0o777).toBe(0o700);
  });
});
