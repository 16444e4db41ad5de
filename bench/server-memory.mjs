#!/usr/bin/env node
// Measures the DESIGN §5 figure "server memory < 100 MB RSS with 10 dispatches in flight" against the built code
// (run `npm run build` first): a real MCP SDK Client spawns `node dist/cli.js serve` over stdio, starts N concurrent
// `dispatch` calls (default 10; settings.max_concurrency = N) whose task makes the scripted fake model hold the turn,
// and samples the server's VmRSS from /proc/<pid>/status every 100 ms while they are in flight. A dockerode poller
// counts the running dispatch containers alongside, so the peak can be tied to how many were really in flight.
//
//   node bench/server-memory.mjs [--dispatches N] [--hold-ms MS] [--warm-pool N] [--json] [--image NAME] [--node-arg FLAG ...] [--gateway]
//
// --gateway dispatches to an agent whose policy routes through the egress gateway (one gateway container, reused).
// --warm-pool N (default 2) sets settings.warm_pool: before the N dispatches start, the agent's pool is full
// (N pre-started sandboxes running and no more starting), so the figure covers the pool's sockets and state too.
// "All in flight" is judged by the scripted model: every dispatch's claude has sent its request and is waiting
// on the held turn (a pre-started sandbox serving a dispatch carries no job label, so the engine count alone
// cannot say it).
//
// By default the server runs with the node flags `init` registers it with (SERVER_NODE_FLAGS); --node-arg
// replaces them (repeatable), e.g. --node-arg=--max-semi-space-size=16 (node's default) to see how
// much of the figure is V8 heap sizing rather than live data.
//
// Reported: baseline RSS (server started, tools listed), RSS after one warm-up dispatch (which also creates the
// agent's session volume), peak RSS while the N dispatches are in flight and the peak while all N containers were
// running, RSS after all finished, the kernel's high-water mark (VmHWM), and the dispatch durations.
// Every container and volume it creates carries agent-dispatch.test=bench-<random> and agent-dispatch.test-run
// (benchLabels in bench/lib.mjs) and is removed at the end (also on failure or Ctrl-C), including the agent's
// session volume. Only the server process it spawned is killed, by PID. Nothing is ever pulled.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import Docker from 'dockerode';
import { stringify } from 'yaml';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { LABELS } from '../dist/sandbox/owner.js';
import { dockerOptions } from '../dist/sandbox/engine-calls.js';
import { DIRECTIVE } from '../dist/selftest/fake-model.js';
import { openNetworkPolicy } from '../dist/selftest/open-policy.js';
import { benchLabels, cleanupOnSignals, removeRun, runMain, startLocalModel, writeBenchInstall } from './lib.mjs';
import { SERVER_NODE_FLAGS } from '../dist/cli/commands/init.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/cli.js');
const TEST_LABEL = 'agent-dispatch.test';
const TARGET_MB = 100;
const SAMPLE_MS = 100;
const DOCKER_POLL_MS = 250;
const CALL_TIMEOUT_MS = 300_000;

