import { z } from 'zod';

/** The parameters every dispatch tool shares, as the original named them ('' means "not set"). */
export const dispatchFields = {
  agent: z.string().describe('Agent name (list_agents shows them)'),
  task: z.string().describe('What the agent should do; self-contained'),
  context: z.string().default('').describe('Background the agent needs (error text, file paths, constraints)'),
  caller: z.string().default('').describe('Who is asking (shown to the agent)'),
  goal: z.string().default('').describe('The larger goal this task serves (shown to the agent)'),
  response_format: z.string().default('').describe('"json": ask for a single JSON value and return it parsed as parsed_result'),
  timeout_seconds: z.number().default(0).describe('One-off timeout, clamped to 10..7200 s and to the policy cap; 0 or less = the agent default'),
};

export interface DispatchFields {
  agent: string;
  task: string;
  context: string;
  caller: string;
  goal: string;
  response_format: string;
  timeout_seconds: number;
}
