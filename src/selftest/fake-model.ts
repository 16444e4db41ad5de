/**
 * A scripted local model: a fake of the Anthropic Messages API that the real `claude` binary can be
 * driven with, with no credential and no internet (`ANTHROPIC_BASE_URL=<url>`).
 *
 * The script is written in the prompt (see DIRECTIVE and fake-model-script.ts), so the fake keeps
 * no conversation state and serves any number of concurrent conversations.
 *
 * What claude 2.1.197 sends in `-p` mode (logged against this fake, HOME and config dir fresh):
 * - `HEAD /`: a connectivity probe to the base URL, before the first message.
 * - `POST /v1/messages?beta=true`, streaming, carrying ~25 tools: the main loop, one per turn.
 * - Unless CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1: also `POST /v1/messages?beta=true`, same
 *   model, streaming, `tools: []`, a "Generate a concise, sentence-case title" system prompt, the
 *   user's prompt wrapped in `<session>…</session>` (so its directives appear in it too), and
 *   `output_config.format` a json_schema asking for `{"title": string}`.
 * - Messages may hold `role: "system"` entries and `<system-reminder>` text blocks in user messages.
 * Hence the rule: directives apply only when the request carries tools. A request without tools
 * is a side request and gets a short answer (JSON matching its schema when one is asked for); it
 * never emits or consumes a scripted tool_use step.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { nextTurn, sideAnswer } from './fake-model-script.js';
import { assistantMessage, sseEvents, tokens } from './fake-model-wire.js';

export { DIRECTIVE } from './fake-model-script.js';

export interface FakeModelRequest {
  method: string;
  path: string;
  /** credential headers as received */
  apiKey?: string;
  authorization?: string;
  model?: string;
  stream?: boolean;
  /** true when the request carried tools (a main-loop turn) */
  hasTools: boolean;
  at: number;
}

export interface FakeModel {
  /** http://host:port */
  url: string;
  port: number;
  requests: FakeModelRequest[];
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;
const LOG_PATH = '/_fake/requests';

interface MessagesBody {
  model?: unknown;
  stream?: unknown;
  tools?: unknown;
  messages?: unknown;
  output_config?: unknown;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function apiError(res: ServerResponse, status: number, type: string, message: string): void {
  sendJson(res, status, { type: 'error', error: { type, message } });
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) parts.push(chunk);
    });
    req.on('end', () => resolve(size <= MAX_BODY_BYTES ? Buffer.concat(parts).toString('utf8') : undefined));
    req.on('error', () => resolve(undefined));
  });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

export interface FakeModelOptions {
  host?: string;
  port?: number;
  /**
   * Serve the request log (credential headers included) at `GET /_fake/requests`. Off by default: the fake
   * listens on the bridge address, where anything that can reach it (a dispatched agent, another container)
   * could read the headers. In-process callers read `requests` instead.
   */
  exposeLog?: boolean;
}

export function startFakeModel(options: FakeModelOptions = {}): Promise<FakeModel> {
  const host = options.host ?? '127.0.0.1';
  const requests: FakeModelRequest[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();

  function log(req: IncomingMessage, path: string, extra: Partial<FakeModelRequest> = {}): void {
    const entry: FakeModelRequest = { method: req.method ?? '', path, hasTools: false, at: Date.now(), ...extra };
    const apiKey = header(req, 'x-api-key');
    const authorization = header(req, 'authorization');
    if (apiKey !== undefined) entry.apiKey = apiKey;
    if (authorization !== undefined) entry.authorization = authorization;
    requests.push(entry);
  }

  /** Answers after `ms`, unless the client went away or close() came first. */
  function later(res: ServerResponse, ms: number, answer: () => void): void {
    if (ms <= 0) return answer();
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (!res.destroyed) answer();
    }, ms);
    timers.add(timer);
    res.on('close', () => {
      clearTimeout(timer);
      timers.delete(timer);
    });
  }

  async function messages(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const text = await readBody(req);
    let body: MessagesBody | undefined;
    try {
      const parsed: unknown = text === undefined ? undefined : JSON.parse(text);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed as MessagesBody;
    } catch {
      body = undefined;
    }
    const hasTools = Array.isArray(body?.tools) && body.tools.length > 0;
    const model = typeof body?.model === 'string' ? body.model : undefined;
    const stream = body?.stream === true;
    log(req, path, { hasTools, ...(model !== undefined && { model }), ...(body && { stream }) });
    if (!body) return apiError(res, 400, 'invalid_request_error', 'request body is not a JSON object');

    const inputTokens = tokens(JSON.stringify(body.messages ?? []));
    if (path === '/v1/messages/count_tokens') return sendJson(res, 200, { input_tokens: inputTokens });

    const turn = hasTools
      ? nextTurn(body.messages)
      : { step: { kind: 'text' as const, text: sideAnswer(body.output_config) }, sleepMs: 0 };
    const message = assistantMessage(turn.step, model ?? 'claude-fake-model', inputTokens);
    const requestId = `req_fake_${randomBytes(8).toString('hex')}`;
    later(res, turn.sleepMs, () => {
      if (!stream) {
        res.setHeader('request-id', requestId);
        return sendJson(res, 200, message);
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': requestId });
      res.end(sseEvents(message));
    });
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? '';
    const path = new URL(req.url ?? '/', 'http://fake').pathname;
    if (options.exposeLog === true && method === 'GET' && path === LOG_PATH) return sendJson(res, 200, requests);
    if (method === 'POST' && (path === '/v1/messages' || path === '/v1/messages/count_tokens')) {
      void messages(req, res, path);
      return;
    }
    log(req, path);
    req.resume();
    if ((method === 'HEAD' && path === '/') || ((method === 'HEAD' || method === 'GET') && path === '/api/hello')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(method === 'GET' ? JSON.stringify({ message: 'hello' }) : undefined);
      return;
    }
    apiError(res, 404, 'not_found_error', `fake model: no route for ${method} ${path}`);
  }

  const server = createServer(handle);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      const urlHost = host.includes(':') ? `[${host}]` : host;
      let closing: Promise<void> | undefined;
      resolve({
        url: `http://${urlHost}:${port}`,
        port,
        requests,
        close: () => {
          closing ??= new Promise<void>((done) => {
            for (const timer of timers) clearTimeout(timer);
            timers.clear();
            server.close(() => done());
            for (const socket of sockets) socket.destroy();
          });
          return closing;
        },
      });
    });
  });
}
