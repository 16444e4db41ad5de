import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createServer } from '../../mcp/server.js';
import { parse } from '../args.js';
import type { CommandSpec } from '../spec.js';

/**
 * The stdio MCP server. At start it reaps dispatch containers left by a server that died; when the client
 * goes away or a SIGTERM/SIGINT arrives, every container still running is killed and removed before exit.
 */
/** Upper bound on a stop: container removals (each bounded at 15 s, run in parallel) and closing the transport. */
const SHUTDOWN_MS = 20_000;

export const serveSpec: CommandSpec = { name: 'serve', summary: 'Run the MCP server on stdio (what Claude Code starts)', args: [], options: {} };

export async function serveCommand(argv: string[]): Promise<number> {
  parse(serveSpec, argv);
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
