import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { autoDescribe, collectMcpServers, detectDbs, detectStacks, directoryHealth, Listing, previewFile } from '../../src/project/detect.js';

let root: string;
let dir: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-detect-'));
  dir = join(root, 'my-project');
  mkdirSync(dir);
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

function write(files: Record<string, string | Buffer>): void {
  for (const [name, content] of Object.entries(files)) {
    const path = join(dir, name);
    if (name.endsWith('/')) {
      mkdirSync(path, { recursive: true });
      continue;
    }
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, content);
  }
}

describe('autoDescribe (test_config.py auto_describe tests)', () => {
  it('uses the first two non-heading lines of CLAUDE.md', () => {
    write({ 'CLAUDE.md': '# Payments service\n\nHandles Stripe webhooks.\n-- a comment\nOwns the invoices table.\nThird line is dropped.\n' });
    expect(autoDescribe(dir)).toBe('Handles Stripe webhooks. Owns the invoices table.');
  });

  it('uses the pyproject description', () => {
    write({ 'pyproject.toml': '[project]\nname = "x"\ndescription = "Billing backend"\n' });
    expect(autoDescribe(dir)).toBe('Billing backend | Stack: Python');
  });

  it('uses single-quoted pyproject descriptions too', () => {
    write({ 'pyproject.toml': "description='Quoted'\n" });
    expect(autoDescribe(dir)).toContain('Quoted');
  });

  it('lists the .mcp.json servers', () => {
    write({ '.mcp.json': JSON.stringify({ mcpServers: { postgres: {}, redis: {} } }) });
    expect(autoDescribe(dir)).toBe('MCP: postgres, redis');
  });

  it('falls back to the first substantial README line when there is no CLAUDE.md', () => {
    write({ 'README.md': '# Title\n[![badge](x)](y)\n![logo](z)\nshort line\nA longer line that describes the project well.\n' });
    expect(autoDescribe(dir)).toBe('A longer line that describes the project well.');
  });

  it('CLAUDE.md takes priority over README', () => {
    write({ 'CLAUDE.md': 'From claude md.\n', 'README.md': 'This README line is long enough to be used.\n' });
    const text = autoDescribe(dir);
    expect(text).toContain('From claude md.');
    expect(text).not.toContain('README');
  });

  it('README is used when CLAUDE.md has only headings', () => {
    write({ 'CLAUDE.md': '# Only a heading\n', 'README.md': 'This README line is long enough to be used.\n' });
    expect(autoDescribe(dir)).toBe('This README line is long enough to be used.');
  });

  it('reports DB indicators', () => {
    write({ 'alembic.ini': '', 'migrations/': '' });
    const text = autoDescribe(dir);
    expect(text).toContain('Alembic');
    expect(text).toContain('migrations');
    expect(text).toBe('DB: Alembic, migrations');
  });

  it('de-duplicates MCP servers across .mcp.json and .claude/settings.local.json', () => {
    write({
      '.mcp.json': JSON.stringify({ mcpServers: { shared: {}, own: {} } }),
      '.claude/settings.local.json': JSON.stringify({ mcpServers: { shared: {}, local: {} } }),
    });
    expect(autoDescribe(dir)).toBe('MCP: shared, own, local');
    expect(autoDescribe(dir).match(/shared/g)).toHaveLength(1);
  });

  it('reports stack indicators', () => {
    write({ Dockerfile: 'FROM scratch', 'go.mod': 'module x' });
    const text = autoDescribe(dir);
    expect(text).toContain('Docker');
    expect(text).toContain('Go');
    expect(text).toBe('Stack: Docker, Go');
  });

  it("falls back to 'Agent in <name>' for an empty directory", () => {
    expect(autoDescribe(dir)).toBe(`Agent in ${basename(dir)}`);
    expect(autoDescribe(dir)).toContain('my-project');
  });

  it("tolerates malformed metadata: exactly 'Stack: Python, Node.js'", () => {
    const cp1251 = Buffer.from([0xcf, 0xf0, 0xe8, 0xe2, 0xe5, 0xf2, 0x20, 0xec, 0xe8, 0xf0, 0x0a]);
    write({
      'CLAUDE.md': cp1251,
      'README.md': Buffer.concat([Buffer.from('A long enough README line that would be used '), cp1251]),
      'pyproject.toml': '[project]\ndescription\nname = "x"\n',
      'package.json': '[]',
      '.mcp.json': '{not json',
      '.claude/settings.local.json': JSON.stringify({ mcpServers: ['a', 'b'] }),
    });
    expect(autoDescribe(dir)).toBe('Stack: Python, Node.js');
  });

  it("ignores an empty package.json description: exactly 'Stack: Node.js'", () => {
    write({ 'package.json': JSON.stringify({ description: '' }) });
    expect(autoDescribe(dir)).toBe('Stack: Node.js');
  });

  it('ignores a blank or non-string package.json description, uses a real one', () => {
    write({ 'package.json': JSON.stringify({ description: '   ' }) });
    expect(autoDescribe(dir)).toBe('Stack: Node.js');
    write({ 'package.json': JSON.stringify({ description: 42 }) });
    expect(autoDescribe(dir)).toBe('Stack: Node.js');
    write({ 'package.json': JSON.stringify({ description: 'Web frontend' }) });
    expect(autoDescribe(dir)).toBe('Web frontend | Stack: Node.js');
  });

  it('joins every part in the documented order', () => {
    write({
      'CLAUDE.md': 'Does X.\n',
      'pyproject.toml': 'description = "Py desc"\n',
      'package.json': JSON.stringify({ description: 'Js desc' }),
      '.mcp.json': JSON.stringify({ mcpServers: { db: {} } }),
      Dockerfile: '',
      'prisma/': '',
    });
    expect(autoDescribe(dir)).toBe('Does X. | Py desc | Js desc | MCP: db | Stack: Docker, Python, Node.js | DB: Prisma');
  });

  it('never throws for a missing directory', () => {
    expect(autoDescribe(join(root, 'missing'))).toBe('Agent in missing');
  });
});

