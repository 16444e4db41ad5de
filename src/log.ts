/**
 * stdout belongs to the MCP protocol and to `--json` output; every diagnostic goes to stderr.
 * AGENT_DISPATCH_LOG=debug turns on debug lines.
 */
type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

function threshold(): number {
  const wanted = (process.env['AGENT_DISPATCH_LOG'] ?? 'warn').toLowerCase() as Level;
  return ORDER[wanted] ?? ORDER.warn;
}

function write(level: Level, scope: string, message: string, fields?: Record<string, unknown>): void {
  if (ORDER[level] < threshold()) return;
  const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
  process.stderr.write(`${new Date().toISOString()} [${level}] ${scope}: ${message}${extra}\n`);
}

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export function logger(scope: string): Logger {
  return {
    debug: (m, f) => write('debug', scope, m, f),
    info: (m, f) => write('info', scope, m, f),
    warn: (m, f) => write('warn', scope, m, f),
    error: (m, f) => write('error', scope, m, f),
  };
}
