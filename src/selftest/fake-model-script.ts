/**
 * The script of the fake model: directives written in the user's prompt, and what the next
 * assistant turn must be given the conversation so far. Pure functions, no I/O; the conversation
 * itself is the only state, so concurrent conversations cannot disturb each other.
 */

export interface Directives {
  /** one Bash tool_use step each, in order */
  bash: string[];
  replies: string[];
  recall: boolean;
  /** delay before every main-loop answer for this prompt */
  sleepMs: number;
  /** raw JSON text; when set it is the whole final answer */
  json: string | undefined;
}

type Name = 'bash' | 'reply' | 'recall' | 'sleep' | 'json';

const OPEN = /\[\[\s*(bash|reply|recall|sleep|json)(64)?\s*(:|\]\])/g;
const MAX_SLEEP_MS = 2_147_483_647; // setTimeout's limit

/** End index of the value (the index of its closing `]]`), or -1 when the directive is not closed. */
function closeBalanced(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; ) {
    if (text.startsWith('[[', i)) {
      depth++;
      i += 2;
    } else if (text.startsWith(']]', i)) {
      if (--depth === 0) return i;
      i += 2;
    } else i++;
  }
  return -1;
}

/** JSON may end in `]]` itself: take the first `]]` before which the value parses. */
function closeJson(text: string, from: number): number {
  for (let i = text.indexOf(']]', from); i !== -1; i = text.indexOf(']]', i + 1)) {
    try {
      JSON.parse(text.slice(from, i));
      return i;
    } catch {
      // not yet a whole JSON value: try the next `]]`
    }
  }
  return closeBalanced(text, from);
}

function decode64(value: string): string {
  return Buffer.from(value, 'base64').toString('utf8');
}

export function parseDirectives(text: string): Directives {
  const out: Directives = { bash: [], replies: [], recall: false, sleepMs: 0, json: undefined };
  OPEN.lastIndex = 0;
  for (let m = OPEN.exec(text); m !== null; m = OPEN.exec(text)) {
    const name = m[1] as Name;
    const encoded = m[2] === '64';
    let value = '';
    if (m[3] === ':') {
      const start = OPEN.lastIndex;
      const end = name === 'json' && !encoded ? closeJson(text, start) : closeBalanced(text, start);
      if (end === -1) continue;
      value = text.slice(start, end).trim();
      if (encoded) value = decode64(value);
      OPEN.lastIndex = end + 2;
    }
    if (name === 'bash') out.bash.push(value);
    else if (name === 'reply') out.replies.push(value);
    else if (name === 'recall') out.recall = true;
    else if (name === 'json') out.json = value;
    else {
      const ms = Number.parseInt(value, 10);
      if (Number.isFinite(ms) && ms > 0) out.sleepMs = Math.min(MAX_SLEEP_MS, out.sleepMs + ms);
    }
  }
  return out;
}

function plainOr64(name: 'bash' | 'reply' | 'json', value: string, roundTrips: (d: Directives) => boolean): string {
  const plain = `[[${name}: ${value}]]`;
  if (roundTrips(parseDirectives(plain))) return plain;
  return `[[${name}64: ${Buffer.from(value, 'utf8').toString('base64')}]]`;
}

/**
 * Directive text to put in a prompt. A value the plain form cannot carry (an unbalanced `]]`,
 * surrounding whitespace) is written base64-encoded as `[[bash64: …]]` / `[[reply64: …]]`.
 */
export const DIRECTIVE = {
  bash: (cmd: string): string => plainOr64('bash', cmd, (d) => d.bash.length === 1 && d.bash[0] === cmd),
  reply: (text: string): string =>
    plainOr64('reply', text, (d) => d.replies.length === 1 && d.replies[0] === text),
  recall: (): string => '[[recall]]',
  sleep: (ms: number): string => `[[sleep: ${Math.max(0, Math.floor(ms))}]]`,
  json: (value: unknown): string => {
    const text = JSON.stringify(value) ?? 'null';
    return plainOr64('json', text, (d) => d.json === text);
  },
};

// ---------------------------------------------------------------------------------------------
// The conversation

interface Block {
  type?: unknown;
  text?: unknown;
  content?: unknown;
}

interface Message {
  role?: unknown;
  content?: unknown;
}

function blocks(message: Message): Block[] {
  if (typeof message.content === 'string') return [{ type: 'text', text: message.content }];
  return Array.isArray(message.content) ? (message.content as Block[]).filter((b) => b && typeof b === 'object') : [];
}

