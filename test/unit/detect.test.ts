import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { autoDescribe, collectMcpServers, detectDbs, detectStacks, directoryHealth, Listing, previewFile } from '../../src/project/detect.js';
import { MAX_REPO_FILE_BYTES } from '../../src/project/safe-read.js';
import { useIsolatedSrc } from './isolated-src.js';
import { configYaml, startHarness } from './mcp-harness.js';

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

  it('a symlink to a directory counts as the directory only when it stays inside the project', () => {
    mkdirSync(join(root, 'real-prisma'));
    symlinkSync(join(root, 'real-prisma'), join(dir, 'prisma'));
    expect(detectDbs(dir)).toEqual([]);
    write({ 'db/alembic/': '' });
    symlinkSync('db/alembic', join(dir, 'alembic'));
    expect(detectDbs(dir)).toEqual(['Alembic']);
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
    expect(previewFile(dir, 'f.md', 2)).toEqual({ text: 'a\nb', truncated: true });
    expect(previewFile(dir, 'f.md', 3)).toEqual({ text: 'a\nb\nc', truncated: false });
  });

  it('caps characters at max(200, lines*200)', () => {
    write({ 'f.md': 'y'.repeat(1000) });
    expect(previewFile(dir, 'f.md', 1)).toEqual({ text: 'y'.repeat(200), truncated: true });
    expect(previewFile(dir, 'f.md', 4)).toEqual({ text: 'y'.repeat(800), truncated: true });
    expect(previewFile(dir, 'f.md', 5)).toEqual({ text: 'y'.repeat(1000), truncated: false });
  });

  it('an unreadable file is an empty preview', () => {
    expect(previewFile(dir, 'missing.md', 10)).toEqual({ text: '', truncated: false });
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

const SECRET = 'SECRET-ssh-key-material';

/**
 * A repo whose every project file leads out of it: links to a private key and to JSON/TOML files that would
 * be used if read, `.mcp.json -> /dev/zero`, and linked directories holding an MCP config and a prisma dir.
 */
function hostileRepo(repo: string, home: string): void {
  mkdirSync(join(home, '.ssh'), { recursive: true });
  mkdirSync(join(home, 'claude-dir'), { recursive: true });
  mkdirSync(join(home, 'prisma'), { recursive: true });
  writeFileSync(join(home, '.ssh', 'id_ed25519'), `${SECRET}\nline two of the key is long enough to be a README line\n`);
  writeFileSync(join(home, 'package.json'), JSON.stringify({ description: SECRET }));
  writeFileSync(join(home, 'pyproject.toml'), `description = "${SECRET}"\n`);
  writeFileSync(join(home, 'claude-dir', 'settings.local.json'), JSON.stringify({ mcpServers: { [SECRET]: {} } }));
  symlinkSync(join(home, '.ssh', 'id_ed25519'), join(repo, 'README.md'));
  symlinkSync(join(home, '.ssh', 'id_ed25519'), join(repo, 'CLAUDE.md'));
  symlinkSync(join(home, 'package.json'), join(repo, 'package.json'));
  symlinkSync(join(home, 'pyproject.toml'), join(repo, 'pyproject.toml'));
  symlinkSync('/dev/zero', join(repo, '.mcp.json'));
  symlinkSync(join(home, 'claude-dir'), join(repo, '.claude'));
  symlinkSync(join(home, 'prisma'), join(repo, 'prisma'));
}

describe('a hostile repo: links out of it, devices, oversized files', () => {
  it('nothing outside the repo is read: the description is the empty-project fallback', () => {
    hostileRepo(dir, join(root, 'home'));
    const started = Date.now();
    expect(autoDescribe(dir)).toBe('Agent in my-project');
    expect(collectMcpServers(dir)).toEqual([]);
    expect(detectStacks(dir)).toEqual([]);
    expect(detectDbs(dir)).toEqual([]);
    expect(previewFile(dir, 'README.md', 200)).toEqual({ text: '', truncated: false });
    expect(previewFile(dir, 'CLAUDE.md', 200)).toEqual({ text: '', truncated: false });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it(`a README over ${MAX_REPO_FILE_BYTES} bytes is previewed from its first bytes and flagged truncated`, () => {
    write({ 'README.md': `First line of a long README file.\n${'x'.repeat(3 * MAX_REPO_FILE_BYTES)}` });
    expect(previewFile(dir, 'README.md', 1)).toEqual({ text: 'First line of a long README file.', truncated: true });
    expect(autoDescribe(dir)).toBe('First line of a long README file.');
  });

  it('a character cut in half by the bound does not make the text unreadable', () => {
    // 23 bytes then 2-byte characters: the bound falls inside one of them.
    write({ 'CLAUDE.md': `Describes the project.\n# ${'é'.repeat(MAX_REPO_FILE_BYTES)}\n` });
    expect(autoDescribe(dir)).toBe('Describes the project.');
  });

  it('a JSON file over the bound is not parsed: its description is not used (a cut document is no document)', () => {
    write({ 'package.json': JSON.stringify({ description: 'Big manifest', padding: 'p'.repeat(MAX_REPO_FILE_BYTES) }) });
    expect(autoDescribe(dir)).toBe('Stack: Node.js');
    write({ 'package.json': JSON.stringify({ description: 'Small manifest' }) });
    expect(autoDescribe(dir)).toBe('Small manifest | Stack: Node.js');
  });
});

describe('FIFOs named like project files never block detection (child process, under a timeout)', () => {
  const src = useIsolatedSrc();

  it('autoDescribe, collectMcpServers and previewFile return within 1 s', () => {
    for (const name of ['README.md', 'CLAUDE.md', 'package.json', 'pyproject.toml', '.mcp.json']) spawnSync('mkfifo', [join(dir, name)]);
    const run = src().run(
      `import { autoDescribe, collectMcpServers, previewFile } from '@src/project/detect.js';
       const dir = ${JSON.stringify(dir)};
       const started = Date.now();
       const result = { description: autoDescribe(dir), servers: collectMcpServers(dir), preview: previewFile(dir, 'README.md', 40) };
       console.log(JSON.stringify({ ...result, ms: Date.now() - started }));`,
      10_000,
    );
    expect(run.timedOut, run.stderr).toBe(false);
    const out = JSON.parse(run.stdout);
    expect(out).toMatchObject({ description: 'Agent in my-project', servers: [], preview: { text: '', truncated: false } });
    expect(out.ms).toBeLessThan(1000);
  });

  it('over MCP: inspect_agent on a repo of FIFOs answers within 1 s, and the server answers the next call', () => {
    for (const name of ['README.md', 'CLAUDE.md', '.mcp.json']) spawnSync('mkfifo', [join(dir, name)]);
    const configPath = join(root, 'config', 'agents.yaml');
    mkdirSync(join(root, 'config'));
    writeFileSync(configPath, configYaml({ agents: { fifo: { directory: dir } } }));
    const run = src().run(
      `import { Client } from '@modelcontextprotocol/sdk/client/index.js';
       import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
       import { createServer } from '@src/mcp/server.js';
       const { server } = createServer({ AGENT_DISPATCH_CONFIG: ${JSON.stringify(configPath)} });
       const client = new Client({ name: 'fifo-test', version: '0' });
       const [a, b] = InMemoryTransport.createLinkedPair();
       await Promise.all([server.connect(b), client.connect(a)]);
       const started = Date.now();
       const inspect = await client.callTool({ name: 'inspect_agent', arguments: { name: 'fifo', preview_lines: 200 } });
       const ms = Date.now() - started;
       const list = await client.callTool({ name: 'list_agents', arguments: {} });
       console.log(JSON.stringify({ ms, inspect: JSON.parse(inspect.content[0].text), list: JSON.parse(list.content[0].text) }));
       await client.close();`,
      15_000,
    );
    expect(run.timedOut, run.stderr).toBe(false);
    const out = JSON.parse(run.stdout);
    expect(out.ms).toBeLessThan(1000);
    expect(out.inspect).toMatchObject({ name: 'fifo', healthy: true, has_claude_md: false, has_readme: false, has_mcp_config: false, mcp_servers: [] });
    expect(out.list).toEqual([expect.objectContaining({ name: 'fifo', healthy: true, has_claude_md: false })]);
  });
});

describe('over MCP (in-memory harness): a hostile repo', () => {
  it('add_agent, inspect_agent and list_agents return no content from outside the repo, and the server keeps answering', async () => {
    const h = await startHarness();
    try {
      const repo = h.project('evil');
      hostileRepo(repo, join(h.root, 'home'));
      h.writeConfig(configYaml({ agents: {} }));
      const added = await h.call('add_agent', { name: 'evil', directory: repo });
      expect(added.isError, added.text).toBe(false);
      const inspect = await h.call('inspect_agent', { name: 'evil', preview_lines: 200 });
      expect(inspect.isError, inspect.text).toBe(false);
      expect(inspect.json).toMatchObject({ description: 'Agent in evil', healthy: true, mcp_servers: [], stacks: [], dbs: [], has_claude_md: false, has_readme: false, has_mcp_config: false });
      expect(inspect.json).not.toHaveProperty('readme_preview');
      const list = await h.call('list_agents');
      for (const answer of [added, inspect, list]) expect(answer.text).not.toContain(SECRET);
      expect(list.json).toEqual([expect.objectContaining({ name: 'evil', description: 'Agent in evil', has_claude_md: false, has_mcp_config: false })]);
      expect((await h.call('inspect_agent', { name: 'evil' })).isError).toBe(false);
    } finally {
      await h.close();
    }
  });
});
