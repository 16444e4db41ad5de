// Judges one run of the conformance suite against the baseline and prints a pass/fail table.
//
//   node report.mjs RESULTS_DIR EXPECTED_FAILURES_FILE SCENARIO...
//
// RESULTS_DIR is the suite's `-o` directory: one `server-<scenario>-<timestamp>/checks.json` per scenario it
// ran. SCENARIO... are every server scenario the suite has (`conformance list --server`), so a scenario that
// left no result counts as failed rather than vanishing. A scenario fails when any of its checks is FAILURE or
// WARNING: the rule of the suite's own --expected-failures. The baseline file has one scenario a line,
// `name  # reason` (the reason is required; blank lines and lines starting with # are ignored).
//
// Exit 0: every failure is in the baseline and every baseline entry still fails. Exit 1: an unexpected
// failure, a baseline entry that now passes (stale: remove it), or a baseline line that is not a scenario of
// this suite or has no reason. Exit 2: usage.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [resultsDir, baselineFile, ...scenarios] = process.argv.slice(2);
if (!resultsDir || !baselineFile || scenarios.length === 0) {
  console.error('usage: node report.mjs RESULTS_DIR EXPECTED_FAILURES_FILE SCENARIO...');
  process.exit(2);
}

const problems = [];

/** name → reason, from the baseline file; malformed lines become problems. */
function readBaseline(file) {
  const expected = new Map();
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((raw, index) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const where = `${file}:${index + 1}`;
      const match = /^(\S+)\s+#\s*(\S.*)$/.exec(line);
      if (!match) return problems.push(`${where}: '${line}' needs the form 'scenario  # reason'`);
      const [, name, reason] = match;
      if (!scenarios.includes(name)) return problems.push(`${where}: '${name}' is not a server scenario of this suite version (remove or rename it)`);
      if (expected.has(name)) return problems.push(`${where}: '${name}' is listed twice`);
      expected.set(name, reason);
    });
  return expected;
}

/** scenario → its checks, from the newest result directory the suite wrote for it. */
function readResults(dir) {
  const results = new Map();
  const entries = existsSync(dir) ? readdirSync(dir).sort() : [];
  for (const entry of entries) {
    // server-<scenario>-<ISO timestamp with ':' and '.' made '-'>; scenario names contain '-' and digits too.
    const match = /^server-(.+)-(\d{4}-\d{2}-\d{2}T[\d-]+Z)$/.exec(entry);
    const file = join(dir, entry, 'checks.json');
    if (match && existsSync(file)) results.set(match[1], JSON.parse(readFileSync(file, 'utf8')));
  }
  return results;
}

function judge(name, checks, expected) {
  if (!checks) return { failed: true, detail: 'no result: the suite could not run it (its log says why)' };
  const count = (status) => checks.filter((c) => c.status === status).length;
  const [passed, failures, warnings] = [count('SUCCESS'), count('FAILURE'), count('WARNING')];
  const tally = `${passed} ok, ${failures} failed, ${warnings} warned`;
  const failed = failures + warnings > 0;
  const firstError = checks.find((c) => c.status === 'FAILURE' || c.status === 'WARNING');
  const why = firstError ? `${firstError.id}: ${firstError.errorMessage ?? firstError.description ?? ''}`.slice(0, 160) : '';
  return { failed, tally, detail: expected.has(name) ? expected.get(name) : why };
}

const expected = readBaseline(baselineFile);
const results = readResults(resultsDir);
const rows = scenarios.map((name) => {
  const { failed, tally = '-', detail } = judge(name, results.get(name), expected);
  const listed = expected.has(name);
  let outcome;
  if (failed && listed) outcome = 'expected failure';
  else if (failed) outcome = 'UNEXPECTED FAILURE';
  else if (listed) outcome = 'STALE BASELINE';
  else outcome = 'pass';
  if (outcome === 'UNEXPECTED FAILURE') problems.push(`${name} failed and is not in ${baselineFile}: ${detail}`);
  if (outcome === 'STALE BASELINE') problems.push(`${name} passes now: remove its line from ${baselineFile}`);
  return [name, outcome, tally, outcome === 'pass' ? '' : detail];
});

const header = ['scenario', 'result', 'checks', 'reason / first failing check'];
const widths = header.slice(0, 3).map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const format = (cells) => cells.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]) : cell)).join('  ').trimEnd();
console.log(format(header));
console.log(format(widths.map((w) => '-'.repeat(w)).concat('-'.repeat(header[3].length))));
for (const row of rows) console.log(format(row));
const tally = (outcome) => rows.filter((r) => r[1] === outcome).length;
console.log(`\n${scenarios.length} scenarios: ${tally('pass')} pass, ${tally('expected failure')} expected failures (baseline), ${tally('UNEXPECTED FAILURE')} unexpected failures, ${tally('STALE BASELINE')} stale baseline entries`);

if (problems.length > 0) {
  console.log('\nconformance: FAILED');
  for (const problem of problems) console.log(`  - ${problem}`);
  process.exit(1);
}
console.log('conformance: ok (every failure is in the baseline, and every baseline entry still fails)');
