import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError, describeError } from '../errors.js';

/**
 * git on the host with nothing configurable from outside: no system or global config, no attributes file,
 * no inherited GIT_* variable (GIT_DIR, GIT_EXTERNAL_DIFF, GIT_CONFIG_PARAMETERS...), a throwaway HOME. What
 * it reads is only the repository it is pointed at, which is ours (a scratch git dir) or, for `apply`, the
 * user's own checkout.
 */
export function cleanGitEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    XDG_CONFIG_HOME: home,
    LC_ALL: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_ATTR_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    ...extra,
  };
}

/** Flags that keep config and attributes out of every git call here (belt and braces over the clean env). */
export const SAFE_GIT_FLAGS = ['-c', 'core.attributesFile=/dev/null', '-c', 'core.hooksPath=/dev/null', '-c', 'core.fsmonitor=false', '-c', 'core.quotePath=true'];

export interface GitRun {
  code: number;
  stdout: Buffer;
  stderr: string;
}

const MAX_STDERR = 64 * 1024;

/**
 * Run git; `input` is written to stdin (a Buffer, or a writer that streams it). stdout is bounded by
 * `maxStdout` (the run fails beyond it). A missing git is an AppError that says so.
 */
export function runGit(args: string[], options: { cwd: string; env: Record<string, string>; input?: Buffer | ((write: (chunk: Buffer) => Promise<void>) => Promise<void>); maxStdout?: number }): Promise<GitRun> {
  const max = options.maxStdout ?? 192 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    const child = spawn('git', [...SAFE_GIT_FLAGS, ...args], { cwd: options.cwd, env: options.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = '';
    let failed: Error | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      outBytes += chunk.length;
      if (outBytes > max) {
        failed ??= new AppError('SANDBOX_FAILED', `git ${args[0]} printed more than ${max} bytes.`);
        child.kill('SIGKILL');
      } else out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (err.length < MAX_STDERR) err += chunk.toString('utf8');
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'ENOENT'
          ? new AppError('SANDBOX_FAILED', 'git is not installed on this machine; overlay patches are built and applied with it.', { hint: 'Install git (any version from 2.32), then retry.' })
          : error,
      );
    });
    child.on('close', (code) => {
      if (failed) reject(failed);
      else resolve({ code: code ?? 1, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.on('error', () => undefined);
    const input = options.input;
    if (input === undefined) child.stdin.end();
    else if (Buffer.isBuffer(input)) child.stdin.end(input);
    else {
      const write = (chunk: Buffer) =>
        new Promise<void>((done, fail) => {
          if (child.stdin.destroyed) return fail(new Error(`git ${args[0]} closed its input: ${err.trim().slice(0, 300)}`));
          if (child.stdin.write(chunk)) done();
          else child.stdin.once('drain', done);
        });
      input(write).then(
        () => child.stdin.end(),
        (error: unknown) => {
          failed ??= error instanceof Error ? error : new Error(describeError(error));
          child.kill('SIGKILL');
        },
      );
    }
  });
}

/** A scratch bare repository in a private temp dir, removed after `use` (its config is git's defaults only). */
export async function withScratchRepo<T>(use: (gitDir: string, env: Record<string, string>) => Promise<T>): Promise<T> {
  const home = mkdtempSync(join(tmpdir(), 'agent-dispatch-git-'));
  try {
    const gitDir = join(home, 'scratch.git');
    const env = cleanGitEnv(home);
    const init = await runGit(['init', '-q', '--bare', '--template=', gitDir], { cwd: home, env });
    if (init.code !== 0) throw new AppError('SANDBOX_FAILED', `git init failed: ${init.stderr.trim().slice(0, 300)}`);
    return await use(gitDir, cleanGitEnv(home, { GIT_DIR: gitDir }));
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