function textOf(bs: Block[]): string[] {
  return bs.filter((b) => b.type === 'text' && typeof b.text === 'string').map((b) => b.text as string);
}

const REMINDER = /<system-reminder>[\s\S]*?<\/system-reminder>/g;

/** The user's own words: text blocks without Claude Code's `<system-reminder>` additions. */
function promptText(message: Message): string {
  return textOf(blocks(message))
    .map((t) => t.replace(REMINDER, '').trim())
    .filter((t) => t !== '')
    .join('\n');
}

/**
 * A prompt is a user message with the user's own text and no tool_result: tool results (even with
 * reminder text merged in) and reminder-only messages continue the current turn.
 */
function isPrompt(message: Message): boolean {
  if (message.role !== 'user') return false;
  if (blocks(message).some((b) => b.type === 'tool_result')) return false;
  return promptText(message) !== '';
}

/** A tool_result's content as text: a string, or the text of its blocks. */
export function toolResultText(block: Block): string {
  if (typeof block.content === 'string') return block.content;
  if (Array.isArray(block.content)) return textOf(block.content as Block[]).join('\n');
  return '';
}

export type Step = { kind: 'tool_use'; step: number; command: string } | { kind: 'text'; text: string };

export interface Turn {
  step: Step;
  sleepMs: number;
}

export const NO_DIRECTIVE_TEXT = 'fake-model: ok';

/** What the model answers next on a main-loop request (one that carries tools). */
export function nextTurn(messages: unknown): Turn {
  const list: Message[] = Array.isArray(messages) ? (messages as Message[]).filter((m) => m && typeof m === 'object') : [];
  let latest = -1;
  for (let i = list.length - 1; i >= 0 && latest === -1; i--) if (isPrompt(list[i]!)) latest = i;
  if (latest === -1) return { step: { kind: 'text', text: NO_DIRECTIVE_TEXT }, sleepMs: 0 };

  const prompt = list[latest]!;
  const directives = parseDirectives(textOf(blocks(prompt)).join('\n'));
  const results = list
    .slice(latest + 1)
    .filter((m) => m.role === 'user')
    .flatMap((m) => blocks(m).filter((b) => b.type === 'tool_result'));
  const sleepMs = directives.sleepMs;

  const command = directives.bash[results.length];
  if (command !== undefined) return { step: { kind: 'tool_use', step: results.length + 1, command }, sleepMs };
  if (directives.json !== undefined) return { step: { kind: 'text', text: directives.json }, sleepMs };

  const parts = directives.bash.map((_, i) => `TOOL_RESULT ${i + 1}:\n${toolResultText(results[i] ?? {})}`);
  if (directives.recall) {
    const first = list.find(isPrompt);
    parts.push(`RECALL: ${first ? promptText(first) : ''}`);
  }
  parts.push(...directives.replies);
  return { step: { kind: 'text', text: parts.length > 0 ? parts.join('\n\n') : NO_DIRECTIVE_TEXT }, sleepMs };
}

// ---------------------------------------------------------------------------------------------
// Side requests

export const SIDE_REQUEST_TEXT = 'fake-model: side request';

interface Schema {
  type?: unknown;
  properties?: Record<string, Schema>;
  required?: unknown;
}

/** The smallest value a (simple) JSON schema accepts; the title request asks for `{"title": string}`. */
function sample(schema: Schema | undefined, depth = 0): unknown {
  const type = schema?.type;
  if (type === 'object' && depth < 5) {
    const props = schema?.properties ?? {};
    const required = Array.isArray(schema?.required) ? (schema.required as string[]) : Object.keys(props);
    return Object.fromEntries(required.map((k) => [k, sample(props[k], depth + 1)]));
  }
  if (type === 'array') return [];
  if (type === 'number' || type === 'integer') return 0;
  if (type === 'boolean') return false;
  if (type === 'null') return null;
  return 'Scripted fake session';
}

/** A harmless answer for a request without tools: text, or JSON when a json_schema output is asked. */
export function sideAnswer(outputConfig: unknown): string {
  const format = (outputConfig as { format?: { type?: unknown; schema?: Schema } } | undefined)?.format;
  if (format?.type === 'json_schema') return JSON.stringify(sample(format.schema));
  return SIDE_REQUEST_TEXT;
}
