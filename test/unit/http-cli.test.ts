/**
 * The CLI side of the HTTP service: `token create|list|revoke` (what is printed, what is stored) and the
 * `serve --http` refusals that happen before anything listens (flags without --http, clear text beyond
 * loopback, half a TLS pair, an unparsable --listen).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { run, STACK_LINE, setupEnv, type Env } from './cli-harness.js';

let env: Env;
beforeEach(() => {
  env = setupEnv();
});
afterEach(() => env.cleanup());

describe('token commands', () => {
  it('create prints the token once with the claude mcp add line (default URL: 127.0.0.1:8717); list never shows it', async () => {
    const r = await run('token', 'create', 'alice');
    expect(r.code, r.all).toBe(0);
    const token = /^ {2}(adt_\S+)$/m.exec(r.stdout)![1]!;
    expect(r.stdout).toContain(`  claude mcp add --transport http agent-dispatch http://127.0.0.1:8717/mcp --header "Authorization: Bearer ${token}"`);
    expect(readFileSync(join(env.stateDir, 'auth', 'tokens.json'), 'utf8')).not.toContain(token);
    const listed = await run('token', 'list');
    expect(listed.stdout).toMatch(/^ID {12}USER {3}CREATED\n[0-9a-f]{12} {2}alice {2}\d{4}-/);
    expect(listed.stdout).not.toContain(token);
  });

  it('create --url: the URL users connect to (a bare origin gets /mcp); a non-http URL is refused', async () => {
    expect((await run('token', 'create', 'bob', '--url', 'https://dispatch.example:9443')).stdout).toContain('agent-dispatch https://dispatch.example:9443/mcp --header');
    const bad = await run('token', 'create', 'bob', '--url', 'ftp://x');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--url must be http:// or https://');
  });

  it('revoke USER, revoke --id, and the refusals', async () => {
    await run('token', 'create', 'alice');
    await run('token', 'create', 'alice');
    await run('token', 'create', 'bob');
    const bobId = /^([0-9a-f]{12}) {2}bob/m.exec((await run('token', 'list')).stdout)![1]!;
    expect((await run('token', 'revoke', 'alice')).stdout).toMatch(/^Revoked 2 token\(s\): [0-9a-f]{12} \(alice\), [0-9a-f]{12} \(alice\)\.$/m);
    expect((await run('token', 'revoke', '--id', bobId)).stdout).toContain(`Revoked 1 token(s): ${bobId} (bob).`);
    expect((await run('token', 'list')).stdout).toContain('No tokens. Make one with: agent-dispatch token create USER');
    const none = await run('token', 'revoke', 'carol');
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('carol has no tokens.');
    expect((await run('token', 'revoke')).code).toBe(2);
    expect((await run('token', 'revoke', 'alice', '--id', bobId)).code).toBe(2);
    const badName = await run('token', 'create', 'no/slash');
    expect(badName.code).toBe(1);
    expect(badName.stderr).toContain("Invalid user name: 'no/slash'. Use only letters, digits, hyphens, and underscores.");
  });
});

describe('serve --http refusals (nothing starts)', () => {
  it.each([
    [['serve', '--listen', '127.0.0.1:1'], 2, '--listen needs --http'],
    [['serve', '--http', '--listen', '127.0.0.1:0', '--socket', '/tmp/x.sock'], 2, '--listen and --socket exclude each other'],
    [['serve', '--http', '--tls-cert', '/nonexistent'], 2, '--tls-cert and --tls-key go together'],
    [['serve', '--http', '--listen', 'a:b:c'], 1, '--listen a:b:c is not ADDR:PORT.'],
    [['serve', '--http', '--listen', '0.0.0.0:0'], 1, 'Refusing to listen on 0.0.0.0:0 without TLS'],
    [['serve', '--http', '--listen', '127.0.0.1:0', '--allowed-host', 'a b'], 1, '--allowed-host a b is not a host name.'],
  ])('%j → exit %i: %s', async (argv, code, message) => {
    const r = await run(...argv);
    expect(r.code, r.all).toBe(code);
    expect(r.stderr).toContain(message);
    expect(r.all).not.toMatch(STACK_LINE);
  });
});
