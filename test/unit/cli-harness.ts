/**
 * In-process harness for the CLI tests: `main(argv)` with stdout/stderr captured, a fresh config path
 * per test (AGENT_DISPATCH_CONFIG), project directories, and fake `claude` executables on PATH.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { vi } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { main } from '../../src/cli/main.js';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout + stderr, for assertions that do not care which stream a line went to. */
  all: string;
}

/** Capture everything written to stdout and stderr while `fn` runs; restore the streams afterwards. */
export async function capture(fn: () => Promise<number> | number): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const toText = (chunk: unknown) => (typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
  const outSpy = vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: unknown) => {
    stdout += toText(chunk);
    return true;
  }) as never);
  const errSpy = vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: unknown) => {
    stderr += toText(chunk);
    return true;
  }) as never);
  let code: number;
  try {
    code = await fn();
  } finally {
    outSpy.mockRestore();
    errSpy.mockRestore();
  }
  return { code, stdout, stderr, all: stdout + stderr };
}

export function run(...argv: string[]): Promise<RunResult> {
  return capture(() => main(argv));
}

/** A stack frame line, i.e. a trace leaked to the user. */
export const STACK_LINE = /^ {4}at /m;

export interface Env {
  root: string;
  /** Directory holding agents.yaml (also where user policies live: `<stateDir>/policies`). */
  stateDir: string;
  configPath: string;
  /** An empty directory that is the whole PATH, unless a test adds fakes to it. */
  binDir: string;
  /** A project directory under root, created with the given files. */
  project(name: string, files?: Record<string, string>): string;
  writeConfig(data: unknown): void;
  writeConfigText(text: string | Buffer): void;
  /** The saved config as plain data (YAML parsed). */
  config(): { agents: Record<string, Record<string, unknown>>; groups?: Record<string, Record<string, unknown>>; settings?: unknown };
  configExists(): boolean;
  /** A symlink pointing at itself: stat fails with ELOOP, the stand-in (as root) for an unreadable directory. */
  loopPath(): string;
  cleanup(): void;
}