function parseArgs(argv) {
  const out = { dispatches: 10, holdMs: 15_000, warmPool: 2, json: false, image: 'agent-dispatch/agent:test', nodeArgs: undefined, gateway: false };
  const num = (name, v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} needs a positive integer`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') out.json = true;
    else if (a === '--gateway') out.gateway = true;
    else if (a === '--dispatches') out.dispatches = num(a, argv[++i]);
    else if (a.startsWith('--dispatches=')) out.dispatches = num('--dispatches', a.slice(13));
    else if (a === '--warm-pool') out.warmPool = Number(argv[++i]);
    else if (a.startsWith('--warm-pool=')) out.warmPool = Number(a.slice(12));
    else if (a === '--hold-ms') out.holdMs = num(a, argv[++i]);
    else if (a.startsWith('--hold-ms=')) out.holdMs = num('--hold-ms', a.slice(10));
    else if (a === '--image') out.image = argv[++i];
    else if (a.startsWith('--image=')) out.image = a.slice(8);
    else if (a === '--node-arg') (out.nodeArgs ??= []).push(argv[++i]);
    else if (a.startsWith('--node-arg=')) (out.nodeArgs ??= []).push(a.slice(11));
    else if (a === '-h' || a === '--help') {
      console.log('usage: node bench/server-memory.mjs [--dispatches N] [--hold-ms MS] [--warm-pool N] [--json] [--image NAME] [--node-arg FLAG ...] [--gateway]');
      process.exit(0);
    } else throw new Error(`unknown argument: ${a}`);
  }
  if (!Number.isInteger(out.warmPool) || out.warmPool < 0 || out.warmPool > 8) throw new Error('--warm-pool needs an integer 0..8');
  // Default: the flags `init` registers the server with, i.e. what users run.
  out.nodeArgs ??= [...SERVER_NODE_FLAGS];
  return out;
}

const opts = parseArgs(process.argv.slice(2));
const info = (msg) => process.stderr.write(`[bench] ${msg}\n`);
const mb = (kb) => (kb === undefined ? undefined : Math.round((kb / 1024) * 10) / 10);
const ms = (x) => Math.round(x * 10) / 10;
const sleep = (t) => new Promise((r) => setTimeout(r, t));

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { p50: ms(at(0.5)), p95: ms(at(0.95)), min: ms(s[0]), max: ms(s.at(-1)) };
};

/** VmRSS and VmHWM of a process, in kB (undefined once it is gone). */
function procMemory(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const field = (name) => {
      const m = status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'));
      return m ? Number(m[1]) : undefined;
    };
    return { rss: field('VmRSS'), hwm: field('VmHWM') };
  } catch {
    return { rss: undefined, hwm: undefined };
  }
}

const runId = `bench-${randomBytes(4).toString('hex')}`;
const agent = runId;
/** --gateway: dispatch to the agent whose policy routes through the egress gateway (writeBenchInstall makes both). */
const target = opts.gateway ? `${agent}-gw` : agent;
const docker = new Docker(dockerOptions(process.env));
const root = mkdtempSync(join(tmpdir(), 'ad-bench-memory-'));
let model;
let client;
let transport;
let serverPid;
let serverStderr = '';
let cleaning;
let stopping = false;

function cleanup() {
  cleaning ??= removeEverything();
  return cleaning;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function removeEverything() {
  // Closing the client ends the server's stdin (then SIGTERM, then SIGKILL, each after 2 s): it kills and removes
  // its dispatch containers on the way out. If it is somehow still there, kill it by its PID.
  await client?.close().catch(() => undefined);
  if (serverPid && alive(serverPid)) {
    await sleep(1000);
    if (alive(serverPid)) {
      info(`server pid ${serverPid} still alive after close: SIGKILL`);
      try {
        process.kill(serverPid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  await model?.close().catch(() => undefined);
  await removeRun(docker, `${TEST_LABEL}=${runId}`, root, info);
}

cleanupOnSignals(cleanup, info, () => (stopping = true));

/** Running containers of this run started cold for a dispatch (job label), and pre-started ones (warm label). */
async function runningContainers() {
  const count = async (label) => (await docker.listContainers({ filters: JSON.stringify({ label: [`${TEST_LABEL}=${runId}`, label], status: ['running'] }) })).length;
  const [cold, warm] = await Promise.all([count(LABELS.job), count(LABELS.warm)]);
  return { cold, warm };
}

async function dispatch(task) {
  const t0 = performance.now();
  const result = await client.callTool({ name: 'dispatch', arguments: { agent: target, task } }, CallToolResultSchema, {
    timeout: CALL_TIMEOUT_MS,
    maxTotalTimeout: CALL_TIMEOUT_MS,
  });
  const elapsed = performance.now() - t0;
  const first = result.content?.[0];
  if (first?.type !== 'text') throw new Error(`unexpected tool result: ${JSON.stringify(result).slice(0, 500)}`);
  const json = JSON.parse(first.text);
  if (result.isError || !json.success) {
    throw new Error(`dispatch failed (${json.error_type ?? '?'}): ${json.error ?? json.result} ${json.hint ?? ''}\nserver stderr:\n${serverStderr.slice(-2000)}`);
  }
  return { elapsed, json };
}

async function main() {
  if (!existsSync(CLI)) throw new Error('dist/ is missing: run `npm run build` first');
  if (!existsSync('/proc/self/status')) throw new Error('this benchmark reads /proc/<pid>/status (Linux only)');
  model = await startLocalModel(docker, opts.image);
  info(`fake model on ${model.url}; label ${TEST_LABEL}=${runId}; image ${opts.image}; ${opts.dispatches} dispatches holding ${opts.holdMs} ms`);

  const { repo, configPath, env } = await writeBenchInstall({ root, agent, image: opts.image, labels: benchLabels(runId), modelUrl: model.url, settings: { max_concurrency: Math.max(10, opts.dispatches), warm_pool: { size: opts.warmPool, idle_minutes: 10, memory_mb: 2048 } } });


  transport = new StdioClientTransport({ command: process.execPath, args: [...opts.nodeArgs, CLI, 'serve'], env, cwd: root, stderr: 'pipe' });
  transport.stderr?.on('data', (chunk) => {
    serverStderr += chunk.toString();
    if (serverStderr.length > 200_000) serverStderr = serverStderr.slice(-100_000);
  });
  client = new Client({ name: 'bench-server-memory', version: '0.0.0' });
  await client.connect(transport);
  serverPid = transport.pid;
  if (!serverPid) throw new Error('the server process has no pid');
  const tools = (await client.listTools()).tools.map((t) => t.name);
  if (!tools.includes('dispatch')) throw new Error(`the server has no dispatch tool (tools: ${tools.join(', ')})`);
  await sleep(1000); // let startup (orphan reaping) settle
  const baseline = procMemory(serverPid).rss;
  info(`server pid ${serverPid}; baseline RSS ${mb(baseline)} MB`);

  // Warm-up: creates and chowns the agent's session volume once (N first dispatches would race to do it), and
  // loads the dispatch code paths, so the in-flight figure is not a first-use figure.
  const warm = await dispatch(`warm-up ${runId} ${DIRECTIVE.reply('warm')}`);
  await sleep(500);
  const afterWarmup = procMemory(serverPid).rss;
  info(`warm-up dispatch ${ms(warm.elapsed)} ms; RSS ${mb(afterWarmup)} MB`);
  if (opts.warmPool > 0) {
    // Full: the pool's sandboxes running, and none still starting a moment later.
    const deadline = Date.now() + 120_000;
    let stable = 0;
    while (stable < 3) {
      if (Date.now() > deadline) throw new Error(`the warm pool did not fill to ${opts.warmPool}\nserver stderr:\n${serverStderr.slice(-2000)}`);
      const { warm: n } = await runningContainers();
      stable = n === opts.warmPool ? stable + 1 : 0;
      await sleep(500);
    }
    await sleep(2000);
    info(`warm pool full: ${opts.warmPool} pre-started sandbox(es); RSS ${mb(procMemory(serverPid).rss)} MB`);
  }
  const poolFullRss = procMemory(serverPid).rss;
  const requestsBefore = model.requests.filter((r) => r.hasTools).length;

  // Sampling: RSS every 100 ms, running containers every 250 ms, until all dispatches settle.
  const samples = [];
  const polls = [];
  let sampling = true;
  const t0 = performance.now();
  const rssLoop = (async () => {
    while (sampling) {
      const { rss } = procMemory(serverPid);
      if (rss !== undefined) samples.push({ t: performance.now() - t0, rss });
      await sleep(SAMPLE_MS);
    }
  })();
  const dockerLoop = (async () => {
    while (sampling) {
      const t = performance.now() - t0;
      try {
        polls.push({ t, ...(await runningContainers()), held: model.requests.filter((r) => r.hasTools).length - requestsBefore });
      } catch (error) {
        info(`container poll failed: ${error?.message ?? error}`);
      }
      await sleep(DOCKER_POLL_MS);
    }
  })();

  // Distinct tasks: identical ones would be answered from the result cache without a container.
  let firstDone = Infinity;
  const calls = Array.from({ length: opts.dispatches }, (_, i) =>
    dispatch(`memory bench ${runId} #${i} ${DIRECTIVE.sleep(opts.holdMs)} ${DIRECTIVE.reply(`done ${i}`)}`).then((r) => {
      firstDone = Math.min(firstDone, performance.now() - t0);
      return r;
    }),
  );
  const settled = await Promise.allSettled(calls);
  sampling = false;
  await Promise.all([rssLoop, dockerLoop]);
  const failures = settled.filter((s) => s.status === 'rejected');
  if (failures.length) throw new Error(`${failures.length}/${opts.dispatches} dispatch(es) failed; first: ${failures[0].reason?.message ?? failures[0].reason}`);
  const durations = settled.map((s) => s.value.elapsed);

  await sleep(1000); // containers removed, responses sent: let the server settle
  const after = procMemory(serverPid);
  if (stopping) throw new Error('interrupted');

  // Containers at a sample time: the latest poll at or before it.
  const pollAt = (t) => {
    let best;
    for (const p of polls) if (p.t <= t) best = p;
    return best ?? { cold: 0, warm: 0, held: 0 };
  };
  const maxRunning = Math.max(0, ...polls.map((p) => p.cold + p.warm));
  const peak = samples.reduce((a, b) => (b.rss > a.rss ? b : a), samples[0] ?? { t: 0, rss: 0 });
  // All in flight: from the poll that saw every dispatch's request held by the model, until the first one returned.
  const allHeld = polls.find((p) => p.held >= opts.dispatches);
  const full = allHeld ? samples.filter((s) => s.t >= allHeld.t && s.t <= firstDone) : [];
  const peakFull = full.reduce((a, b) => (b.rss > a.rss ? b : a), full[0]);
  const fullWindowMs = allHeld ? Math.max(0, firstDone - allHeld.t) : 0;
  const runningAt = (t) => pollAt(t).cold + pollAt(t).warm;

  const summary = {
    dispatches: opts.dispatches,
    hold_ms: opts.holdMs,
    image: opts.image,
    server_pid: serverPid,
    node_args: opts.nodeArgs,
    rss_mb: {
      baseline: mb(baseline),
      after_warmup: mb(afterWarmup),
      pool_full: mb(poolFullRss),
      peak_in_flight: mb(peak.rss),
      peak_with_all_running: peakFull ? mb(peakFull.rss) : null,
      after_all_finished: mb(after.rss),
      high_water_mark: mb(after.hwm),
    },
    warm_pool: opts.warmPool,
    containers: {
      running_at_peak: runningAt(peak.t),
      pre_started_at_peak: pollAt(peak.t).warm,
      max_running: maxRunning,
      all_running_after_ms: allHeld ? Math.round(allHeld.t) : null,
      all_running_for_ms: Math.round(fullWindowMs),
    },
    samples: samples.length,
    dispatch_ms: stats(durations),
    warmup_dispatch_ms: ms(warm.elapsed),
    target: {
      description: `server RSS < ${TARGET_MB} MB with ${opts.dispatches} dispatches in flight and a warm pool of ${opts.warmPool} full before them`,
      all_were_running: allHeld !== undefined,
      met: allHeld !== undefined && peak.rss / 1024 < TARGET_MB,
    },
  };

  if (opts.json) {
    console.log(JSON.stringify(summary, null, 2));
    return;
  }
  const r = summary.rss_mb;
  const flags = opts.nodeArgs.length ? `, server node flags ${opts.nodeArgs.join(' ')}` : '';
  console.log(`server memory, ${opts.dispatches} concurrent dispatches (fake model holds each turn ${opts.holdMs} ms), warm pool ${opts.warmPool}, image ${opts.image}${flags}`);
  console.log(`  baseline RSS (started, tools listed)      ${r.baseline} MB`);
  console.log(`  RSS after one warm-up dispatch            ${r.after_warmup} MB`);
  console.log(`  RSS with the warm pool full               ${r.pool_full} MB`);
  console.log(`  peak RSS while in flight                  ${r.peak_in_flight} MB  (${summary.containers.running_at_peak} agent containers running at that sample, ${summary.containers.pre_started_at_peak} of them pre-started)`);
  console.log(`  peak RSS with all ${opts.dispatches} in flight           ${r.peak_with_all_running ?? 'n/a'} MB  (all in flight from ${summary.containers.all_running_after_ms} ms for ${summary.containers.all_running_for_ms} ms; max agent containers running ${maxRunning})`);
  console.log(`  RSS after all finished                    ${r.after_all_finished} MB  (VmHWM ${r.high_water_mark} MB)`);
  console.log(`  dispatch duration p50 ${summary.dispatch_ms.p50} ms, p95 ${summary.dispatch_ms.p95} ms, min ${summary.dispatch_ms.min}, max ${summary.dispatch_ms.max}`);
  console.log(`server peak RSS MB: ${r.peak_in_flight}`);
  console.log(
    `target: < ${TARGET_MB} MB RSS with ${opts.dispatches} in flight: ${summary.target.met ? 'yes' : 'NO'}` +
      (summary.target.all_were_running ? '' : ' (the dispatches were never all in flight at once: raise --hold-ms)'),
  );
}

// After a signal the dispatches fail because cleanup killed their containers.
await runMain(main, cleanup, () => stopping);
