import { DEFAULT_AGENT_IMAGE } from '../../sandbox/image.js';
import { runSelftest } from '../../selftest/selftest.js';
import { parse } from '../args.js';
import type { CommandSpec } from '../spec.js';
import { err, out, style } from '../output.js';

export const selftestSpec: CommandSpec = {
  name: 'selftest',
  summary: 'Prove the sandbox on this machine: a real sandboxed claude against a scripted local model, probing from inside',
  args: [],
  options: {
    image: { type: 'string', value: 'IMAGE', description: `the agent image to test (default: ${DEFAULT_AGENT_IMAGE})` },
    json: { type: 'boolean', description: 'print the checks as JSON' },
  },
  notes: ['Exit 0 only if every check holds.'],
};

/** `agent-dispatch selftest [--image IMAGE] [--json]`: prove the sandbox here; exit 0 only if every check holds. */
export async function selftestCommand(argv: string[]): Promise<number> {
  const p = parse(selftestSpec, argv);
  const json = p.values['json'] === true;
  // Ctrl-C cancels the dispatch (its container is killed) and still lets the selftest remove what it created.
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  let report;
  try {
    report = await runSelftest({
      signal: controller.signal,
      ...(typeof p.values['image'] === 'string' ? { image: p.values['image'] } : {}),
      ...(json ? {} : { onStep: (m: string) => err(style.cyan(`  -> ${m}`, process.stderr)) }),
    });
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
  if (json) {
    out(JSON.stringify({ ok: report.ok, image: report.image, checks: report.checks, notes: report.notes, duration_ms: report.durationMs }, null, 2));
    return report.ok ? 0 : 1;
  }
  const width = Math.max(...report.checks.map((c) => c.name.length));
  out(style.bold(`agent-dispatch selftest — image ${report.image}`));
  for (const check of report.checks) {
    const mark = check.ok ? style.green('PASS') : style.red('FAIL');
    out(`  ${mark}  ${check.name.padEnd(width)}  ${check.detail}`);
  }
  for (const note of report.notes) out(style.yellow(`  note: ${note}`));
  const failed = report.checks.filter((c) => !c.ok).length;
  out(failed === 0 ? style.green(`All ${report.checks.length} checks passed in ${(report.durationMs / 1000).toFixed(1)} s.`) : style.red(`${failed} of ${report.checks.length} checks failed.`));
  return failed === 0 ? 0 : 1;
}
