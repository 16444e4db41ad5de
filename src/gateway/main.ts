/**
 * The gateway container's entry point (`node main.js`): JSON lines in on stdin, JSON lines out on stdout
 * (protocol.ts). Diagnostics go to stderr; the credential goes nowhere but the upstream request headers.
 */
import { createInterface } from 'node:readline';
import { inParts } from './decisions.js';
import { parseCommand, parseConfig } from './messages.js';
import type { GatewayCommand, GatewayEvent } from './protocol.js';
import { createGatewayProxy, type GatewayProxy } from './proxy.js';

function emit(event: GatewayEvent): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

let exiting = false;

function exit(code: number): void {
  if (exiting) return;
  exiting = true;
  // Let the last event reach the pipe before the process goes (and never wait long for it).
  setTimeout(() => process.exit(code), 2_000).unref();
  process.stdout.write('', () => process.exit(code));
}

function fatal(message: string, code: number): void {
  emit({ event: 'fatal', message });
  exit(code);
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

async function handle(proxy: GatewayProxy, command: GatewayCommand): Promise<GatewayEvent> {
  switch (command.op) {
    case 'ping':
      return { event: 'pong', id: command.id };
    case 'register':
      proxy.register(command.token, command.allow);
      return { event: 'registered', id: command.id };
    case 'release': {
      // In parts, so that no stdout line is large however many decisions the dispatch made.
      const parts = inParts(await proxy.release(command.token));
      for (const part of parts.slice(0, -1)) emit({ event: 'decisions', id: command.id, decisions: part });
      return { event: 'released', id: command.id, decisions: parts.at(-1)! };
    }
    case 'canary': {
      const { ok, detail } = await proxy.canary();
      return { event: 'canary', id: command.id, ok, detail };
    }
  }
}

function main(): void {
  process.on('uncaughtException', (err) => fatal(`uncaught exception: ${messageOf(err)}`, 1));
  process.on('unhandledRejection', (err) => fatal(`unhandled rejection: ${messageOf(err)}`, 1));
  process.on('SIGTERM', () => exit(0));

  let proxy: GatewayProxy | undefined;
  let starting: Promise<void> | undefined;
  const pending = new Set<Promise<void>>();
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  lines.on('line', (line) => {
    if (exiting) return;
    if (!starting) {
      const config = parseConfig(line);
      if (!config.ok) return fatal(config.message, 2);
      const p = createGatewayProxy(config.value);
      proxy = p;
      starting = p.listen().then(
        () => emit({ event: 'ready', protocol: config.value.protocol, socketPath: config.value.socketPath }),
        (err: unknown) => fatal(`cannot listen on ${config.value.socketPath}: ${messageOf(err)}`, 1),
      );
      return;
    }
    if (line.trim() === '') return;
    const parsed = parseCommand(line);
    if (!parsed.ok) return emit({ event: 'error', ...(parsed.id ? { id: parsed.id } : {}), message: parsed.message });
    const command = parsed.value;
    const done = starting
      .then(() => handle(proxy!, command))
      .then(emit, (err: unknown) => emit({ event: 'error', id: command.id, message: messageOf(err) }));
    pending.add(done);
    void done.finally(() => pending.delete(done));
  });
  lines.on('close', () => {
    // The server went away (or never sent a config): answer what was asked (canary and release are bounded
    // by 5 s each), then stop.
    void Promise.allSettled([starting, ...pending])
      .then(() => proxy?.close())
      .finally(() => exit(0));
  });
}

main();
