import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { notify } from './envelope.js';

export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** Below Claude Code's tool idle timeout with room to spare: a long call is never silent for longer. */
export const KEEPALIVE_MS = 25_000;

export interface ProgressChannel {
  /** A new phase: sent at once (progress notification when the caller gave a token, and a log message). */
  phase(message: string): void;
  /** Stop the keep-alive and wait until every notification went out, in order. */
  done(): Promise<void>;
}

/**
 * Progress for a long tool call: every phase change is sent at once, and the current phase is repeated at
 * least every 25 s while the call runs, so a client that resets its idle timer on progress never times out a
 * call that is still working. Notifications/progress only go to a caller that sent a progress token.
 */
export function progressChannel(extra: Extra, options: { keepaliveMs?: number } = {}): ProgressChannel {
  const token = extra._meta?.progressToken;
  let count = 0;
  let current = '';
  let chain: Promise<void> = Promise.resolve();
  const send = (message: string, log: boolean): void => {
    count += 1;
    const progress = count;
    chain = chain.then(async () => {
      if (token !== undefined) {
        await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress, message } }).catch(() => undefined);
      }
      if (log) await notify(extra, message);
    });
  };
  const timer = setInterval(() => {
    if (current) send(`${current} (still working)`, false);
  }, options.keepaliveMs ?? KEEPALIVE_MS);
  timer.unref();
  return {
    phase(message) {
      current = message.slice(0, 300);
      send(current, true);
    },
    async done() {
      clearInterval(timer);
      await chain;
    },
  };
}

/** Run `work` with a progress channel that is always closed, also when `work` throws. */
export async function withProgress<T>(extra: Extra, work: (channel: ProgressChannel) => Promise<T>): Promise<T> {
  const channel = progressChannel(extra);
  try {
    return await work(channel);
  } finally {
    await channel.done();
  }
}
