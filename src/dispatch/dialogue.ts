import { clampWhole } from '../core/validate.js';
import type { DispatchResult } from './types.js';

export const RESOLVED_MARKER = '[RESOLVED]';
export const MIN_DIALOGUE_ROUNDS = 1;
export const MAX_DIALOGUE_ROUNDS = 10;

export interface DialogueTurn {
  agent: string;
  role: 'responder' | 'requester';
  round: number;
  message: string;
  cost_usd: number;
  error?: string;
  error_type?: string;
}

export interface DialogueOutcome {
  resolved: boolean;
  rounds: number;
  total_cost_usd: number;
  total_duration_ms: number;
  final_answer: string;
  conversation: DialogueTurn[];
}

/** One turn: which agent speaks, in what role, with what prompt, continuing which of its sessions. */
export interface TurnRequest {
  agent: string;
  role: 'responder' | 'requester';
  round: number;
  task: string;
  /** The other agent (shown to this one as the caller). */
  caller: string;
  goal: string;
  sessionId: string | undefined;
}

export function initialPrompt(requester: string, topic: string): string {
  return `You are starting a collaborative dialogue with agent '${requester}'.\nProvide your analysis or ask questions. When you have a complete answer and no further questions, end your response with ${RESOLVED_MARKER}.\n\nTopic:\n${topic}`;
}

export function replyPrompt(other: string, message: string, topic?: string): string {
  const topicPart = topic === undefined ? '' : `The dialogue is about:\n${topic}\n\n`;
  return `${topicPart}Agent '${other}' responds:\n\n${message}\n\nContinue the discussion. If you have a complete answer and no further questions, end your response with ${RESOLVED_MARKER}.`;
}

/**
 * The original's dialogue: the responder opens, then requester and responder alternate, each continuing its
 * own session, until a turn says [RESOLVED], a turn fails, or `maxRounds` (clamped 1..10) are used. Unlike
 * the original, the requester's first turn carries the topic (it only ever saw `goal = topic[:200]`).
 */
export async function runDialogue(
  options: { requester: string; responder: string; topic: string; maxRounds: number },
  turn: (request: TurnRequest) => Promise<DispatchResult>,
): Promise<DialogueOutcome> {
  const { requester, responder, topic } = options;
  const rounds = clampWhole(options.maxRounds, MIN_DIALOGUE_ROUNDS, MAX_DIALOGUE_ROUNDS, 3);
  const goal = topic.slice(0, 200);
  const sessions: Record<string, string | undefined> = {};
  const conversation: DialogueTurn[] = [];
  let totalCost = 0;
  let totalDuration = 0;
  let last = '';

  const speak = async (agent: string, role: DialogueTurn['role'], round: number, task: string, other: string): Promise<{ stop: boolean; answer: string }> => {
    const result = await turn({ agent, role, round, task, caller: other, goal, sessionId: sessions[role] });
    if (result.session_id) sessions[role] = result.session_id;
    totalCost += result.cost_usd ?? 0;
    totalDuration += result.duration_ms ?? 0;
    const message = result.result ?? '';
    const entry: DialogueTurn = { agent, role, round, message, cost_usd: result.cost_usd ?? 0 };
    if (result.error) entry.error = result.error;
    if (result.error_type) entry.error_type = result.error_type;
    conversation.push(entry);
    last = message;
    if (!result.success) return { stop: true, answer: result.error ?? 'The dialogue turn failed.' };
    if (message.includes(RESOLVED_MARKER)) return { stop: true, answer: message.replaceAll(RESOLVED_MARKER, '').trim() };
    return { stop: false, answer: message };
  };

  let outcome: { stop: boolean; answer: string } = { stop: false, answer: '' };
  let resolved = false;
  for (let round = 1; round <= rounds && !outcome.stop; round++) {
    const responderTask = round === 1 ? initialPrompt(requester, topic) : replyPrompt(requester, last);
    outcome = await speak(responder, 'responder', round, responderTask, requester);
    resolved = outcome.stop && last.includes(RESOLVED_MARKER);
    if (outcome.stop) break;
    outcome = await speak(requester, 'requester', round, replyPrompt(responder, last, round === 1 ? topic : undefined), responder);
    resolved = outcome.stop && last.includes(RESOLVED_MARKER);
  }
  return {
    resolved,
    rounds: conversation.at(-1)?.round ?? 0,
    total_cost_usd: Math.round(totalCost * 10_000) / 10_000,
    total_duration_ms: totalDuration,
    final_answer: outcome.stop ? outcome.answer : last,
    conversation,
  };
}
