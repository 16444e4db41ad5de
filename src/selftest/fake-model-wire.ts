/**
 * The Anthropic Messages API wire format for one assistant turn: a JSON message, or the SSE event
 * sequence (message_start, ping, content_block_start/delta/stop, message_delta, message_stop).
 */
import { randomBytes } from 'node:crypto';
import type { Step } from './fake-model-script.js';

export interface Usage {
  input_tokens: number;
  output_tokens: number;
}

type ContentBlock =
  | { type: 'text'; text: string }
  | { type: 'tool_use'; id: string; name: 'Bash'; input: { command: string; description: string } };

export interface AssistantMessage {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: ContentBlock[];
  stop_reason: 'end_turn' | 'tool_use';
  stop_sequence: null;
  usage: Usage & { cache_creation_input_tokens: number; cache_read_input_tokens: number };
}

export const STEP_DESCRIPTION = 'scripted step';

function id(prefix: string): string {
  return `${prefix}${randomBytes(12).toString('hex')}`;
}

/** About four characters a token, never zero: enough for claude to report a small nonzero cost. */
export function tokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

export function assistantMessage(step: Step, model: string, inputTokens: number): AssistantMessage {
  const content: ContentBlock[] =
    step.kind === 'tool_use'
      ? [
          {
            type: 'tool_use',
            id: id(`toolu_fake${step.step}_`),
            name: 'Bash',
            input: { command: step.command, description: STEP_DESCRIPTION },
          },
        ]
      : [{ type: 'text', text: step.text }];
  return {
    id: id('msg_fake_'),
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: step.kind === 'tool_use' ? 'tool_use' : 'end_turn',
    stop_sequence: null,
    usage: {
      input_tokens: inputTokens,
      output_tokens: tokens(JSON.stringify(content)),
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    },
  };
}

function chunks(text: string, parts: number): string[] {
  if (text.length === 0) return [''];
  const size = Math.max(1, Math.ceil(text.length / parts));
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function event(type: string, data: Record<string, unknown>): string {
  return `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
}

/** The whole SSE body for a message, as the streaming API would send it. */
export function sseEvents(message: AssistantMessage): string {
  const out: string[] = [
    event('message_start', {
      message: { ...message, content: [], stop_reason: null, usage: { ...message.usage, output_tokens: 1 } },
    }),
    event('ping', {}),
  ];
  message.content.forEach((block, index) => {
    if (block.type === 'text') {
      out.push(event('content_block_start', { index, content_block: { type: 'text', text: '' } }));
      for (const text of chunks(block.text, 3)) {
        out.push(event('content_block_delta', { index, delta: { type: 'text_delta', text } }));
      }
    } else {
      out.push(event('content_block_start', { index, content_block: { ...block, input: {} } }));
      for (const partial_json of chunks(JSON.stringify(block.input), 2)) {
        out.push(event('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json } }));
      }
    }
    out.push(event('content_block_stop', { index }));
  });
  out.push(
    event('message_delta', {
      delta: { stop_reason: message.stop_reason, stop_sequence: null },
      usage: { output_tokens: message.usage.output_tokens },
    }),
    event('message_stop', {}),
  );
  return out.join('');
}
