import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { readAtMost } from '../read-at-most.js';
import { z } from 'zod';
import { AppError, describeError } from '../errors.js';
import { ensurePrivateDir, writeFileAtomic } from './atomic-write.js';
import { withFileLock } from './lock.js';
import { expandHome, stateDir } from './paths.js';
import { NAME_PATTERN, userNameSchema } from './schema.js';

/**
 * The HTTP service's bearer tokens. A token is shown once, when it is made; the file keeps only its SHA-256,
 * so a copy of the file lets nobody in. The file decides who may call the service, so it is read like a file
 * someone hostile may have replaced: no symlink followed, never a FIFO, bounded in size, and refused when
 * another user could have written it.
 */

/** Recognisable in logs, configs and secret scanners: `adt_` + 32 random bytes, base64url. */
export const TOKEN_PREFIX = 'adt_';
const TOKEN_PATTERN = /^adt_[A-Za-z0-9_-]{43}$/;
const ID_PATTERN = /^[0-9a-f]{12}$/;
const MAX_TOKEN_FILE_BYTES = 1024 * 1024;

const entrySchema = z.object({ id: z.string().regex(ID_PATTERN), user: z.string().regex(NAME_PATTERN), sha256: z.string().regex(/^[0-9a-f]{64}$/), created_at: z.string() });
const fileSchema = z.object({ version: z.literal(1), tokens: z.array(entrySchema) });

type TokenEntry = z.infer<typeof entrySchema>;
/** What `token list` shows: never the hash. */
export type TokenInfo = Omit<TokenEntry, 'sha256'>;

/** `AGENT_DISPATCH_TOKENS_FILE`, else `tokens.json` in a private `auth/` directory beside agents.yaml. */
export function tokensPath(env: NodeJS.ProcessEnv = process.env): string {
  const override = env['AGENT_DISPATCH_TOKENS_FILE'];
  return override ? resolve(expandHome(override)) : join(stateDir(env), 'auth', 'tokens.json');
}

export class TokenStore {
  private cached: { signature: string; entries: TokenEntry[] } | undefined;

  constructor(readonly path: string) {}

  /** A new token for `user`; the only time the token itself exists outside the caller's hands. */
  async create(user: string, now = new Date()): Promise<{ token: string; info: TokenInfo }> {
    const checked = userNameSchema.safeParse(user);
    if (!checked.success) {
      // The same rule agents.<name>.users applies: a token for a name the config cannot grant would be useless.
      throw new AppError('INVALID_INPUT', checked.error.issues[0]?.message ?? `Invalid user name '${user}'.`, {
        hint: 'The name must be one agents.<name>.users can grant: pick one that follows this rule (a login name usually does).',
      });
    }
    const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const info: TokenInfo = { id: randomBytes(6).toString('hex'), user, created_at: now.toISOString() };
    await this.update((entries) => [...entries, { ...info, sha256: sha256(token) }]);
    return { token, info };
  }

  list(): TokenInfo[] {
    return this.entries().map(({ id, user, created_at }) => ({ id, user, created_at }));
  }

  /** Revoke every token of `user` (`by: 'user'`) or the one token with that id; the revoked entries. */
  async revoke(by: 'user' | 'id', value: string): Promise<TokenInfo[]> {
    let revoked: TokenInfo[] = [];
    await this.update((entries) => {
      revoked = entries.filter((e) => e[by] === value).map(({ id, user, created_at }) => ({ id, user, created_at }));
      return entries.filter((e) => e[by] !== value);
    });
    return revoked;
  }

  /**
   * The user a presented bearer token belongs to, or undefined. Every stored hash is compared in constant time
   * (no early exit); the file is re-read when it changed, so a revoke applies to the next request.
   */
  verify(presented: string): string | undefined {
    return this.identify(presented)?.user;
  }

  /** Like verify, with the token's id too (the HTTP service ends a session whose token is revoked). */
  identify(presented: string): TokenInfo | undefined {
    const entries = this.entries();
    if (!TOKEN_PATTERN.test(presented)) return undefined;
    const digest = Buffer.from(sha256(presented), 'hex');
    let found: TokenInfo | undefined;
    for (const entry of entries) {
      if (timingSafeEqual(digest, Buffer.from(entry.sha256, 'hex')) && found === undefined) found = { id: entry.id, user: entry.user, created_at: entry.created_at };
    }
    return found;
  }

  private entries(): TokenEntry[] {
    let st: Stats;
    try {
      st = lstatSync(this.path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw this.unreadable(describeError(error));
    }
    const signature = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode}`;
    if (this.cached?.signature === signature) return this.cached.entries;
    const entries = this.read();
    this.cached = { signature, entries };
    return entries;
  }

  private read(): TokenEntry[] {
    let fd: number;
    try {
      fd = openSync(this.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return [];
      throw this.unreadable(code === 'ELOOP' ? 'it is a symbolic link' : describeError(error));
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw this.unreadable('it is not a regular file');
      if (st.size > MAX_TOKEN_FILE_BYTES) throw this.unreadable(`it is larger than ${MAX_TOKEN_FILE_BYTES} bytes`);
      if (typeof process.getuid === 'function' && st.uid !== process.getuid()) throw this.unreadable('it belongs to another user');
      if ((st.mode & 0o022) !== 0) throw this.unreadable('other users can write it');
      const parsed = fileSchema.safeParse(JSON.parse(readAtMost(fd, st.size).toString('utf8')));
      if (!parsed.success) throw this.unreadable('it is not a token file of this version');
      return parsed.data.tokens;
    } catch (error) {
      throw error instanceof AppError ? error : this.unreadable(describeError(error));
    } finally {
      closeSync(fd);
    }
  }

  private async update(change: (entries: TokenEntry[]) => TokenEntry[]): Promise<void> {
    const dir = join(this.path, '..');
    await withFileLock(`${this.path}.lock`, () => {
      const next = change(this.entries());
      try {
        ensurePrivateDir(dir);
        writeFileAtomic(this.path, `${JSON.stringify({ version: 1, tokens: next }, null, 2)}\n`);
      } catch (error) {
        throw new AppError('CONFIG_WRITE_FAILED', `Could not write ${this.path}: ${describeError(error)}`, {
          hint: `Nothing was changed. Check free space and that ${dir} is a directory this user can write.`,
          cause: error,
        });
      }
    });
  }

  private unreadable(reason: string): AppError {
    return new AppError('CONFIG_UNREADABLE', `The token file ${this.path} is refused: ${reason}.`, {
      hint: `It must be a regular file owned by this user and writable only by it (mode 0600). Move it aside and create tokens again with 'agent-dispatch token create USER'.`,
    });
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
