import { z } from 'zod';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { requireAgent } from '../../core/agents.js';
import { agentFingerprint, DEFAULT_SUMMARY_CHARS, fetchedResult, mergeGroupContext, refPayload, requireGroupMember } from '../../core/dispatching.js';
import type { DispatchRequest } from '../../dispatch/dispatcher.js';
import { requireJobId } from '../../dispatch/job-store.js';
import type { ProgressEvent } from '../../dispatch/stream-events.js';
import type { DispatchResult } from '../../dispatch/types.js';
import { errorResult, guarded, jsonResult, notify } from '../envelope.js';
import type { ServerContext } from '../context.js';

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

const common = {
  agent: z.string().describe('Agent name (list_agents shows them)'),
  task: z.string().describe('What the agent should do; self-contained'),
  context: z.string().default('').describe('Background the agent needs (error text, file paths, constraints)'),
  caller: z.string().default('').describe('Who is asking (shown to the agent)'),
  goal: z.string().default('').describe('The larger goal this task serves (shown to the agent)'),
  response_format: z.string().default('').describe('"json": ask for a single JSON value and return it parsed as parsed_result'),
  timeout_seconds: z.number().int().min(0).default(0).describe('One-off timeout, clamped to 10..7200 s and to the policy cap; 0 = the agent default'),
};

function request(args: { agent: string; task: string; context: string; caller: string; goal: string; response_format: string; timeout_seconds: number }, extra: Extra): DispatchRequest {
  return {
    agent: args.agent,
    task: args.task,
    context: args.context,
    caller: args.caller,
    goal: args.goal,
    responseFormat: args.response_format,
    timeoutSeconds: args.timeout_seconds,
    signal: extra.signal,
  };
}

export function registerDispatchTools(server: McpServer, ctx: ServerContext): void {
  server.registerTool(
    'dispatch',
    {
      description:
        "Send a task to an agent: Claude Code runs in the agent's project directory, inside a fresh sandboxed container governed by the agent's policy, and its answer comes back. Clean successes are cached. return_ref=true stores the full result and returns a ref plus a summary (fetch_result reads it). group folds the group's shared context in.",
      inputSchema: {
        ...common,
        return_ref: z.boolean().default(false).describe('Return a ref + summary instead of the whole result'),
        summary_chars: z.number().int().min(0).default(DEFAULT_SUMMARY_CHARS).describe('Summary length with return_ref (0..100000)'),
        group: z.string().default('').describe("Dispatch as a member of this group (adds the group's shared context)"),
      },
    },
    (args, extra) =>
      guarded('dispatch', async () => {
        const config = ctx.config();
        const agent = requireAgent(config, args.agent);
        if (args.group) requireGroupMember(config, args.group, args.agent);
        const context = mergeGroupContext(config, args.group, args.context);
        const cache = ctx.cacheFor(config);
        const key = { agent: args.agent, task: args.task, context, caller: args.caller, goal: args.goal, response_format: args.response_format, fingerprint: agentFingerprint(agent, config.settings, ctx.configDir()) };
        const reply = (result: DispatchResult, cached: boolean) => {
          const body = args.return_ref
            ? refPayload(ctx.jobs().createCompleted({ agent: args.agent, task: args.task, context, caller: args.caller, goal: args.goal, result }).id, result, args.summary_chars)
            : { ...result };
          return jsonResult(cached ? { ...body, cached: true } : body);
        };
        const hit = cache?.get(key) as DispatchResult | undefined;
        if (hit) {
          await notify(extra, `Cache hit for ${args.agent} — returning cached result`);
          return reply(hit, true);
        }
        await notify(extra, `Dispatching to ${args.agent}: ${args.task.slice(0, 80)}...`);
        const result = await ctx.dispatcher.dispatch(config, { ...request(args, extra), context });
        cache?.put(key, { ...result });
        return reply(result, false);
      }),
  );

  server.registerTool(
    'dispatch_session',
    {
      description:
        "Like dispatch, but a conversation: pass the session_id from an earlier result to continue it (the agent sees the earlier turns); empty starts a new one. Never cached. This is also how a timed-out dispatch resumes: dispatch_session(agent, task='Continue where you left off', session_id=<the timed-out result's session_id>).",
      inputSchema: { ...common, session_id: z.string().default('').describe('Session to resume; empty = new session') },
    },
    (args, extra) =>
      guarded('dispatch_session', async () => {
        const config = ctx.config();
        requireAgent(config, args.agent);
        const mode = args.session_id ? `resuming ${args.session_id.slice(0, 12)}...` : 'new session';
        await notify(extra, `Dispatching to ${args.agent} (${mode}): ${args.task.slice(0, 80)}...`);
        const result = await ctx.dispatcher.dispatch(config, { ...request(args, extra), sessionId: args.session_id || undefined });
        return jsonResult(result);
      }),
  );

  server.registerTool(
    'dispatch_stream',
    {
      description:
        "Like dispatch, with live progress: each assistant message and tool use is sent as an MCP progress notification (when the call carries a progress token) and as a log message. Never cached. A result that arrives before the timeout is kept even if the container had to be killed.",
      inputSchema: common,
    },
    (args, extra) =>
      guarded('dispatch_stream', async () => {
        const config = ctx.config();
        requireAgent(config, args.agent);
        const progress = progressSender(args.agent, extra);
        await notify(extra, `Streaming dispatch to ${args.agent}: ${args.task.slice(0, 80)}...`);
        const result = await ctx.dispatcher.dispatch(config, { ...request(args, extra), onProgress: progress.send });
        await progress.drained();
        return jsonResult(result);
      }),
  );

  server.registerTool(
    'fetch_result',
    {
      description: 'Read a result stored by dispatch(return_ref=true). max_chars > 0 cuts the result text (truncated, full_size tell).',
      inputSchema: { ref: z.string().describe('The 32-hex ref'), max_chars: z.number().int().min(0).default(0).describe('0 = the whole result') },
    },
    (args) =>
      guarded('fetch_result', () => {
        const ref = requireJobId(args.ref);
        const job = ctx.jobs().get(ref);
        if (!job) return errorResult({ error: `Ref not found: ${ref}`, hint: 'Refs come from dispatch(return_ref=true) on this machine; a ref is kept until its job file is deleted.' });
        return jsonResult(job.result ? fetchedResult(job.result, args.max_chars) : job);
      }),
  );
}

/** Forwards progress in order; notifications/progress only when the client asked for it with a token. */
function progressSender(agent: string, extra: Extra): { send: (event: ProgressEvent) => void; drained: () => Promise<void> } {
  const token = extra._meta?.progressToken;
  let count = 0;
  let chain: Promise<void> = Promise.resolve();
  return {
    send(event) {
      count += 1;
      const progress = count;
      const message = `[${agent}] ${event.message.slice(0, 300)}`;
      chain = chain.then(async () => {
        if (token !== undefined) {
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken: token, progress, message } }).catch(() => undefined);
        }
        await notify(extra, message);
      });
    },
    drained: () => chain,
  };
}
