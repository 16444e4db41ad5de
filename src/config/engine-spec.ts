import { isIP } from 'node:net';
import { expandDirectory } from './paths.js';

/**
 * Where an agent's containers run (settings.engine, agents.<name>.engine), as written in agents.yaml: a
 * `unix:///path`, `ssh://user@host[:port]` or loopback `tcp://host:port` string, or a TLS engine
 * `{ host: 'tcp://host:port', tls_cert_dir: <dir with ca.pem, cert.pem, key.pem> }`.
 */
export type EngineSpec = string | { host: string; tls_cert_dir: string };

/** An engine spec checked and taken apart; pure (no file is read, nothing is contacted). */
export type ParsedEngine =
  | { kind: 'unix'; socketPath: string }
  | { kind: 'ssh'; host: string; port: number; username: string }
  | { kind: 'tcp'; host: string; port: number; tlsCertDir?: string };

export type EngineParse = { ok: true; engine: ParsedEngine; key: string } | { ok: false; message: string };

const FORMS = 'unix:///path/to/docker.sock, ssh://user@host[:port], tcp://127.0.0.1:port, or { host: tcp://host:port, tls_cert_dir: DIR }';
const TLS_HINT = 'write it as { host: tcp://HOST:2376, tls_cert_dir: DIR } with ca.pem, cert.pem and key.pem in DIR (the engine run with --tlsverify), or use ssh://user@HOST';

function fail(message: string): EngineParse {
  return { ok: false, message };
}

/** Loopback: 127.0.0.0/8, ::1, localhost. A plain-TCP engine is accepted only there (nothing else can reach it). */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return isIP(bare) === 6 && (bare === '::1' || bare === '0:0:0:0:0:0:0:1');
}

function port(text: string, fallback: number): number | undefined {
  if (text === '') return fallback;
  const value = Number(text);
  return Number.isInteger(value) && value >= 1 && value <= 65535 ? value : undefined;
}

/** The one canonical text of an engine: agents naming the same engine share its runner. */
export function engineKey(engine: ParsedEngine): string {
  if (engine.kind === 'unix') return `unix://${engine.socketPath}`;
  if (engine.kind === 'ssh') return `ssh://${engine.username}@${engine.host}:${engine.port}`;
  return `tcp://${engine.host}:${engine.port}${engine.tlsCertDir ? ` tls=${engine.tlsCertDir}` : ''}`;
}

/** What messages call the engine: its address, without the certificate directory. */
export function engineLabel(engine: ParsedEngine): string {
  return engineKey(engine).split(' ')[0]!;
}

export function parseEngineSpec(spec: EngineSpec): EngineParse {
  if (typeof spec === 'object' && spec !== null) return parseTlsEngine(spec.host, spec.tls_cert_dir);
  if (typeof spec !== 'string') return fail(`engine must be a string or { host, tls_cert_dir }: use ${FORMS}`);
  const text = spec.trim();
  if (text.startsWith('unix://')) return parseUnix(text.slice('unix://'.length));
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(`engine '${text}' is not an address: use ${FORMS}`);
  }
  if (url.protocol === 'ssh:') return parseSsh(text, url);
  if (url.protocol === 'tcp:') {
    const parsed = parseTcp(text, url);
    if (!parsed.ok || parsed.engine.kind !== 'tcp' || isLoopbackHost(parsed.engine.host)) return parsed;
    return fail(`engine '${text}' is plain TCP without TLS to a host other than this machine: anyone who reaches that port is root on it, so agent-dispatch refuses it. Instead ${TLS_HINT}`);
  }
  return fail(`engine '${text}' has an unsupported scheme '${url.protocol}': use ${FORMS}`);
}

function parseUnix(path: string): EngineParse {
  if (!path.startsWith('/')) return fail(`engine 'unix://${path}' needs an absolute socket path, e.g. unix:///var/run/docker.sock`);
  if (path.length === 1 || path.endsWith('/')) return fail(`engine 'unix://${path}' names a directory, not a socket`);
  const engine: ParsedEngine = { kind: 'unix', socketPath: path };
  return { ok: true, engine, key: engineKey(engine) };
}

function parseSsh(text: string, url: URL): EngineParse {
  if (!url.username) return fail(`engine '${text}' names no user: write ssh://user@host[:port]`);
  if (url.password) return fail(`engine '${text}' holds a password: agent-dispatch takes none in agents.yaml; use an SSH key through ssh-agent (SSH_AUTH_SOCK)`);
  if (!url.hostname) return fail(`engine '${text}' names no host: write ssh://user@host[:port]`);
  if ((url.pathname && url.pathname !== '/') || url.search || url.hash) return fail(`engine '${text}' has a path or query: write ssh://user@host[:port]`);
  const p = port(url.port, 22);
  if (p === undefined) return fail(`engine '${text}' has an invalid port`);
  const engine: ParsedEngine = { kind: 'ssh', host: url.hostname, port: p, username: decodeURIComponent(url.username) };
  return { ok: true, engine, key: engineKey(engine) };
}

function parseTcp(text: string, url: URL, tlsCertDir?: string): EngineParse {
  if (url.username || url.password) return fail(`engine '${text}' holds credentials in the address: a TCP engine authenticates with its TLS client certificate (tls_cert_dir)`);
  if (!url.hostname) return fail(`engine '${text}' names no host: write tcp://host:port`);
  if ((url.pathname && url.pathname !== '/') || url.search || url.hash) return fail(`engine '${text}' has a path or query: write tcp://host:port`);
  const p = port(url.port, tlsCertDir ? 2376 : 2375);
  if (p === undefined) return fail(`engine '${text}' has an invalid port`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const engine: ParsedEngine = tlsCertDir ? { kind: 'tcp', host, port: p, tlsCertDir } : { kind: 'tcp', host, port: p };
  return { ok: true, engine, key: engineKey(engine) };
}

function parseTlsEngine(host: unknown, certDir: unknown): EngineParse {
  if (typeof host !== 'string' || host.trim() === '') return fail(`engine.host must be a tcp://host:port string (with tls_cert_dir)`);
  if (typeof certDir !== 'string' || certDir.trim() === '') return fail(`engine.tls_cert_dir must be the directory holding ca.pem, cert.pem and key.pem`);
  const text = host.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(`engine.host '${text}' is not an address: write tcp://host:port`);
  }
  if (url.protocol !== 'tcp:') return fail(`engine.host '${text}': tls_cert_dir goes with a tcp://host:port engine only (write unix:// and ssh:// engines as a plain string)`);
  return parseTcp(text, url, expandDirectory(certDir.trim()));
}

/** The engine an agent's containers run on: its own, else settings.engine, else undefined (DOCKER_HOST / the local socket). */
export function effectiveEngineSpec(agent: { engine?: EngineSpec | undefined } | undefined, settings: { engine?: EngineSpec | undefined }): EngineSpec | undefined {
  return agent?.engine ?? settings.engine;
}

/** Every engine a config names (settings.engine, then each agent's), as written: callers key them (engineKey) to visit each once. */
export function namedEngines(config: { settings: { engine?: EngineSpec | undefined }; agents: Record<string, { engine?: EngineSpec | undefined }> }): EngineSpec[] {
  return [config.settings.engine, ...Object.values(config.agents).map((agent) => agent.engine)].filter((spec): spec is EngineSpec => spec !== undefined);
}
