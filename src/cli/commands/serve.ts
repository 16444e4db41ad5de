import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createServer } from '../../mcp/server.js';
import { parse } from '../args.js';

export async function serveCommand(argv: string[]): Promise<number> {
  parse('serve', argv, {}, { min: 0, max: 0, names: '' });
  const { server } = createServer();
  await server.connect(new StdioServerTransport());
  await new Promise<void>((resolve) => {
    server.server.onclose = () => resolve();
    process.stdin.once('end', () => resolve());
  });
  await server.close();
  return 0;
}