describe('collectMcpServers', () => {
  it('ignores wrong JSON shapes', () => {
    write({ '.mcp.json': '[]', '.claude/settings.local.json': JSON.stringify({ mcpServers: [] }) });
    expect(collectMcpServers(dir)).toEqual([]);
    write({ '.mcp.json': JSON.stringify({ mcpServers: null }), '.claude/settings.local.json': '"str"' });
    expect(collectMcpServers(dir)).toEqual([]);
  });

  it('ignores undecodable files', () => {
    write({ '.mcp.json': Buffer.from([0x7b, 0xff, 0x7d]) });
    expect(collectMcpServers(dir)).toEqual([]);
  });

  it('reads .claude/settings.local.json alone', () => {
    write({ '.claude/settings.local.json': JSON.stringify({ mcpServers: { only: {} } }) });
    expect(collectMcpServers(dir)).toEqual(['only']);
  });

  it('accepts a Listing as well as a path', () => {
    write({ '.mcp.json': JSON.stringify({ mcpServers: { a: {} } }) });
    expect(collectMcpServers(new Listing(dir))).toEqual(['a']);
  });
});

describe('detectStacks / detectDbs', () => {
  it('stacks in the documented order', () => {
    write({
      'package.json': '{}',
      'requirements.txt': '',
      'go.mod': '',
      'Cargo.toml': '',
      'docker-compose.yml': '',
      Dockerfile: '',
    });
    expect(detectStacks(dir)).toEqual(['Docker', 'Docker Compose', 'Rust', 'Go', 'Python', 'Node.js']);
  });

  it('docker-compose.yaml counts as Docker Compose', () => {
    write({ 'docker-compose.yaml': '' });
    expect(detectStacks(dir)).toEqual(['Docker Compose']);
  });

  it('DBs: prisma/ or schema.prisma, alembic/ or alembic.ini, migrations/', () => {
    write({ 'schema.prisma': '', 'alembic/': '', 'migrations/': '' });
    expect(detectDbs(dir)).toEqual(['Prisma', 'Alembic', 'migrations']);
  });

  it('a file named migrations is not a migrations directory', () => {
    write({ migrations: 'file' });
    expect(detectDbs(dir)).toEqual([]);
  });

  it('a symlink to a directory counts as the directory', () => {
    mkdirSync(join(root, 'real-prisma'));
    symlinkSync(join(root, 'real-prisma'), join(dir, 'prisma'));
    expect(detectDbs(dir)).toEqual(['Prisma']);
  });

  it('a missing or unreadable directory detects nothing and does not throw', () => {
    const missing = join(root, 'nope');
    expect(detectStacks(missing)).toEqual([]);
    expect(detectDbs(missing)).toEqual([]);
    expect(collectMcpServers(missing)).toEqual([]);
  });
});

describe('directoryHealth', () => {
  it('true for a directory', () => {
    expect(directoryHealth(dir)).toBe(true);
  });

  it('false for a missing path, a file, and a path under a file', () => {
    write({ 'file.txt': 'x' });
    expect(directoryHealth(join(root, 'missing'))).toBe(false);
    expect(directoryHealth(join(dir, 'file.txt'))).toBe(false);
    expect(directoryHealth(join(dir, 'file.txt', 'sub'))).toBe(false);
  });

  it("'UNREADABLE' when asking fails for another reason (symlink loop, over-long name)", () => {
    const loop = join(root, 'loop');
    symlinkSync(loop, loop);
    expect(directoryHealth(loop)).toBe('UNREADABLE');
    expect(directoryHealth(join(root, 'n'.repeat(300)))).toBe('UNREADABLE');
  });
});

describe('previewFile', () => {
  it('returns the first N lines and flags truncation', () => {
    write({ 'f.md': 'a\nb\nc\n' });
    expect(previewFile(join(dir, 'f.md'), 2)).toEqual({ text: 'a\nb', truncated: true });
    expect(previewFile(join(dir, 'f.md'), 3)).toEqual({ text: 'a\nb\nc', truncated: false });
  });

  it('caps characters at max(200, lines*200)', () => {
    write({ 'f.md': 'y'.repeat(1000) });
    expect(previewFile(join(dir, 'f.md'), 1)).toEqual({ text: 'y'.repeat(200), truncated: true });
    expect(previewFile(join(dir, 'f.md'), 4)).toEqual({ text: 'y'.repeat(800), truncated: true });
    expect(previewFile(join(dir, 'f.md'), 5)).toEqual({ text: 'y'.repeat(1000), truncated: false });
  });

  it('an unreadable file is an empty preview', () => {
    expect(previewFile(join(dir, 'missing.md'), 10)).toEqual({ text: '', truncated: false });
  });
});

describe('symlinks in the project top level', () => {
  it('a broken symlink does not count as a present file; a link to a directory counts as a directory', () => {
    symlinkSync(join(dir, 'nowhere'), join(dir, 'Dockerfile'));
    mkdirSync(join(dir, 'real-migrations'));
    symlinkSync(join(dir, 'real-migrations'), join(dir, 'migrations'));
    const listing = new Listing(dir);
    expect(listing.has('Dockerfile')).toBe(false);
    expect(detectStacks(dir)).toEqual([]);
    expect(detectDbs(dir)).toEqual(['migrations']);
  });
});
