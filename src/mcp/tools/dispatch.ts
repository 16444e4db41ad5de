import { z } from 'zod';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { DEFAULT_SUMMARY_CHARS } from '../../dispatch/refs.js';
import { boundedString } from '../../limits.js';
import { guarded, jsonResult } from '../envelope.js';
import type { ServerContext } from '../context.js';
import { withProgress, type Extra } from '../progress.js';
import { dispatchFields, type DispatchFields } from './dispatch-fields.js';

export function registerDispatchTools(server: McpServer, ctx: ServerContext): void {
  const input = (args: DispatchFields, extra: Extra) => ({ ...args, signal: extra.signal, by: ctx.caller });

  server.registerTool(
    'dispatch',
    {
      description:
        "Send a task to an agent: Claude Code runs in the agent's project directory, inside a fresh sandboxed container governed by the agent's policy, and its answer comes back. Clean successes are cached. return_ref=true stores the full result and returns a ref plus a summary (fetch_result reads it). group folds the group's shared context in.",
      inputSchema: {
        ...dispatchFields,
        return_ref: z.boolean().default(false).describe('Return a ref + summary instead of the whole result'),
        summary_chars: z.number().default(DEFAULT_SUMMARY_CHARS).describe('Summary length with return_ref, clamped to 0..100000'),
        group: boundedString('name', 'group').default('').describe("Dispatch as a member of this group (adds the group's shared context)"),
      },
    },
    (args, extra) =>
      guarded('dispatch', () => withProgress(extra, async (progress) => jsonResult(await ctx.dispatcher.dispatch(input(args, extra), undefined, (m) => progress.phase(m))))),
  );

  server.registerTool(
    'dispatch_session',
    {
      description:
        "Like dispatch, but a conversation: pass the session_id from an earlier result to continue it (the agent sees the earlier turns); empty starts a new one. Never cached. This is also how a timed-out dispatch resumes: dispatch_session(agent, task='Continue where you left off', session_id=<the timed-out result's session_id>).",
      inputSchema: { ...dispatchFields, session_id: boundedString('session_id', 'session_id').default('').describe('Session to resume; empty = new session') },
    },
    (args, extra) =>
      guarded('dispatch_session', () =>
        withProgress(extra, async (progress) => {
          const mode = args.session_id ? `resuming ${args.session_id.slice(0, 12)}...` : 'new session';
          progress.phase(`Dispatching to ${args.agent} (${mode}): ${args.task.slice(0, 80)}...`);
          return jsonResult(await ctx.dispatcher.session(input(args, extra)));
        }),
      ),
  );

  server.registerTool(
    'dispatch_stream',
    {
      description:
        'Like dispatch, with live progress: each assistant message and tool use is sent as an MCP progress notification (when the call carries a progress token) and as a log message. Never cached. A result that arrives before the timeout is kept even if the container had to be killed.',
      inputSchema: dispatchFields,
    },
    (args, extra) =>
      guarded('dispatch_stream', () =>
        withProgress(extra, async (progress) => {
          progress.phase(`Streaming dispatch to ${args.agent}: ${args.task.slice(0, 80)}...`);
          return jsonResult(await ctx.dispatcher.stream(input(args, extra), (event) => progress.phase(`[${args.agent}] ${event.message}`)));
        }),
      ),
  );

  server.registerTool(
    'fetch_result',
    {
      description:
        'Read a result stored by dispatch(return_ref=true) or an async job. max_chars > 0 cuts the result text (truncated, full_size tell); 0 or less returns it whole.',
      inputSchema: { ref: boundedString('job_id', 'ref').describe('The 32-hex ref'), max_chars: z.number().default(0).describe('0 = the whole result') },
    },
    (args) => guarded('fetch_result', () => jsonResult(ctx.dispatcher.fetch(args.ref, args.max_chars, ctx.caller))),
  );
}
