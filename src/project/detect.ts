import { statSync } from 'node:fs';
import { basename } from 'node:path';
import { readRepoFile, repoEntryKind, type RepoEntryKind } from './safe-read.js';

/**
 * Cheap, read-only project detection: never spawns anything, never throws on a malformed file, and reads the
 * repo only through safe-read (no link out of it, no FIFO or device, at most 1 MiB a file).
 */

/** The top level of a project directory, each name looked at once; a name that is absent or unreadable is neither. */
export class Listing {
  private readonly kinds = new Map<string, RepoEntryKind | undefined>();

  constructor(readonly dir: string) {}

  has(name: string): boolean {
    return this.kind(name) !== undefined;
  }

  hasDir(name: string): boolean {
    return this.kind(name) === 'dir';
  }

  private kind(name: string): RepoEntryKind | undefined {
    if (!this.kinds.has(name)) this.kinds.set(name, repoEntryKind(this.dir, name));
    return this.kinds.get(name);
  }
}

const listingOf = (dir: string | Listing) => (typeof dir === 'string' ? new Listing(dir) : dir);

export function collectMcpServers(dirOrListing: string | Listing): string[] {
  const listing = listingOf(dirOrListing);
  const dir = listing.dir;
  const names: string[] = [];
  const files = [...(listing.has('.mcp.json') ? ['.mcp.json'] : []), ...(listing.hasDir('.claude') ? ['.claude/settings.local.json'] : [])];
  for (const file of files) {
    const data = readJson(dir, file);
    if (!isObject(data) || !isObject(data['mcpServers'])) continue;
    for (const name of Object.keys(data['mcpServers'])) if (!names.includes(name)) names.push(name);
  }
  return names;
}

export function detectStacks(dirOrListing: string | Listing): string[] {
  const listing = listingOf(dirOrListing);
  const has = (f: string) => listing.has(f);
  const stacks: string[] = [];
  if (has('Dockerfile')) stacks.push('Docker');
  if (has('docker-compose.yaml') || has('docker-compose.yml')) stacks.push('Docker Compose');
  if (has('Cargo.toml')) stacks.push('Rust');
  if (has('go.mod')) stacks.push('Go');
  if (has('requirements.txt') || has('pyproject.toml')) stacks.push('Python');
  if (has('package.json')) stacks.push('Node.js');
  return stacks;
}

export function detectDbs(dirOrListing: string | Listing): string[] {
  const listing = listingOf(dirOrListing);
  const dbs: string[] = [];
  if (listing.hasDir('prisma') || listing.has('schema.prisma')) dbs.push('Prisma');
  if (listing.hasDir('alembic') || listing.has('alembic.ini')) dbs.push('Alembic');
  if (listing.hasDir('migrations')) dbs.push('migrations');
  return dbs;
}

/** The original's auto-description: CLAUDE.md (else README), pyproject/package.json, MCP servers, stacks, DBs. */
export function autoDescribe(dir: string): string {
  const listing = new Listing(dir);
  const parts: string[] = [];
  const claudeMd = readText(dir, 'CLAUDE.md');
  if (claudeMd !== undefined) {
    const lines = claudeMd
      .trim()
      .split('\n')
      .slice(0, 40)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#') && !l.startsWith('--'))
      .slice(0, 2);
    if (lines.length > 0) parts.push(lines.join(' '));
  }
  if (parts.length === 0) {
    const readme = readText(dir, 'README.md');
    const line = readme
      ?.split('\n')
      .slice(0, 20)
      .map((l) => l.trim())
      .find((l) => l && !l.startsWith('#') && !l.startsWith('[') && !l.startsWith('!') && l.length > 20);
    if (line) parts.push(line);
  }
  const pyDescription = readText(dir, 'pyproject.toml')
    ?.split('\n')
    .map((l) => l.trim())
    .find((l) => l.startsWith('description') && l.includes('='));
  if (pyDescription) {
    const value = pyDescription.slice(pyDescription.indexOf('=') + 1).trim().replace(/^["']+|["']+$/g, '').trim();
    if (value) parts.push(value);
  }
  const pkg = readJson(dir, 'package.json');
  if (isObject(pkg) && typeof pkg['description'] === 'string' && pkg['description'].trim()) parts.push(pkg['description'].trim());
  const servers = collectMcpServers(listing);
  if (servers.length > 0) parts.push(`MCP: ${servers.join(', ')}`);
  const stacks = detectStacks(listing);
  if (stacks.length > 0) parts.push(`Stack: ${stacks.join(', ')}`);
  const dbs = detectDbs(listing);
  if (dbs.length > 0) parts.push(`DB: ${dbs.join(', ')}`);
  return parts.length > 0 ? parts.join(' | ') : `Agent in ${basename(dir)}`;
}

export type Health = boolean | 'UNREADABLE';

/** true / false, or 'UNREADABLE' when even asking failed (one bad agent never breaks a listing). */
export function directoryHealth(dir: string): Health {
  try {
    return statSync(dir).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? false : 'UNREADABLE';
  }
}

export interface Preview {
  text: string;
  truncated: boolean;
}

/**
 * First `lines` lines of a repo file, capped at max(200, lines*200) characters; invalid bytes replaced;
 * unreadable, or not a regular file inside the repo → empty.
 */
export function previewFile(dir: string, file: string, lines: number): Preview {
  const read = readRepoFile(dir, file);
  if (!read.ok) return { text: '', truncated: false };
  const text = new TextDecoder('utf-8').decode(read.bytes);
  const cap = Math.max(200, lines * 200);
  const all = text.replace(/\n$/, "").split("\n");
  let preview = all.slice(0, lines).join('\n');
  let truncated = all.length > lines || read.truncated;
  if (preview.length > cap) {
    preview = preview.slice(0, cap);
    truncated = true;
  }
  return { text: preview, truncated };
}

/** The file as UTF-8 text (the first 1 MiB of a longer one), or undefined when unreadable or not UTF-8. */
function readText(dir: string, file: string): string | undefined {
  const read = readRepoFile(dir, file);
  if (!read.ok) return undefined;
  try {
    // `stream` keeps a character cut in half by the size bound from failing the whole decode.
    return new TextDecoder('utf-8', { fatal: true }).decode(read.bytes, { stream: read.truncated });
  } catch {
    return undefined;
  }
}

/** Parsed JSON, or undefined when unreadable, invalid, or longer than the bound (a cut document is no document). */
function readJson(dir: string, file: string): unknown {
  const read = readRepoFile(dir, file);
  if (!read.ok || read.truncated) return undefined;
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(read.bytes));
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
