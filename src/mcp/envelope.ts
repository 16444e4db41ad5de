import type { CallToolResult, ServerNotification } from '@modelcontextprotocol/sdk/types.js';
import { isAppError, describeError, type ErrorCode } from '../errors.js';
import { logger } from '../log.js';

const log = logger('mcp');

/** Tool results are JSON text (what the original's clients parse); JSON.stringify keeps non-ASCII raw. */
export function jsonResult(payload: unknown): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(payload, null, 2) }] };
}

export interface ErrorEnvelope {
  error: string;
  hint?: string;
}

const HINTS: Partial<Record<ErrorCode, string>> = {
  CONFIG_INVALID: "Fix the file (or restore a backup), then retry. 'agent-dispatch doctor' points at the offending section.",
  CONFIG_UNREADABLE: "Check the file's permissions, then retry. 'agent-dispatch doctor' shows what is wrong.",
  CONFIG_WRITE_FAILED: 'Nothing was changed — the previous config is intact (the write is atomic). Check free space and permissions.',
};

/** The documented failure shape: `{"error": ..., "hint"?: ...}`, flagged isError so clients see a failed call. */
export function errorResult(envelope: ErrorEnvelope): CallToolResult {
  return { ...jsonResult(envelope), isError: true };
}

/** Every tool handler runs through this: a thrown error becomes the envelope, never a raw exception. */
export async function guarded(tool: string, run: () => Promise<CallToolResult> | CallToolResult): Promise<CallToolResult> {
  try {
    return await run();
  } catch (error) {
    if (isAppError(error)) {
      const message = error.code === 'CONFIG_WRITE_FAILED' ? `${tool} ${error.message}` : error.message;
      const hint = error.hint ?? HINTS[error.code];
      return errorResult(hint ? { error: message, hint } : { error: message });
    }
    log.error(`${tool} failed unexpectedly`, { error: describeError(error), stack: (error as Error)?.stack });
    return errorResult({
      error: `${tool} failed unexpectedly: ${describeError(error)}`,
      hint: 'This is a bug in agent-dispatch; the server log (stderr) has the details. Please report it.',
    });
  }
}

/** A log message to the client (what the original sent through ctx.info); a client that ignores them is fine. */
export async function notify(extra: { sendNotification: (n: ServerNotification) => Promise<void> }, message: string): Promise<void> {
  try {
    await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', logger: 'agent-dispatch', data: message } });
  } catch (error) {
    log.debug('could not send a log message to the client', { error: describeError(error) });
  }
}
