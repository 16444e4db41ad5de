import { requireAgent } from '../../core/agents.js';
import { readConfig } from '../../config/store.js';
import { DispatchService } from '../../dispatch/service.js';
import type { DispatchResult } from '../../dispatch/types.js';
import { parse, UsageError } from '../args.js';
import type { CommandSpec } from '../spec.js';
import { err, out, style, terminalSafe } from '../output.js';

export { terminalSafe };

const DEFAULT_TASK = 'What project is this? Describe in one sentence.';

export const testSpec: CommandSpec = {
  name: 'test',
  summary: 'Run one real sandboxed dispatch (no cache); exit 0 on success',
  args: [
    { name: 'NAME', description: 'the agent' },
    { name: 'TASK', optional: true, description: `what to ask (default: "${DEFAULT_TASK}")` },
  ],
  options: {
    stream: { type: 'boolean', description: 'print progress to stderr as it happens' },
    timeout: { type: 'string', value: 'N', description: "seconds for this dispatch only; 0 keeps the agent's timeout (default: 0)" },
  },
};

/** `agent-dispatch test NAME [TASK] [--stream] [--timeout N]`: one real sandboxed dispatch, no cache. */
export async function testCommand(argv: string[]): Promise<number> {
  const p = parse(testSpec, argv);
  const name = p.positionals[0]!;
  const task = p.positionals[1] ?? DEFAULT_TASK;
  const timeout = p.values['timeout'] === undefined ? 0 : Number(p.values['timeout']);
  if (!Number.isInteger(timeout) || timeout < 0) {
    throw new UsageError(`test: --timeout must be a whole number of seconds >= 0 (0 = the agent's default) (got ${String(p.values['timeout'])}).`);
  }
  const config = readConfig();
  const agent = requireAgent(config, name, `Run 'agent-dispatch list' to see agents.`);
  out(`Dispatching to '${name}' (${agent.directory})...`);
  out(`Task: ${task}`);
  out('---');
  const service = new DispatchService();
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  let result: DispatchResult;
  try {
    result = await service.dispatch(config, {
      agent: name,
      task,
      timeoutSeconds: timeout,
      signal: controller.signal,
      ...(p.values['stream'] ? { onProgress: (e) => err(style.cyan(`  -> ${terminalSafe(e.message)}`, process.stderr)) } : {}),
    });
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    await service.shutdown();
  }
  return report(result);
}

/** Prints the result; 0 on success, 1 on failure. */
export function report(result: DispatchResult): number {
  if (result.success) {
    out(terminalSafe(result.result));
    if (result.hint) out(style.yellow(`Note: ${terminalSafe(result.hint)}`));
    if (result.cost_usd !== undefined) out(`\n--- Cost: $${result.cost_usd.toFixed(4)} | Turns: ${result.num_turns ?? '?'}`);
    if (result.egress) out(egressLine(result.egress));
    return 0;
  }
  out(style.red(`Error: ${terminalSafe(result.error ?? 'the dispatch failed')}`));
  for (const line of diagnosis(result)) out(line);
  if (result.egress) out(egressLine(result.egress));
  return 1;
}

/** What the egress gateway let through and refused (gateway mode). */
export function egressLine(egress: NonNullable<DispatchResult['egress']>): string {
  if (egress.unavailable) return '--- Egress: the gateway could not report its decisions';
  // The hosts are what the agent asked for: as untrusted as its text.
  const refused = egress.denied_hosts.length ? ` (${terminalSafe(egress.denied_hosts.join(', '))})` : '';
  return `--- Egress: ${egress.allowed} allowed, ${egress.denied} refused by policy${refused}`;
}

/**
 * What went wrong, in a word, and the result's own hint: the dispatcher writes it knowing the agent's policy,
 * so it never suggests a flag the policy would undo.
 */
export function diagnosis(result: DispatchResult): string[] {
  const lines = result.error_type ? [`Diagnosis: ${result.error_type}`] : [];
  if (result.hint) lines.push(`  ${terminalSafe(result.hint)}`);
  return lines;
}
