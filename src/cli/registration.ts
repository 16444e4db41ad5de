/**
 * Is an MCP registration this program, the unsandboxed Python original, or something else? `classify` is pure
 * given a `Probe` that says what a command or path resolves to; `fsProbe` asks the filesystem.
 */
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import { which } from './which.js';

export type Verdict =
  /** This program: its script (realpath) with `serve`, run by node or directly (e.g. an `npm link`ed bin). */
  | { kind: 'ours' }
  /** The Python original: a command named `agent-dispatch`/`agent_dispatch`, `python -m agent_dispatch`, `uvx agent-dispatch`, … */
  | { kind: 'original' }
  /** Anything else. */
  | { kind: 'other' };

/** What a registration runs, as far as Claude Code shows it. */
export interface Endpoint {
  transport: 'stdio' | 'http' | 'sse' | 'unknown';
  /** The command and its arguments when Claude Code printed them apart (`mcp get`). */
  command?: string | undefined;
  args?: string | undefined;
  /** The command line (or URL) as one string: `command args…` joined with spaces (`mcp list`). */
  line: string;
}

export interface Probe {
  /** The file a command runs: a bare name looked up on PATH, a path made absolute; symlinks resolved. */
  command(command: string): string | undefined;
  /** A path argument made absolute (against the working directory) with symlinks resolved. */
  path(path: string): string;
}

export interface This {
  /** Our dist/cli.js, symlinks resolved. */
  script: string;
  /** The node running us, symlinks resolved. */
  node: string;
}

const NODE = /^node(js)?[\d.]*$/;
const ORIGINAL_NAME = /^agent[-_]dispatch(\.py)?$/;
const PYTHON_MODULE = /(^| )-m agent_dispatch(\.[\w.]+)?( |$)/;
const JAVASCRIPT = /\.[cm]?js$/;
const JS_RUNNER = /^(npx|pnpx|bunx|npm|pnpm|yarn|bun)$/;

export function classify(endpoint: Endpoint, self: This, probe: Probe): Verdict {
  if (endpoint.transport === 'http' || endpoint.transport === 'sse') return { kind: 'other' };
  const splits: [string, string][] = endpoint.command !== undefined ? [[endpoint.command, endpoint.args ?? '']] : spaceSplits(endpoint.line);
  for (const [command, args] of splits) {
    if (isOurs(command, args, self, probe)) return { kind: 'ours' };
  }
  return isOriginal(endpoint, probe) ? { kind: 'original' } : { kind: 'other' };
}

/** The command line as Claude Code prints it; a path with spaces in it is quoted. */
export function commandLine(endpoint: Endpoint): string {
  if (endpoint.command === undefined) return endpoint.line;
  const command = /\s/.test(endpoint.command) ? `'${endpoint.command}'` : endpoint.command;
  return endpoint.args ? `${command} ${endpoint.args}` : command;
}

function isOurs(command: string, args: string, self: This, probe: Probe): boolean {
  const target = probe.command(command);
  if (target === self.script) return args === 'serve';
  const isNode = NODE.test(basename(command)) || (target !== undefined && (target === self.node || NODE.test(basename(target))));
  if (!isNode) return false;
  // `[node flags…] SCRIPT serve`: the script is the first argument that is not a flag; it may contain spaces.
  if (!args.endsWith(' serve')) return false;
  const words = args.slice(0, -' serve'.length);
  const starts = [0, ...[...words.matchAll(/ /g)].map((m) => m.index + 1)];
  for (const start of starts) {
    const flags = start === 0 ? [] : words.slice(0, start - 1).split(' ');
    if (!flags.every((flag) => flag.startsWith('-'))) return false;
    const script = words.slice(start);
    if (script !== '' && !script.startsWith('-') && probe.path(script) === self.script) return true;
  }
  return false;
}

function isOriginal(endpoint: Endpoint, probe: Probe): boolean {
  if (PYTHON_MODULE.test(endpoint.line)) return true;
  const [command = '', ...args] = endpoint.command !== undefined ? [endpoint.command, ...(endpoint.args ?? '').split(' ')] : endpoint.line.split(' ');
  if (ORIGINAL_NAME.test(basename(command))) {
    // An `agent-dispatch` that is JavaScript is some other copy of this program, not the Python original.
    const target = probe.command(command);
    return target === undefined || !JAVASCRIPT.test(target);
  }
  // `uvx agent-dispatch serve`, `pipx run agent-dispatch serve`, `python …/agent_dispatch/server.py`; an npm
  // runner's `agent-dispatch` is a JavaScript package, not the Python one.
  if (JS_RUNNER.test(basename(command))) return false;
  return args.some((word) => ORIGINAL_NAME.test(basename(word)) || /(^|\/)agent_dispatch\//.test(word));
}

/** Every way to cut `a b c` into command and arguments: [a, b c], [a b, c], [a b c, '']. */
function spaceSplits(line: string): [string, string][] {
  const splits: [string, string][] = [];
  for (let i = line.indexOf(' '); i !== -1; i = line.indexOf(' ', i + 1)) splits.push([line.slice(0, i), line.slice(i + 1)]);
  splits.push([line, '']);
  return splits;
}

/** `${VAR}` and `${VAR:-default}`, which Claude Code expands in a registration's command and arguments. */
export function expandVars(text: string, env: NodeJS.ProcessEnv): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (whole, name: string, fallback: string | undefined) => env[name] ?? fallback ?? whole);
}

/**
 * Is this executable the Python original's console script (a python shebang, or code naming its package)?
 * Reads at most 4 KiB of a regular file, never blocking on a FIFO or device; anything unreadable is "no".
 */
export function isPythonOriginalScript(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    if (!fstatSync(fd).isFile()) return false;
    const head = Buffer.alloc(4096);
    const text = head.subarray(0, readSync(fd, head, 0, head.length, 0)).toString('latin1');
    return /^#!.*\bpython[\d.]*\b/.test(text) || /\bagent_dispatch\b/.test(text);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function real(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** The filesystem's answers, with this process's PATH, working directory and environment. */
export function fsProbe(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): Probe {
  return {
    command(command) {
      const expanded = expandVars(command, env);
      if (expanded.includes('/')) return real(resolve(cwd, expanded));
      const found = which(expanded, env['PATH'] ?? '');
      return found === undefined ? undefined : real(found);
    },
    path(path) {
      const expanded = expandVars(path, env);
      return real(isAbsolute(expanded) ? expanded : resolve(cwd, expanded));
    },
  };
}

/** Who we are, for `classify`: the script `serverCommand` registers and this node, symlinks resolved. */
export function thisProgram(script: string): This {
  return { script: real(script), node: real(process.execPath) };
}
