/** The dispatched agent's prompt (original §4.2). It is written to claude's stdin, never into argv. */
export interface PromptInput {
  task: string;
  context?: string;
  caller?: string;
  goal?: string;
  responseFormat?: string;
}

export const JSON_RESPONSE_FOOTER =
  '\n\n## Response format\n' +
  'Respond with a single valid JSON value (object, array, or scalar) and nothing else. ' +
  'Do not wrap the JSON in markdown code fences. Do not add any explanatory text before or after. ' +
  'If you cannot satisfy this, respond with {"error": "<reason>"}.';

/**
 * Without caller or goal the prompt is the bare task (or the simple Context/Task form), byte-identical to the
 * original's; with either, a sectioned prompt tells the agent who asked and why. Empty strings mean "not set".
 */
export function buildPrompt(input: PromptInput): string {
  const { task, context, caller, goal } = input;
  let prompt: string;
  if (!caller && !goal) {
    prompt = context ? `Context:\n${context}\n\nTask:\n${task}` : task;
  } else {
    const parts: string[] = [];
    if (goal) parts.push(`## Goal\n${goal}`);
    if (caller) parts.push(`## Dispatched by\n${caller}`);
    if (context) parts.push(`## Context\n${context}`);
    parts.push(`## Task\n${task}`);
    prompt = parts.join('\n\n');
  }
  return input.responseFormat === 'json' ? prompt + JSON_RESPONSE_FOOTER : prompt;
}
