import { readFileSync } from 'node:fs';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { tokensPath, TokenStore } from '../../config/tokens.js';
import { DEFAULT_HOST, DEFAULT_PORT, parseListen, type ListenTarget } from '../../mcp/http/listen.js';
import { startHttpService } from '../../mcp/http/service.js';
import { createServer } from '../../mcp/server.js';
import { describeError } from '../../errors.js';
import { fail, list, parse, str, UsageError, type Parsed } from '../args.js';
import { err } from '../output.js';
import type { CommandSpec } from '../spec.js';

/**
 * The stdio MCP server. At start it reaps dispatch containers left by a server that died; when the client
 * goes away or a SIGTERM/SIGINT arrives, every container still running is killed and removed before exit.
 */
/** Upper bound on a stop: container removals (each bounded at 15 s, run in parallel) and closing the transport. */
const SHUTDOWN_MS = 20_000;

const HTTP_OPTIONS = ['listen', 'socket', 'tls-cert', 'tls-key', 'allowed-host'];

export const serveSpec: CommandSpec = {
  name: 'serve',
  summary: 'Run the MCP server on stdio (what Claude Code starts), or with --http as a multi-user service',
  args: [],
  options: {
    http: { type: 'boolean', description: 'serve Streamable HTTP at /mcp for many users (bearer tokens: agent-dispatch token create)' },
    listen: { type: 'string', value: 'ADDR:PORT', description: `with --http: the TCP address (default: ${DEFAULT_HOST}:${DEFAULT_PORT}; beyond loopback only with TLS)` },
    socket: { type: 'string', value: 'PATH', description: 'with --http: a Unix socket instead (created mode 0660: its group may connect)' },
    'tls-cert': { type: 'string', value: 'FILE', description: 'with --http: PEM certificate (HTTPS)' },
    'tls-key': { type: 'string', value: 'FILE', description: 'with --http: PEM private key (HTTPS)' },
    'allowed-host': { type: 'string', multiple: true, value: 'NAME[:PORT]', description: 'with --http: another name clients reach the service by (Host/Origin check)' },
  },
  notes: [
    'Over HTTP every request needs Authorization: Bearer <token>; each user sees only the agents granted to them',
    '(agents.<name>.users, groups.<name>.users; settings.admins see all and may change agents) and only their own jobs.',
  ],
};

export async function serveCommand(argv: string[]): Promise<number> {
  const p = parse(serveSpec, argv);
  if (p.values['http'] === true) return serveHttp(p);
  const stray = HTTP_OPTIONS.find((name) => p.values[name] !== undefined);
  if (stray) throw new UsageError(`--${stray} needs --http (without it, serve speaks MCP on stdio).`);
  const { server, context } = createServer();
  await server.connect(new StdioServerTransport());
  void context.dispatcher.startup();
  const signal = await new Promise<NodeJS.Signals | undefined>((resolve) => {
    server.server.onclose = () => resolve(undefined);
    process.stdin.once('end', () => resolve(undefined));
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const code = signal ? 128 + (signal === 'SIGTERM' ? 15 : 2) : 0;
  // A hung engine must not keep a stopped server alive: removals are bounded (15 s); this bounds the rest.
  setTimeout(() => process.exit(code), SHUTDOWN_MS).unref();
  await context.dispatcher.shutdown();
  await server.close();
  // Containers are gone; a dispatch still unwinding (e.g. a Docker call in flight) must not keep us alive.
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}

/** `serve --http`: runs until SIGTERM/SIGINT, then removes every container it started, bounded like stdio. */
async function serveHttp(p: Parsed): Promise<number> {
  const socket = str(p, 'socket');
  const listenAt = str(p, 'listen');
  if (socket !== undefined && listenAt !== undefined) throw new UsageError('--listen and --socket exclude each other: pick one.');
  const target: ListenTarget = socket !== undefined ? { kind: 'socket', path: socket } : parseListen(listenAt ?? `${DEFAULT_HOST}:${DEFAULT_PORT}`);
  const service = await startHttpService({ listen: target, tls: tlsFiles(p), allowedHosts: list(p, 'allowed-host') });
  const where = target.kind === 'socket' ? `${service.url} over the Unix socket ${target.path}` : service.url;
  err(`agent-dispatch: serving MCP over HTTP at ${where} (tokens: ${tokensPath()}, ${new TokenStore(tokensPath()).list().length} active)`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const code = 128 + (signal === 'SIGTERM' ? 15 : 2);
  setTimeout(() => process.exit(code), SHUTDOWN_MS).unref();
  await service.close();
  setTimeout(() => process.exit(code), 2000).unref();
  return code;
}

function tlsFiles(p: Parsed): { cert: Buffer; key: Buffer } | undefined {
  const cert = str(p, 'tls-cert');
  const key = str(p, 'tls-key');
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) throw new UsageError('--tls-cert and --tls-key go together: pass both.');
  const read = (flag: string, path: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      return fail(`${flag} ${path}: ${describeError(error)}`);
    }
  };
  return { cert: read('--tls-cert', cert), key: read('--tls-key', key) };
}
