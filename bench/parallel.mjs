#!/usr/bin/env node
// Measures the DESIGN §5 figure "dispatch_parallel of 10 tasks on 2 cores: total < 1.5x the slowest single task"
// against the built code (run `npm run build` first): a real MCP SDK Client spawns `node dist/cli.js serve` over
// stdio (settings.max_concurrency = the task count, so all may run at once). Each task runs one Bash step in its
// sandbox and then answers, while the scripted model holds each turn --hold-ms (a model-bound agent task).
//   1. singles: each task alone, one after another, through the `dispatch` tool; the slowest is the reference;
//   2. parallel: the same tasks (new wording, so the result cache answers none) in one `dispatch_parallel` call.
// Printed: the singles' times, the parallel total, and on a line of its own `parallel/slowest ratio: R`.
//
//   node bench/parallel.mjs [--tasks N] [--hold-ms MS] [--warm-pool N] [--gateway] [--json] [--image NAME]
//
// --warm-pool (default 0): settings.warm_pool. 0 compares cold containers on both sides; with a pool, singles are
// served warm while most parallel items start cold, which says more about the pool than about concurrency.
// Every container and volume it creates carries agent-dispatch.test=bench-<random> and agent-dispatch.test-run
// (benchLabels in bench/lib.mjs) and is removed at the end (also on failure or Ctrl-C). Only the server process it
// spawned is stopped. Nothing is ever pulled.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import Docker from 'dockerode';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { dockerOptions } from '../dist/sandbox/engine-calls.js';
import { DIRECTIVE } from '../dist/selftest/fake-model.js';
import { benchLabels, cleanupOnSignals, removeRun, runMain, startLocalModel, writeBenchInstall } from './lib.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli.js');
const TEST_LABEL = 'agent-dispatch.test';
const TARGET_RATIO = 1.5;
const CALL_TIMEOUT_MS = 600_000;

function parseArgs(argv) {
  const out = { tasks: 10, holdMs: 5000, warmPool: 0, gateway: false, json: false, image: 'agent-dispatch/agent:test' };
  const value = (a, i) => (a.includes('=') ? [a.slice(a.indexOf('=') + 1), i] : [argv[i + 1], i + 1]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const name = a.split('=')[0];
    if (a === '--json') out.json = true;
    else if (a === '--gateway') out.gateway = true;
    else if (['--tasks', '--hold-ms', '--warm-pool', '--image'].includes(name)) {
      const [v, next] = value(a, i);
      i = next;
      if (name === '--image') out.image = v;
      else {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0 || (name === '--tasks' && n < 1)) throw new Error(`${name} needs a non-negative integer`);
        out[{ '--tasks': 'tasks', '--hold-ms': 'holdMs', '--warm-pool': 'warmPool' }[name]] = n;
      }
    } else if (a === '-h' || a === '--help') {
      console.log('usage: node bench/parallel.mjs [--tasks N] [--hold-ms MS] [--warm-pool N] [--gateway] [--json] [--image NAME]');
      process.exit(0);
    } else throw new Error(`unknown argument: ${a}`);
  }
  return out;
}

const opts = parseArgs(process.argv.slice(2));
const info = (msg) => process.stderr.write(`[bench] ${msg}\n`);
const ms = (x) => Math.round(x * 10) / 10;

const runId = `bench-${randomBytes(4).toString('hex')}`;
const target = opts.gateway ? `${runId}-gw` : runId;
const docker = new Docker(dockerOptions(process.env));
const root = mkdtempSync(join(tmpdir(), 'ad-bench-parallel-'));
let model;
let client;
let serverStderr = '';
let cleaning;

function cleanup() {
  cleaning ??= (async () => {
    // Closing the client ends the server's stdin: it removes its containers on the way out.
    await client?.close().catch(() => undefined);
    await model?.close().catch(() => undefined);
    await removeRun(docker, `${TEST_LABEL}=${runId}`, root, info);
  })();
  return cleaning;
}

cleanupOnSignals(cleanup, info);

/** One task: a Bash step in the sandbox, then the answer; the model holds each turn. */
function task(i, wording) {
  return `${wording} ${runId} #${i} ${DIRECTIVE.sleep(opts.holdMs)} ${DIRECTIVE.bash(`ls / | wc -l`)} ${DIRECTIVE.reply(`task ${i} done`)}`;
}

function parseText(result) {
  const first = result.content?.[0];
  if (first?.type !== 'text') throw new Error(`unexpected tool result: ${JSON.stringify(result).slice(0, 500)}`);
  return JSON.parse(first.text);
}