/** Fresh temp root, AGENT_DISPATCH_CONFIG inside it, PATH = an empty bin dir, colours off. */
export function setupEnv(): Env {
  const root = mkdtempSync(join(tmpdir(), 'ad-cli-'));
  const stateDir = join(root, 'state');
  const configPath = join(stateDir, 'agents.yaml');
  const binDir = join(root, 'bin');
  mkdirSync(binDir);
  vi.stubEnv('AGENT_DISPATCH_CONFIG', configPath);
  vi.stubEnv('PATH', binDir);
  vi.stubEnv('NO_COLOR', '1');
  return {
    root,
    stateDir,
    configPath,
    binDir,
    project(name, files = {}) {
      const dir = join(root, 'projects', name);
      mkdirSync(dir, { recursive: true });
      for (const [file, content] of Object.entries(files)) {
        mkdirSync(dirname(join(dir, file)), { recursive: true });
        writeFileSync(join(dir, file), content);
      }
      return dir;
    },
    writeConfig(data) {
      this.writeConfigText(stringify(data));
    },
    writeConfigText(text) {
      mkdirSync(stateDir, { recursive: true });
      writeFileSync(configPath, text);
    },
    config() {
      return parseYaml(readFileSync(configPath, 'utf8')) as ReturnType<Env['config']>;
    },
    configExists() {
      return existsSync(configPath);
    },
    loopPath() {
      const link = join(root, 'loop');
      if (!existsSync(link)) symlinkSync(link, link);
      return link;
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface FakeClaude {
  path: string;
  /** Every invocation's argv, in order. */
  calls(): string[][];
  /** The registry as it is now (after the `mcp remove` and `mcp add-json` calls so far). */
  servers(): FakeServer[];
}

/** One MCP registration in the fake's registry: what `claude mcp add-json NAME CONFIG -s SCOPE` stores. */
export interface FakeServer {
  name: string;
  scope: 'user' | 'local' | 'project';
  config: { type?: string; command?: string; args?: string[]; url?: string; env?: Record<string, string> };
}

export interface FakeClaudeOptions {
  /** Registrations already there (default: none). */
  servers?: FakeServer[];
  /** `mcp list` prints exactly this instead of the registry (and exits `mcpListExit`). */
  mcpList?: string;
  mcpListExit?: number;
  /** `mcp get` fails with this exit code and stderr. */
  getExit?: number;
  getStderr?: string;
  /** `mcp remove` fails with this exit code and stderr. */
  removeExit?: number;
  removeStderr?: string;
  /** `mcp add-json` and any other command: exit non-zero with this output instead (0: add-json works). */
  exitCode?: number;
  stdout?: string;
  stderr?: string;
  /** Status per name in `mcp get`/`mcp list` (default `✔ Connected`). */
  status?: Record<string, string>;
}

const FAKE_CLAUDE = join(import.meta.dirname, 'fake-claude.cjs');

/**
 * A fake `claude` in `binDir`: a node script (absolute shebang, so PATH may be just `binDir`) that records each
 * invocation's argv (one argument per line, calls separated by a `<<end>>` line) and answers `mcp get`, `mcp list`,
 * `mcp remove` and `mcp add-json` from a registry, in Claude Code's words (fake-claude.cjs).
 */
export function fakeClaude(binDir: string, options: FakeClaudeOptions = {}): FakeClaude {
  const log = join(binDir, 'claude.calls');
  const state = join(binDir, 'claude.state.json');
  writeFileSync(state, JSON.stringify({ ...options, servers: options.servers ?? [] }));
  const path = join(binDir, 'claude');
  writeFileSync(path, `#!${process.execPath}\nrequire(${JSON.stringify(FAKE_CLAUDE)});\n`);
  chmodSync(path, 0o755);
  return {
    path,
    calls() {
      if (!existsSync(log)) return [];
      const lines = readFileSync(log, 'utf8').split('\n');
      const calls: string[][] = [];
      let current: string[] = [];
      for (const line of lines) {
        if (line === '<<end>>') {
          calls.push(current);
          current = [];
        } else if (line !== '') current.push(line);
      }
      return calls;
    },
    servers() {
      return (JSON.parse(readFileSync(state, 'utf8')) as { servers: FakeServer[] }).servers;
    },
  };
}

/** This program as `init` registers it (the script is the one the source tree's init points at). */
export function oursServer(scope: FakeServer['scope'] = 'user', name = 'agent-dispatch'): FakeServer {
  return { name, scope, config: { type: 'stdio', command: process.execPath, args: ['--max-semi-space-size=4', SOURCE_CLI, 'serve'] } };
}

/** The Python original as its own `init` registers it: `{"type":"stdio","command":"<abs path>","args":["serve"]}`. */
export function originalServer(command: string, scope: FakeServer['scope'] = 'user', name = 'agent-dispatch'): FakeServer {
  return { name, scope, config: { type: 'stdio', command, args: ['serve'] } };
}

/** Where `serverCommand()` points when the CLI runs from source (tests): src/cli.js, next to src/cli.ts. */
export const SOURCE_CLI = join(import.meta.dirname, '..', '..', 'src', 'cli.js');

/** A do-nothing `agent-dispatch` on PATH (doctor warns when it is missing; init registers its path). */
export function fakeAgentDispatch(binDir: string): string {
  const path = join(binDir, 'agent-dispatch');
  writeFileSync(path, '#!/bin/sh\nexit 0\n');
  chmodSync(path, 0o755);
  return path;
}

/** `agents.yaml` bytes in Windows-1251 (Cyrillic description): not valid UTF-8. */
export function cp1251Config(directory: string): Buffer {
  return Buffer.concat([
    Buffer.from(`agents:\n  ru:\n    directory: ${directory}\n    description: "`),
    Buffer.from([0xcf, 0xf0, 0xe8, 0xe2, 0xe5, 0xf2]), // "Привет" in cp1251
    Buffer.from('"\n'),
  ]);
}
