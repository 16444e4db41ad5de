/** The escape suite's table: one row per attempt, printed to the test's stdout and written where CI can print it. */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testSuiteRun } from '../helpers/docker.js';

export interface Row {
  id: string;
  /** The hole of issue 14 (items 1–9) the attempt covers, if one. */
  item?: number | undefined;
  tries: string;
  expected: string;
  observed: string;
  held: boolean;
}

/** Per suite run (AGENT_DISPATCH_TEST_RUN), so `.ci/run` prints its own run's table. */
export const ESCAPE_TABLE_PATH = process.env['AGENT_DISPATCH_ESCAPE_TABLE'] ?? join(tmpdir(), `agent-dispatch-escape-table-${testSuiteRun()}.md`);

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\s+/g, ' ').trim();

export function formatTable(rows: Row[], elapsedMs: number): string {
  const held = rows.filter((r) => r.held).length;
  const lines = [
    `## Hostile-agent suite: ${held}/${rows.length} attempts held (${(elapsedMs / 1000).toFixed(0)} s)`,
    '',
    '| # | attempt | tries | expected | observed | held? |',
    '|---|---|---|---|---|---|',
    ...rows.map((r, i) => `| ${i + 1} | ${cell(r.item ? `${r.id} (item ${r.item})` : r.id)} | ${cell(r.tries)} | ${cell(r.expected)} | ${cell(r.observed)} | ${r.held ? 'held' : '**NOT HELD**'} |`),
  ];
  return lines.join('\n');
}
