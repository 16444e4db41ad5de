#!/usr/bin/env node
// Measures two DESIGN §5 figures against the built server (run `npm run build` first):
//   - MCP server start (spawn `node dist/cli.js serve`) to the first tools/list answer: target < 500 ms
//   - list_agents over 200 agents: target < 50 ms
// Reports medians and p95 over N runs, measured in this one run (timings on shared machines are noisy).
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const RUNS = Number(process.env.RUNS ?? 15);
const root = mkdtempSync(join(tmpdir(), 'ad-bench-'));
const config = join(root, 'agents.yaml');
const lines = ['agents:'];
for (let i = 0; i < 200; i++) {
  const dir = join(root, `repo-${i}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'CLAUDE.md'), `# Repo ${i}\nService number ${i}.\n`);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ description: `service ${i}` }));
  lines.push(`  agent-${i}:`, `    directory: ${dir}`, `    description: service ${i}`);
}
writeFileSync(config, `${lines.join('\n')}\n`);

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { median: at(0.5).toFixed(1), p95: at(0.95).toFixed(1), min: s[0].toFixed(1), max: s.at(-1).toFixed(1) };
};

const startup = [];
const listing = [];
for (let i = 0; i < RUNS; i++) {
  const t0 = performance.now();
  const transport = new StdioClientTransport({ command: process.execPath, args: ['dist/cli.js', 'serve'], env: { ...process.env, AGENT_DISPATCH_CONFIG: config } });
  const client = new Client({ name: 'bench', version: '0' });
  await client.connect(transport);
  await client.listTools();
  startup.push(performance.now() - t0);
  for (let j = 0; j < 5; j++) {
    const t1 = performance.now();
    const result = await client.callTool({ name: 'list_agents', arguments: {} });
    listing.push(performance.now() - t1);
    if (JSON.parse(result.content[0].text).length !== 200) throw new Error('list_agents did not return 200 agents');
  }
  await client.close();
}
console.log(JSON.stringify({ runs: RUNS, startup_to_tools_list_ms: stats(startup), list_agents_200_ms: stats(listing) }, null, 2));
