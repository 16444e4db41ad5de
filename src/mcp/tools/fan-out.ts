import { z } from 'zod';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { boundedString } from '../../limits.js';
import { guarded, jsonResult } from '../envelope.js';
import type { ServerContext } from '../context.js';
import { withProgress } from '../progress.js';

/** The tools that run several dispatches for one call: parallel fan-out (with aggregation) and dialogue. */
export function registerFanOutTools(server: McpServer, ctx: ServerContext): void {
  server.registerTool(
    'dispatch_parallel',
    {
      description:
        'Run several dispatches at once (each in its own container, at most settings.max_concurrency at a time). dispatches is a JSON string of an array of {agent, task, context?, caller?, goal?, response_format?, return_ref?, summary_chars?, timeout_seconds?, group?}; every item is validated before any starts. Results come back in input order. aggregate="<agent>" then has that agent synthesise them: {individual_results, aggregated}.',
      inputSchema: {
        dispatches: boundedString('dispatches_json', 'dispatches').describe('JSON array of dispatch objects, e.g. [{"agent": "api", "task": "..."}]'),
        aggregate: boundedString('name', 'aggregate').default('').describe('Agent that synthesises all results (optional)'),
      },
    },
    (args, extra) =>
      guarded('dispatch_parallel', () =>
        withProgress(extra, async (progress) => jsonResult(await ctx.dispatcher.parallel(args.dispatches, args.aggregate, { by: ctx.caller, signal: extra.signal, onPhase: (m) => progress.phase(m) }))),
      ),
  );

  server.registerTool(
    'dispatch_dialogue',
    {
      description:
        "Let two agents talk it through: the responder opens on the topic, then requester and responder alternate (each continuing its own session) until one ends its answer with [RESOLVED], a turn fails, or max_rounds (1..10) are used. Returns {resolved, rounds, total_cost_usd, total_duration_ms, final_answer, conversation}.",
      inputSchema: {
        requester: boundedString('name', 'requester').describe('The agent that asks'),
        responder: boundedString('name', 'responder').describe('The agent that answers first'),
        topic: boundedString('topic', 'topic').describe('What the two agents should work out'),
        max_rounds: z.number().default(3).describe('Rounds of (responder, requester) turns, clamped to 1..10'),
      },
    },
    (args, extra) =>
      guarded('dispatch_dialogue', () =>
        withProgress(extra, async (progress) =>
          jsonResult(await ctx.dispatcher.dialogue({ ...args, by: ctx.caller, signal: extra.signal, onPhase: (m) => progress.phase(m) })),
        ),
      ),
  );
}
