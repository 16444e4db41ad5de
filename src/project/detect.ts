import { existsSync as exists, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

/** Cheap, read-only project detection: never spawns anything, never throws on a malformed file. */

/** The top level of a project directory, read once (name → is a directory); empty when unreadable. */
export class Listing {
  private readonly entries = new Map<string, boolean>();

  constructor(readonly dir: string) {
    try {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        if (!e.isSymbolicLink()) this.entries.set(e.name, e.isDirectory());
        else if (exists(join(dir, e.name))) this.entries.set(e.name, isDir(join(dir, e.name))); // a broken link is absent, as with existsSync
      }
    } catch {
      // an unreadable or missing directory has no entries
    }
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  hasDir(name: string): boolean {
    return this.entries.get(name) === true;
  }
}

const listingOf = (dir: string | Listing) => (typeof dir === 'string' ? new Listing(dir) : dir);

export function collectMcpServers(dirOrListing: string | Listing): string[] {
  const listing = listingOf(dirOrListing);
  const dir = listing.dir;
  const names: string[] = [];
  const files = [...(listing.has('.mcp.json') ? ['.mcp.json'] : []), ...(listing.hasDir('.claude') ? [join('.claude', 'settings.local.json')] : [])];
  for (const file of files) {
    const data = readJson(join(dir, file));
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
  const claudeMd = readText(join(dir, 'CLAUDE.md'));
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
    const readme = readText(join(dir, 'README.md'));
    const line = readme
      ?.split('\n')
      .slice(0, 20)
      .map((l) => l.trim())
      .find((l) => l && !l.startsWith('#') && !l.startsWith('[') && !l.startsWith('!') && l.length > 20);
    if (line) parts.push(line);
  }
  const pyDescription = readText(join(dir, 'pyproject.toml'))
    ?.split('\n')
    .map((l) => l.trim())
    .find((l) => l.startsWith('description') && l.includes('='));
  if (pyDescription) {
    const value = pyDescription.slice(pyDescription.indexOf('=') + 1).trim().replace(/^["']+|["']+$/g, '').trim();
    if (value) parts.push(value);
  }
  const pkg = readJson(join(dir, 'package.json'));
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

/** First `lines` lines, capped at max(200, lines*200) characters; invalid bytes replaced; unreadable → empty. */
export function previewFile(path: string, lines: number): Preview {
  let text: string;
  try {
    text = new TextDecoder('utf-8').decode(readFileSync(path));
  } catch {
    return { text: '', truncated: false };
  }
  const cap = Math.max(200, lines * 200);
  const all = text.replace(/\n$/, "").split("\n");
  let preview = all.slice(0, lines).join('\n');
  let truncated = all.length > lines;
  if (preview.length > cap) {
    preview = preview.slice(0, cap);
    truncated = true;
  }
  return { text: preview, truncated };
}

function readText(path: string): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(readFileSync(path));
  } catch {
    return undefined;
  }
}

function readJson(path: string): unknown {
  const text = readText(path);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
