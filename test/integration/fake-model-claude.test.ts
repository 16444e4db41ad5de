/**
 * The real Claude Code binary (the dev dependency, 2.1.197) driven by the scripted fake model on the
 * host, without Docker, credentials or internet: a plain reply, bash steps whose output comes back,
 * the API key as sent, a resumed session that sees its first turn, stream-json, a json answer, and a
 * prompt given on stdin (so prompts never hit argv limits or look like flags).
 */
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIRECTIVE, startFakeModel, type FakeModel } from '../../src/selftest/fake-model.js';

const CLAUDE = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'claude');
const TIMEOUT = 60_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  key: string;
}

interface Result {
  type: string;
  is_error: boolean;
  result: string;
  session_id: string;
  num_turns: number;
  total_cost_usd: number;
}

describe('the real claude binary against the fake model', () => {
  let fake: FakeModel;
  const dirs: string[] = [];

  beforeAll(async () => {
    fake = await startFakeModel();
  });
  afterAll(async () => {
    await fake.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  function tempDir(kind: string): string {
    const dir = mkdtempSync(join(tmpdir(), `agent-dispatch-fake-model-${kind}-`));
    dirs.push(dir);
    return dir;
  }

  /** A fresh HOME (or the one given, to resume) and cwd; `stdin` is written then closed when given. */
  function claude(
    args: string[],
    options: { home?: string; cwd?: string; stdin?: string; env?: Record<string, string | undefined> } = {},
  ): Promise<Run & { home: string; cwd: string }> {
    const home = options.home ?? tempDir('home');
    const cwd = options.cwd ?? tempDir('cwd');
    const key = `test-key-${randomBytes(8).toString('hex')}`;
    const child = spawn(CLAUDE, ['-p', ...args, '--allowedTools', 'Bash'], {
      cwd,
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        HOME: home,
        CLAUDE_CONFIG_DIR: join(home, '.claude'),
        ANTHROPIC_BASE_URL: fake.url,
        ANTHROPIC_API_KEY: key,
        CLAUDE_CODE_MAX_RETRIES: '0',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        DISABLE_AUTOUPDATER: '1',
        ...options.env,
      },
    });
    if (options.stdin !== undefined) child.stdin!.end(options.stdin);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const killer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT - 5_000);
    return new Promise((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(killer);
        resolve({ code, stdout, stderr, key, home, cwd });
      });
    });
  }

  function result(run: Run): Result {
    const last = run.stdout.trim().split('\n').at(-1) ?? '';
    let parsed: Result;
    try {
      parsed = JSON.parse(last) as Result;
    } catch {
      throw new Error(`claude exited ${run.code} without a JSON result.\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
    }
    expect(parsed, run.stderr).toMatchObject({ type: 'result', is_error: false });
    expect(run.code).toBe(0);
    return parsed;
  }

  it('gets a plain reply, at a small nonzero cost, sending the API key it was given', { timeout: TIMEOUT }, async () => {
    const run = await claude(['say something', '--output-format', 'json']);
    const answer = result(run);
    expect(answer.result).toBe('fake-model: ok');
    expect(answer.total_cost_usd).toBeGreaterThan(0);
    expect(answer.total_cost_usd).toBeLessThan(1);
    const mine = fake.requests.filter((r) => r.apiKey === run.key);
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((r) => r.path === '/v1/messages' && r.authorization === undefined)).toBe(true);
    expect(mine.some((r) => r.hasTools && r.stream === true)).toBe(true);
  });

  it('runs scripted bash steps and answers with their output', { timeout: TIMEOUT }, async () => {
    const marker = `hello-${randomBytes(4).toString('hex')}`;
    const prompt = `Run these. ${DIRECTIVE.bash(`echo ${marker}-$RANDOM-marker`)} ${DIRECTIVE.bash('id -u')} ${DIRECTIVE.reply('steps done')}`;
    const run = await claude([prompt, '--output-format', 'json']);
    const answer = result(run);
    expect(answer.result).toMatch(new RegExp(`^TOOL_RESULT 1:\\n${marker}-\\d+-marker\\n\\nTOOL_RESULT 2:\\n${process.getuid!()}\\n\\nsteps done$`));
    expect(answer.num_turns).toBe(3);
    expect(fake.requests.filter((r) => r.apiKey === run.key && r.hasTools)).toHaveLength(3);
  });

  it('resumes a session: the second turn recalls the first prompt', { timeout: TIMEOUT }, async () => {
    const sessionId = randomUUID();
    const words = `remember the word kestrel-${randomBytes(3).toString('hex')}`;
    const first = await claude([words, '--output-format', 'json', '--session-id', sessionId]);
    expect(result(first)).toMatchObject({ session_id: sessionId, result: 'fake-model: ok' });
    const second = await claude([DIRECTIVE.recall(), '--output-format', 'json', '--resume', sessionId], { home: first.home, cwd: first.cwd });
    expect(result(second)).toMatchObject({ session_id: sessionId, result: `RECALL: ${words}` });
  });

  it('streams system/init, the tool_use turn and the result as stream-json', { timeout: TIMEOUT }, async () => {
    const run = await claude([`${DIRECTIVE.bash('echo streamed-step')}`, '--output-format', 'stream-json', '--verbose']);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; subtype?: string; message?: { content: { type: string; name?: string; input?: unknown }[] } });
    expect(lines[0]).toMatchObject({ type: 'system', subtype: 'init' });
    const toolUse = lines.flatMap((l) => (l.type === 'assistant' ? l.message!.content : [])).find((b) => b.type === 'tool_use');
    expect(toolUse).toMatchObject({ name: 'Bash', input: { command: 'echo streamed-step', description: 'scripted step' } });
    expect(result(run).result).toBe('TOOL_RESULT 1:\nstreamed-step');
  });

  it('answers exactly the JSON of a json directive', { timeout: TIMEOUT }, async () => {
    const run = await claude(['[[json: {"a":1}]]', '--output-format', 'json']);
    expect(result(run).result).toBe('{"a":1}');
  });

  it('keeps side requests (the session title) out of the script', { timeout: TIMEOUT }, async () => {
    // Without CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC, 2.1.197 also asks for a session title: a request
    // with `tools: []` whose user text holds the prompt, directives included.
    const run = await claude([`${DIRECTIVE.bash('echo only-once')} ${DIRECTIVE.reply('titled')}`, '--output-format', 'json'], {
      env: { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: undefined },
    });
    expect(result(run).result).toBe('TOOL_RESULT 1:\nonly-once\n\ntitled');
    const mine = fake.requests.filter((r) => r.apiKey === run.key);
    expect(mine.filter((r) => r.hasTools)).toHaveLength(2);
    expect(mine.filter((r) => !r.hasTools).length).toBeGreaterThan(0);
  });

  it('reads the prompt from stdin (written, then closed) when no prompt argument is given', { timeout: TIMEOUT }, async () => {
    const prompt = `--looks-like-a-flag\nsecond line ${DIRECTIVE.bash('echo from-stdin')} ${DIRECTIVE.recall()}`;
    const run = await claude(['--output-format', 'stream-json', '--verbose'], { stdin: prompt });
    expect(run.stderr).not.toMatch(/no stdin data/);
    expect(result(run).result).toBe(`TOOL_RESULT 1:\nfrom-stdin\n\nRECALL: ${prompt}`);
  });
});
