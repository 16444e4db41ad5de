import { requireAgent } from '../../core/agents.js';
import { readConfig } from '../../config/store.js';
import { DispatchService } from '../../dispatch/service.js';
import type { DispatchResult } from '../../dispatch/types.js';
import { parse, UsageError } from '../args.js';
import { err, out, style } from '../output.js';

const DEFAULT_TASK = 'What project is this? Describe in one sentence.';

/** `agent-dispatch test NAME [TASK] [--stream] [--timeout N]`: one real sandboxed dispatch, no cache. */
export async function testCommand(argv: string[]): Promise<number> {
  const p = parse('test', argv, { stream: { type: 'boolean' }, timeout: { type: 'string' } }, { min: 1, max: 2, names: 'NAME [TASK] [--stream] [--timeout N]' });
  const name = p.positionals[0]!;
  const task = p.positionals[1] ?? DEFAULT_TASK;
  const timeout = p.values['timeout'] === undefined ? 0 : Number(p.values['timeout']);
  if (!Number.isInteger(timeout) || timeout < 0) throw new UsageError(`test: --timeout must be a positive number of seconds (got ${String(p.values['timeout'])}).`);
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
      ...(p.values['stream'] ? { onProgress: (e) => err(style.cyan(`  -> ${e.message}`, process.stderr)) } : {}),
    });
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    await service.shutdown();
  }
  return report(name, result);
}

function report(name: string, result: DispatchResult): number {
  if (result.success) {
    out(result.result);
    if (result.hint) out(style.yellow(`Note: ${result.hint}`));
    if (result.cost_usd !== undefined) out(`\n--- Cost: $${result.cost_usd.toFixed(4)} | Turns: ${result.num_turns ?? '?'}`);
    return 0;
  }
  out(style.red(`Error: ${result.error ?? 'the dispatch failed'}`));
  for (const line of diagnosis(name, result)) out(line);
  return 1;
}

function diagnosis(name: string, result: DispatchResult): string[] {
  switch (result.error_type) {
    case 'permission':
      return ['Diagnosis: permission error', `  agent-dispatch update ${name} --permission-mode bypassPermissions`, `  agent-dispatch update ${name} --allowed-tools Bash,Read,Edit,Write`];
    case 'timeout':
      return ['Diagnosis: timeout', `  agent-dispatch test ${name} --timeout 600    # one-off`, `  agent-dispatch update ${name} --timeout 600  # permanent`];
    case 'budget':
      return ['Diagnosis: spend cap reached', 'The claude CLI stopped the session at --max-budget-usd.', `  agent-dispatch update ${name} --max-budget-usd 2.0`, `  agent-dispatch update ${name} --model haiku`];
    case 'sandbox':
    case 'policy':
    case 'not_found':
      return result.hint ? [`Diagnosis: ${result.error_type}`, `  ${result.hint}`] : [];
    default:
      return result.hint ? [style.yellow(result.hint)] : [];
  }
}
