import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomBytes } from 'node:crypto';
import { AppError, describeError } from '../errors.js';
import { ensurePrivateDir } from './atomic-write.js';
import { dirname } from 'node:path';
import { AsyncLocalStorage } from 'node:async_hooks';

export interface LockOptions {
  /** How long to wait for another process before giving up (the original's bound). */
  timeoutMs?: number;
  pollMs?: number;
  /** A lock file older than this whose owner is unknown is treated as abandoned. */
  staleMs?: number;
}

const DEFAULTS = { timeoutMs: 10_000, pollMs: 20, staleMs: 60_000 };
const inProcess = new Map<string, Promise<unknown>>();
/** The lock paths held by the current async call chain, so a nested call re-enters instead of deadlocking. */
const held = new AsyncLocalStorage<ReadonlySet<string>>();

/**
 * Run `fn` while holding `<lockPath>` exclusively, across processes (an O_EXCL lock file naming its PID)
 * and within this process (a promise chain per path); re-entrant within one async call chain. Unlike the original, a lock that cannot be had within
 * the bound is an error, never a silent unlocked write; a lock whose owner died is taken over.
 */
export async function withFileLock<T>(lockPath: string, fn: () => T | Promise<T>, options: LockOptions = {}): Promise<T> {
  const holding = held.getStore() ?? new Set<string>();
  if (holding.has(lockPath)) return fn();
  const previous = inProcess.get(lockPath) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(async () => {
    const release = await acquire(lockPath, { ...DEFAULTS, ...options });
    try {
      return await held.run(new Set([...holding, lockPath]), fn);
    } finally {
      release();
    }
  });
  inProcess.set(lockPath, run);
  try {
    return await run;
  } finally {
    if (inProcess.get(lockPath) === run) inProcess.delete(lockPath);
  }
}

async function acquire(lockPath: string, options: Required<LockOptions>): Promise<() => void> {
  const deadline = Date.now() + options.timeoutMs;
  try {
    ensurePrivateDir(dirname(lockPath));
  } catch (error) {
    throw lockFileError(lockPath, error);
  }
  // The token makes the file ours: release and takeover only ever remove the exact file they looked at.
  const mine = `${process.pid} ${randomBytes(8).toString('hex')}\n`;
  for (;;) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      writeSync(fd, mine);
      closeSync(fd);
      return () => removeIfContent(lockPath, mine);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw lockFileError(lockPath, error);
    }
    const seen = readContent(lockPath);
    const owner = ownerOf(seen);
    if (isAbandoned(lockPath, owner, options.staleMs)) {
      // Another waiter may have taken over between our read and now: only remove the file we judged stale.
      if (seen === undefined || readContent(lockPath) === seen) removeStale(lockPath);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new AppError('CONFIG_LOCKED', `${lockPath} is held by process ${owner ?? 'unknown'}`, {
        hint: `Another agent-dispatch command is editing the config. Retry when it finishes; if no such process exists, delete ${lockPath}.`,
      });
    }
    await sleep(options.pollMs);
  }
}

function removeIfContent(lockPath: string, content: string): void {
  if (readContent(lockPath) !== content) return; // taken over after we were judged stale: not ours to remove
  try {
    unlinkSync(lockPath);
  } catch {
    // already gone
  }
}

function removeStale(lockPath: string): void {
  try {
    unlinkSync(lockPath);
  } catch (error) {
    // ENOENT: another process took it over first; anything else would spin forever
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw lockFileError(lockPath, error);
  }
}

function lockFileError(lockPath: string, error: unknown): AppError {
  return new AppError('CONFIG_WRITE_FAILED', `could not create the lock file ${lockPath}: ${describeError(error)}`, {
    hint: 'Nothing was changed. Check that the config directory exists (or can be created) and is writable by you.',
    cause: error,
  });
}

function readContent(lockPath: string): string | undefined {
  try {
    return readFileSync(lockPath, 'utf8');
  } catch {
    return undefined;
  }
}

function ownerOf(content: string | undefined): number | undefined {
  const pid = Number.parseInt((content ?? '').trim().split(/\s+/)[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function isAbandoned(lockPath: string, owner: number | undefined, staleMs: number): boolean {
  if (owner !== undefined) return !processAlive(owner);
  try {
    return Date.now() - statSync(lockPath).mtimeMs > staleMs;
  } catch {
    return true;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
