/**
 * The HTTP service's token store: tokens shown once and stored only as SHA-256, the file private (0600 in a 0700
 * directory), revoke by user or id seen by a store already running (no restart), and a hostile token file — a
 * symlink, a FIFO, a file others can write, an oversized or malformed one — refused, never half-trusted.
 */
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TOKEN_PREFIX, TokenStore, tokensPath } from '../../src/config/tokens.js';

let root: string;
let path: string;
let store: TokenStore;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-tokens-'));
  path = join(root, 'state', 'auth', 'tokens.json');
  store = new TokenStore(path);
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('token store', () => {
  it('creates a prefixed random token; only its sha256 is on disk, in a 0600 file in a 0700 directory', async () => {
    const { token, info } = await store.create('alice');
    expect(token).toMatch(/^adt_[A-Za-z0-9_-]{43}$/);
    expect(token.startsWith(TOKEN_PREFIX)).toBe(true);
    expect(info).toMatchObject({ user: 'alice', id: expect.stringMatching(/^[0-9a-f]{12}$/) });
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain(token);
    expect(text).not.toContain(token.slice(TOKEN_PREFIX.length));
    expect(JSON.parse(text).tokens[0].sha256).toBe(createHash('sha256').update(token).digest('hex'));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, 'state', 'auth')).mode & 0o777).toBe(0o700);
  });

  it('verify maps a token to its user; a wrong, truncated or foreign token maps to nobody', async () => {
    const alice = (await store.create('alice')).token;
    const bob = (await store.create('bob')).token;
    expect(store.verify(alice)).toBe('alice');
    expect(store.verify(bob)).toBe('bob');
    expect(store.verify(alice.slice(0, -1))).toBeUndefined();
    expect(store.verify(`${alice.slice(0, -1)}${alice.endsWith('A') ? 'B' : 'A'}`)).toBeUndefined();
    expect(store.verify('')).toBeUndefined();
    expect(store.verify(createHash('sha256').update(alice).digest('hex'))).toBeUndefined();
  });

  it('two tokens are never alike, and list shows ids and users but no hash', async () => {
    const a = await store.create('alice');
    const b = await store.create('alice');
    expect(a.token).not.toBe(b.token);
    expect(a.info.id).not.toBe(b.info.id);
    const listed = store.list();
    expect(listed.map((t) => t.user)).toEqual(['alice', 'alice']);
    expect(JSON.stringify(listed)).not.toMatch(/sha256|[0-9a-f]{64}/);
  });

  it('revoke by user removes all of that user’s tokens; by id exactly one; a running store sees it at once', async () => {
    const running = new TokenStore(path);
    const a1 = await store.create('alice');
    const a2 = await store.create('alice');
    const b = await store.create('bob');
    expect(running.verify(a1.token)).toBe('alice');
    expect((await new TokenStore(path).revoke('id', a1.info.id)).map((t) => t.id)).toEqual([a1.info.id]);
    expect(running.verify(a1.token)).toBeUndefined();
    expect(running.verify(a2.token)).toBe('alice');
    expect((await new TokenStore(path).revoke('user', 'alice')).map((t) => t.id)).toEqual([a2.info.id]);
    expect(running.verify(a2.token)).toBeUndefined();
    expect(running.verify(b.token)).toBe('bob');
    expect(await store.revoke('user', 'nobody')).toEqual([]);
  });

  it('refuses a user name that is not a plain name', async () => {
    await expect(store.create('../x')).rejects.toMatchObject({ code: 'INVALID_INPUT' });
    await expect(store.create('')).rejects.toMatchObject({ code: 'INVALID_INPUT' });
  });

  it('refuses a name longer than agents.<name>.users accepts (it could never be granted), naming the limit', async () => {
    await expect(store.create('a'.repeat(65))).rejects.toMatchObject({ code: 'INVALID_INPUT', message: expect.stringContaining('64') });
    await expect(store.create('a'.repeat(64))).resolves.toMatchObject({ info: { user: 'a'.repeat(64) } });
  });

  it('no file: no tokens (every request is refused), nothing created by reading', () => {
    expect(store.list()).toEqual([]);
    expect(store.verify(`${TOKEN_PREFIX}${'A'.repeat(43)}`)).toBeUndefined();
  });

  it('AGENT_DISPATCH_TOKENS_FILE moves the file; by default it sits in auth/ beside agents.yaml', () => {
    expect(tokensPath({ AGENT_DISPATCH_CONFIG: '/srv/ad/agents.yaml' })).toBe('/srv/ad/auth/tokens.json');
    expect(tokensPath({ AGENT_DISPATCH_CONFIG: '/srv/ad/agents.yaml', AGENT_DISPATCH_TOKENS_FILE: '/etc/ad/t.json' })).toBe('/etc/ad/t.json');
  });
});

describe('a hostile token file is refused (fail closed)', () => {
  async function withToken(): Promise<string> {
    return (await store.create('alice')).token;
  }

  it('a symlink, even to a valid token file', async () => {
    const token = await withToken();
    const real = join(root, 'real.json');
    writeFileSync(real, readFileSync(path), { mode: 0o600 });
    rmSync(path);
    symlinkSync(real, path);
    expect(() => store.verify(token)).toThrow(/refused: it is a symbolic link/);
    await expect(store.create('bob')).rejects.toMatchObject({ code: 'CONFIG_UNREADABLE' });
  });

  it('a FIFO: refused at once, never blocking', async () => {
    mkdirSync(join(root, 'state', 'auth'), { recursive: true });
    expect(spawnSync('mkfifo', [path]).status).toBe(0);
    expect(() => store.list()).toThrow(/refused: it is not a regular file/);
  });

  it('a file others can write', async () => {
    const token = await withToken();
    chmodSync(path, 0o622);
    expect(() => store.verify(token)).toThrow(/refused: other users can write it/);
  });

  it('an oversized file and a malformed one', async () => {
    mkdirSync(join(root, 'state', 'auth'), { recursive: true });
    writeFileSync(path, Buffer.alloc(1024 * 1024 + 1, 0x20), { mode: 0o600 });
    expect(() => store.list()).toThrow(/larger than/);
    writeFileSync(path, '{"version":1,"tokens":[{"user":"x"}]}', { mode: 0o600 });
    expect(() => store.list()).toThrow(/not a token file of this version/);
    writeFileSync(path, 'not json', { mode: 0o600 });
    expect(() => store.list()).toThrow(/refused/);
  });
});
