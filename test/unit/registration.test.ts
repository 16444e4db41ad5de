import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { classify, commandLine, expandVars, fsProbe, isPythonOriginalScript, thisProgram, type Endpoint, type Probe, type This } from '../../src/cli/registration.js';

let root: string;
let self: This;
let bin: string;
let probe: Probe;
/** This package's dist/cli.js stand-in. */
let script: string;

function file(path: string, text = '#!/bin/sh\nexit 0\n'): string {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  chmodSync(path, 0o755);
  return path;
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'ad-registration-'));
  script = file(join(root, 'pkg with space', 'dist', 'cli.js'), '#!/usr/bin/env node\n');
  self = thisProgram(script);
  bin = join(root, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  probe = fsProbe({ PATH: bin, HOME: root }, root);
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

/** As `claude mcp get` shows it: command and args apart. */
const got = (command: string, args: string): Endpoint => ({ transport: 'stdio', command, args, line: `${command} ${args}` });
/** As `claude mcp list` (or its conflict diagnostic) shows it: one line. */
const listed = (line: string): Endpoint => ({ transport: 'stdio', line });
const kind = (endpoint: Endpoint) => classify(endpoint, self, probe).kind;

describe('classify: this program', () => {
  it('what init registers: this node, the server flags, the script, serve', () => {
    expect(kind(got(process.execPath, `--max-semi-space-size=4 ${script} serve`))).toBe('ours');
    expect(kind(listed(`${process.execPath} --max-semi-space-size=4 ${script} serve`))).toBe('ours');
  });

  it('any node (a bare name on PATH, another path), with or without flags', () => {
    expect(kind(got('node', `${script} serve`))).toBe('ours');
    expect(kind(got('/some/other/bin/node', `${script} serve`))).toBe('ours');
    expect(kind(got('node', `--max-old-space-size=512 --no-warnings ${script} serve`))).toBe('ours');
    expect(kind(listed(`node --no-warnings ${script} serve`))).toBe('ours');
  });

  it('the script by a symlink, a relative path or ${VAR}', () => {
    const link = join(root, 'linked-cli.js');
    symlinkSync(script, link);
    expect(kind(got('node', `${link} serve`))).toBe('ours');
    expect(kind(got('node', 'pkg with space/dist/cli.js serve'))).toBe('ours');
    expect(kind(got('node', '${HOME}/pkg with space/dist/cli.js serve'))).toBe('ours');
  });

  it('an npm-linked agent-dispatch that resolves to this script, by name on PATH or by path', () => {
    symlinkSync(script, join(bin, 'agent-dispatch'));
    expect(kind(got('agent-dispatch', 'serve'))).toBe('ours');
    expect(kind(got(join(bin, 'agent-dispatch'), 'serve'))).toBe('ours');
    expect(kind(listed('agent-dispatch serve'))).toBe('ours');
  });

  it('not ours: another subcommand, extra arguments, no serve, a flag where the script should be', () => {
    expect(kind(got('node', `${script} init`))).not.toBe('ours');
    expect(kind(got('node', `${script} serve --extra`))).not.toBe('ours');
    expect(kind(got('node', script))).not.toBe('ours');
    expect(kind(got('node', 'serve'))).not.toBe('ours');
    expect(kind(got('node', `--require ${script} other.js serve`))).not.toBe('ours');
    expect(kind(got(script, 'init'))).not.toBe('ours');
  });

  it('not ours: a non-node command given this script', () => {
    expect(kind(got('/usr/bin/python3', `${script} serve`))).toBe('other');
    expect(kind(got('bun', `${script} serve`))).toBe('other');
  });

  it('not ours: another copy of the program', () => {
    const copy = file(join(root, 'other-checkout', 'dist', 'cli.js'), '#!/usr/bin/env node\n');
    expect(kind(got(process.execPath, `--max-semi-space-size=4 ${copy} serve`))).toBe('other');
  });
});

describe('classify: the Python original', () => {
  it('its own init registration: the console script by absolute path, serve', () => {
    const consoleScript = file(join(root, '.local', 'bin', 'agent-dispatch'), '#!/usr/bin/python3\nfrom agent_dispatch.cli import cli\n');
    expect(kind(got(consoleScript, 'serve'))).toBe('original');
    expect(kind(listed(`${consoleScript} serve`))).toBe('original');
  });

  it('by name on PATH, or a path that does not exist (any more)', () => {
    file(join(bin, 'agent-dispatch'), '#!/usr/bin/python3\n');
    expect(kind(got('agent-dispatch', 'serve'))).toBe('original');
    expect(kind(got('/gone/venv/bin/agent-dispatch', 'serve'))).toBe('original');
    expect(kind(got('/venv/bin/agent_dispatch', 'serve'))).toBe('original');
  });

  it('python -m agent_dispatch, uvx, pipx, a path into the package', () => {
    expect(kind(got('python3', '-m agent_dispatch serve'))).toBe('original');
    expect(kind(got('/usr/bin/python3.12', '-m agent_dispatch.server'))).toBe('original');
    expect(kind(listed('python -m agent_dispatch serve'))).toBe('original');
    expect(kind(got('uvx', 'agent-dispatch serve'))).toBe('original');
    expect(kind(got('uv', 'run --with agent-dispatch agent-dispatch serve'))).toBe('original');
    expect(kind(got('pipx', 'run agent-dispatch serve'))).toBe('original');
    expect(kind(got('python3', '/venv/lib/python3.12/site-packages/agent_dispatch/server.py'))).toBe('original');
  });

  it('a path with spaces, from the one-line form', () => {
    expect(kind(listed('/opt/my tools/agent-dispatch serve'))).toBe('original');
  });
});

describe('classify: anything else', () => {
  it('unrelated servers, also ones with agent-dispatch in a directory name', () => {
    expect(kind(got('npx', '-y @modelcontextprotocol/server-github'))).toBe('other');
    expect(kind(got('/opt/agent-dispatch/bin/other', 'serve'))).toBe('other');
    expect(kind(listed('/opt/agent-dispatch/bin/other serve'))).toBe('other');
    expect(kind(listed(''))).toBe('other');
  });

  it('an agent-dispatch that is JavaScript but not this script, and npx agent-dispatch', () => {
    const copy = file(join(root, 'other-checkout', 'dist', 'cli.js'), '#!/usr/bin/env node\n');
    symlinkSync(copy, join(bin, 'agent-dispatch'));
    expect(kind(got('agent-dispatch', 'serve'))).toBe('other');
    expect(kind(got('npx', '-y agent-dispatch serve'))).toBe('other');
  });

  it('http and sse servers, whatever their URL', () => {
    expect(kind({ transport: 'http', line: 'https://example.com/agent-dispatch' })).toBe('other');
    expect(kind({ transport: 'sse', line: 'https://example.com/agent_dispatch/sse' })).toBe('other');
  });
});

describe('commandLine', () => {
  it('command and args as Claude Code shows them; a command with a space is quoted', () => {
    expect(commandLine(got('/x/agent-dispatch', 'serve'))).toBe('/x/agent-dispatch serve');
    expect(commandLine(got('/opt/my tools/agent-dispatch', 'serve'))).toBe("'/opt/my tools/agent-dispatch' serve");
    expect(commandLine({ transport: 'stdio', command: '/bin/x', args: '', line: '/bin/x' })).toBe('/bin/x');
    expect(commandLine(listed('a b c'))).toBe('a b c');
  });
});

describe('expandVars', () => {
  it('${VAR} and ${VAR:-default}, as Claude Code expands them; unknown ones stay', () => {
    const env = { HOME: '/home/me', EMPTY: '' };
    expect(expandVars('${HOME}/.local/bin/agent-dispatch', env)).toBe('/home/me/.local/bin/agent-dispatch');
    expect(expandVars('${NOPE:-/opt}/x', env)).toBe('/opt/x');
    expect(expandVars('${NOPE}/x', env)).toBe('${NOPE}/x');
    expect(expandVars('$HOME/x', env)).toBe('$HOME/x');
  });
});

describe('fsProbe', () => {
  it('resolves a bare name on PATH and follows symlinks; undefined when not found', () => {
    symlinkSync(script, join(bin, 'agent-dispatch'));
    expect(probe.command('agent-dispatch')).toBe(self.script);
    expect(probe.command('no-such-command')).toBeUndefined();
    expect(probe.path('pkg with space/dist/cli.js')).toBe(self.script);
  });
});

describe('isPythonOriginalScript', () => {
  it.each([
    ['a pip console script', '#!/usr/bin/python3\nimport re\nimport sys\nfrom agent_dispatch.cli import cli\n', true],
    ['a venv python with a version', '#!/home/me/.venv/bin/python3.12\nfrom x import y\n', true],
    ['a shell wrapper around the module', '#!/bin/sh\nexec python -m agent_dispatch "$@"\n', true],
    ['a shell script', '#!/bin/sh\nexit 0\n', false],
    ['a node script', '#!/usr/bin/env node\nimport "./dist/cli.js";\n', false],
    ['a python word past the first 4 KiB', `#!/bin/sh\n${'#'.repeat(5000)}\nagent_dispatch\n`, false],
  ])('%s → %s', (_, text, expected) => {
    expect(isPythonOriginalScript(file(join(root, 'bin', 'agent-dispatch'), text))).toBe(expected);
  });

  it('a FIFO, a device or a missing path is not, and never blocks', () => {
    const fifo = join(root, 'fifo');
    spawnSync('mkfifo', [fifo]);
    expect(isPythonOriginalScript(fifo)).toBe(false);
    expect(isPythonOriginalScript('/dev/zero')).toBe(false);
    expect(isPythonOriginalScript(join(root, 'missing'))).toBe(false);
  });
});