function requireSuccess(json, what) {
  if (!json.success) throw new Error(`${what} failed (${json.error_type ?? '?'}): ${json.error ?? json.result} ${json.hint ?? ''}\nserver stderr:\n${serverStderr.slice(-2000)}`);
}

async function single(i) {
  const t0 = performance.now();
  const result = await client.callTool({ name: 'dispatch', arguments: { agent: target, task: task(i, 'single') } }, CallToolResultSchema, { timeout: CALL_TIMEOUT_MS, maxTotalTimeout: CALL_TIMEOUT_MS });
  const elapsed = performance.now() - t0;
  requireSuccess(parseText(result), `single task ${i}`);
  return elapsed;
}

async function parallel() {
  const items = Array.from({ length: opts.tasks }, (_, i) => ({ agent: target, task: task(i, 'parallel') }));
  const t0 = performance.now();
  const result = await client.callTool({ name: 'dispatch_parallel', arguments: { dispatches: JSON.stringify(items) } }, CallToolResultSchema, { timeout: CALL_TIMEOUT_MS, maxTotalTimeout: CALL_TIMEOUT_MS });
  const elapsed = performance.now() - t0;
  const json = parseText(result);
  const results = Array.isArray(json) ? json : json.individual_results ?? json.results;
  if (!Array.isArray(results) || results.length !== opts.tasks) throw new Error(`dispatch_parallel answered ${JSON.stringify(json).slice(0, 500)}`);
  results.forEach((r, i) => requireSuccess(r, `parallel item ${i}`));
  return elapsed;
}

async function main() {
  if (!existsSync(CLI)) throw new Error('dist/ is missing: run `npm run build` first');
  model = await startLocalModel(docker, opts.image);
  const settings = { max_concurrency: opts.tasks, warm_pool: opts.warmPool };
  const { env } = await writeBenchInstall({ root, agent: runId, image: opts.image, labels: benchLabels(runId), modelUrl: model.url, settings });
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'serve'], env, cwd: root, stderr: 'pipe' });
  transport.stderr?.on('data', (chunk) => {
    serverStderr = (serverStderr + chunk.toString()).slice(-100_000);
  });
  client = new Client({ name: 'bench-parallel', version: '0.0.0' });
  await client.connect(transport);
  const tools = (await client.listTools()).tools.map((t) => t.name);
  if (!tools.includes('dispatch_parallel')) throw new Error(`the server has no dispatch_parallel tool (tools: ${tools.join(', ')})`);
  info(`fake model on ${model.url}; ${opts.tasks} tasks holding ${opts.holdMs} ms each; ${cpus().length} cores; agent ${target}; warm pool ${opts.warmPool}`);

  // Warm-up, untimed: the session volume, the gateway (with --gateway) and the page cache.
  await single(-1);
  const singles = [];
  for (let i = 0; i < opts.tasks; i++) {
    singles.push(await single(i));
    info(`single ${i + 1}/${opts.tasks}: ${ms(singles.at(-1))} ms`);
  }
  const total = await parallel();
  const slowest = Math.max(...singles);
  const summary = {
    tasks: opts.tasks,
    cores: cpus().length,
    hold_ms: opts.holdMs,
    warm_pool: opts.warmPool,
    agent_policy: opts.gateway ? 'gateway' : 'open network',
    singles_ms: singles.map(ms),
    slowest_single_ms: ms(slowest),
    parallel_total_ms: ms(total),
    ratio: Math.round((total / slowest) * 1000) / 1000,
    target: { description: `dispatch_parallel total < ${TARGET_RATIO}x the slowest single task`, met: total / slowest < TARGET_RATIO },
  };
  if (opts.json) {
    console.log(JSON.stringify(summary, null, 2));
    return;
  }
  console.log(`dispatch_parallel, ${opts.tasks} tasks on ${summary.cores} cores (the model holds each turn ${opts.holdMs} ms; ${summary.agent_policy}; warm pool ${opts.warmPool})`);
  console.log(`  singles, one at a time (ms)   ${summary.singles_ms.join(', ')}`);
  console.log(`  slowest single task ms: ${summary.slowest_single_ms}`);
  console.log(`  parallel total ms: ${summary.parallel_total_ms}`);
  console.log(`parallel/slowest ratio: ${summary.ratio}`);
  console.log(`target: < ${TARGET_RATIO}x: ${summary.target.met ? 'yes' : 'NO'}`);
}

await runMain(main, cleanup);
