import { isRecord, own, parseJsonObject, truncate } from './text.js';

/** One progress line for a live dispatch: assistant text, or the name of a tool it is calling. */
export interface ProgressEvent {
  kind: 'text' | 'tool';
  message: string;
}

const MAX_TEXT_CHARS = 500;
const MAX_TOOL_NAME_CHARS = 100;
/** A single hostile line must not flood the progress tail. */
const MAX_EVENTS_PER_LINE = 50;

/**
 * Progress events from one stream-json stdout line; only `assistant` lines produce any. Total over hostile input:
 * a line that is not an object, or a `message`, `content` or block of the wrong type, yields nothing.
 */
export function progressFromLine(line: string): ProgressEvent[] {
  const data = parseJsonObject(line);
  if (!data || own(data, 'type') !== 'assistant') return [];
  const message = own(data, 'message');
  if (!isRecord(message)) return [];
  const content = own(message, 'content');
  if (!Array.isArray(content)) return [];
  const events: ProgressEvent[] = [];
  for (const block of content) {
    if (events.length >= MAX_EVENTS_PER_LINE) break;
    if (!isRecord(block)) continue;
    const type = own(block, 'type');
    if (type === 'text') {
      const text = own(block, 'text');
      if (typeof text === 'string' && text.trim()) events.push({ kind: 'text', message: truncate(text, MAX_TEXT_CHARS) });
    } else if (type === 'tool_use') {
      const name = own(block, 'name');
      const shown = typeof name === 'string' && name ? truncate(name, MAX_TOOL_NAME_CHARS) : '?';
      events.push({ kind: 'tool', message: `Using tool: ${shown}` });
    }
  }
  return events;
}
