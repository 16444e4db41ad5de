import { z } from 'zod';
import type { DispatchInput } from '../../dispatch/core.js';
import { boundedString } from '../../limits.js';

/** The parameters every dispatch tool shares, as the original named them ('' means "not set"). */
export const dispatchFields = {
  agent: boundedString('name', 'agent').describe('Agent name (list_agents shows them)'),
  task: boundedString('task', 'task').describe('What the agent should do; self-contained'),
  context: boundedString('context', 'context').default('').describe('Background the agent needs (error text, file paths, constraints)'),
  caller: boundedString('caller', 'caller').default('').describe('Who is asking (shown to the agent)'),
  goal: boundedString('goal', 'goal').default('').describe('The larger goal this task serves (shown to the agent)'),
  response_format: boundedString('response_format', 'response_format').default('').describe('"json": ask for a single JSON value and return it parsed as parsed_result'),
  timeout_seconds: z.number().default(0).describe('One-off timeout, clamped to 10..7200 s and to the policy cap; 0 or less = the agent default'),
};

/** The parsed arguments: every field present ('' or 0 when not set). */
export type DispatchFields = Required<Omit<DispatchInput, 'signal' | 'by'>>;
