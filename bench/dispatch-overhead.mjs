#!/usr/bin/env node
// Measures the DESIGN §5 dispatch-overhead figure against the built code (run `npm run build` first):
//   bare       the host claude binary as a subprocess (`claude -p --output-format stream-json --verbose`, prompt on stdin)
//   sandboxed  the same task through DispatchService.dispatch (policy compile, session volume, hardened container)
//   gateway    the same dispatch under a policy that routes through the egress gateway (network none, the
//              in-container bridge, ping + canary + token registration per dispatch, credential injected)
//   docker-run a bare `docker run` of the same image with the same hardened HostConfig (dockerode create/attach/
//              start/wait/remove, no managed settings, no session-volume preparation), running the same argv
//   warm       the gateway dispatch served by a pre-started sandbox from the warm pool (settings.warm_pool 1):
//              claude already initialised in its container, gateway lease open; the claim, a gateway recheck,
//              the prompt, the answer, the removal. Each warm run waits until the pool is full first, and the
//              refill it triggers finishes before the next mode runs, so it never shares the CPU with another mode.
//   warm-open  the same under the open-network policy
// The cold modes run with settings.warm_pool 0. All talk to the scripted fake model (no tokens, no internet),
// listening on the Docker bridge address.
// Targets: warm p50 below bare p50 (ratio < 1.0; stretch <= 0.5); cold: sandboxed within 1.2x of a bare docker
// run of the same image. Timings on shared machines are noisy: the modes are interleaved in one run (paired
// rounds, order rotated) and ratios come from that run.
//
//   node bench/dispatch-overhead.mjs [--runs N] [--json] [--image NAME] [--gateway-image NAME]
//
// Every container and volume it creates carries agent-dispatch.test=bench-<random> and agent-dispatch.test-run
// (benchLabels in bench/lib.mjs) and is removed at the end (also on failure or Ctrl-C), including the agent's
// session volume. Nothing is ever pulled.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import Docker from 'dockerode';
import { stringify } from 'yaml';
import { loadConfig, requireConfig } from '../dist/config/load.js';
import { containerLabels, DispatchService } from '../dist/dispatch/service.js';
import { createSandboxRunner } from '../dist/sandbox/runner.js';
import { buildPrompt } from '../dist/dispatch/prompt.js';
import { resolveAgentPolicy } from '../dist/policy/resolve.js';
import { dockerOptions } from '../dist/sandbox/engine-calls.js';
import { DIRECTIVE } from '../dist/selftest/fake-model.js';
import { openNetworkPolicy } from '../dist/selftest/open-policy.js';
import { benchLabels, cleanupOnSignals, removeRun, runMain, startLocalModel, writeBenchInstall } from './lib.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TEST_LABEL = 'agent-dispatch.test';
const CLAUDE_BIN = join(ROOT, 'node_modules/@anthropic-ai/claude-code-linux-x64/claude');
const ARGV = ['-p', '--output-format', 'stream-json', '--verbose'];
const TASK = DIRECTIVE.reply('ok');
const RUN_TIMEOUT_MS = 120_000;

function parseArgs(argv) {
  const out = { runs: 10, json: false, image: 'agent-dispatch/agent:test', gatewayImage: 'agent-dispatch/gateway:test' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') out.json = true;
    else if (a === '--runs') out.runs = Number(argv[++i]);
    else if (a.startsWith('--runs=')) out.runs = Number(a.slice(7));
    else if (a === '--image') out.image = argv[++i];
    else if (a.startsWith('--image=')) out.image = a.slice(8);
    else if (a === '--gateway-image') out.gatewayImage = argv[++i];
    else if (a === '-h' || a === '--help') {
      console.log('usage: node bench/dispatch-overhead.mjs [--runs N] [--json] [--image NAME] [--gateway-image NAME]');
      process.exit(0);
    } else throw new Error(`unknown argument: ${a}`);
  }
  if (!Number.isInteger(out.runs) || out.runs < 1) throw new Error('--runs needs a positive integer');
  return out;
}

const opts = parseArgs(process.argv.slice(2));
const info = (msg) => process.stderr.write(`[bench] ${msg}\n`);

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { p50: at(0.5), p95: at(0.95), min: s[0], max: s.at(-1) };
};
const ms = (x) => Math.round(x * 10) / 10;
const ratio = (a, b) => Math.round((a / b) * 1000) / 1000;
const round = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, ms(v)]));

/** The final `result` event of a stream-json transcript, if any. */
function resultEvent(text) {
  for (const line of text.split('\n').reverse()) {
    if (!line.trim()) continue;
    try {
      const event = JSON.parse(line);
      if (event.type === 'result') return event;
    } catch {
      // not JSON: ignore
    }
  }
  return undefined;
}

const runId = `bench-${randomBytes(4).toString('hex')}`;
const labels = benchLabels(runId);
const agent = runId;
const docker = new Docker(dockerOptions(process.env));
const root = mkdtempSync(join(tmpdir(), 'ad-bench-dispatch-'));
const children = new Set();
let model;
let service;
let runner;
let cleaning;
let stopping = false;

/** Idempotent: the signal handler and main's finally share one cleanup. */
function cleanup() {
  cleaning ??= removeEverything();
  return cleaning;
}

async function removeEverything() {
  for (const child of children) child.kill('SIGKILL');
  await service?.shutdown().catch(() => undefined);
  await runner?.shutdown().catch(() => undefined);
  await model?.close().catch(() => undefined);
  await removeRun(docker, `${TEST_LABEL}=${runId}`, root, info);
}

cleanupOnSignals(cleanup, info, () => (stopping = true));

/** (1) The host claude binary, fresh HOME and config dir per run. */
function runBare(prompt, repo) {
  const home = mkdtempSync(join(root, 'home-'));
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    CLAUDE_CONFIG_DIR: join(home, '.claude'),
    ANTHROPIC_BASE_URL: model.url,
    ANTHROPIC_API_KEY: 'sk-bench-dummy',
    CLAUDE_CODE_MAX_RETRIES: '0',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
  };
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(CLAUDE_BIN, ARGV, { cwd: repo, env, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const elapsed = performance.now() - t0;
      clearTimeout(timer);
      children.delete(child);
      rmSync(home, { recursive: true, force: true });
      const result = resultEvent(stdout);
      if (code !== 0 || result?.result !== 'ok') {
        reject(new Error(`bare claude failed (exit ${code}): ${result?.result ?? ''} ${stderr.slice(0, 500)}`));
      } else resolvePromise(elapsed);
    });
    child.stdin.end(prompt);
  });
}

/** settings.warm_pool for one mode (the agents are the same). */
function withPool(config, size) {
  return { ...config, settings: { ...config.settings, warm_pool: { size, idle_minutes: 10, memory_mb: 2048 } } };
}

/** (4) A dispatch a pre-started sandbox serves; the pool is full before it, and refilled after it, untimed. */
async function runWarm(config, name) {
  const pool = runner.warmPool;
  await pool.settled();
  const ready = pool.status().find((s) => s.agent === name)?.idle ?? 0;
  if (ready < 1) throw new Error(`no pre-started sandbox is ready for ${name}: the warm pool did not fill (see the log above)`);
  const elapsed = await runSandboxed(config, name);
  await pool.settled();
  return elapsed;
}

/** (2) The full dispatch path (open network, or `name` behind the gateway). */
async function runSandboxed(config, name = agent) {
  const t0 = performance.now();
  const result = await service.dispatch(config, { agent: name, task: TASK });
  const elapsed = performance.now() - t0;
  if (!result.success || result.result !== 'ok') {
    throw new Error(`sandboxed dispatch failed (${result.error_type ?? '?'}): ${result.error ?? result.result} ${result.hint ?? ''}`);
  }
  return elapsed;
}

/** (3) A bare docker run of the same image and hardened HostConfig: create, attach, start, wait, remove. */
async function runDocker(spec, prompt) {
  const t0 = performance.now();
  const container = await docker.createContainer({
    ...structuredClone(spec),
    Cmd: ['claude', ...ARGV],
    OpenStdin: true,
    StdinOnce: true,
    AttachStdin: true,
    Labels: { ...spec.Labels, ...labels },
  });
  let text = '';
  let stderr = '';
  let status;
  try {
    const stream = await container.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true });
    const ended = new Promise((r) => {
      stream.on('end', r);
      stream.on('close', r);
      stream.on('error', () => r());
    });
    const out = new PassThrough();
    const err = new PassThrough();
    out.on('data', (d) => (text += d));
    err.on('data', (d) => (stderr += d));
    docker.modem.demuxStream(stream, out, err);
    const exited = container.wait({ condition: 'next-exit' });
    await container.start();
    stream.end(prompt);
    const timer = setTimeout(() => container.kill({ signal: 'SIGKILL' }).catch(() => undefined), RUN_TIMEOUT_MS);
    try {
      status = await exited;
    } finally {
      clearTimeout(timer);
    }
    await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))]);
  } finally {
    await container.remove({ force: true, v: true }).catch(() => undefined);
  }
  const elapsed = performance.now() - t0;
  const result = resultEvent(text);
  if (status?.StatusCode !== 0 || result?.result !== 'ok') {
    throw new Error(`docker run failed (exit ${status?.StatusCode}): ${result?.result ?? ''} ${stderr.slice(0, 500)}`);
  }
  return elapsed;
}

async function main() {
  if (!existsSync(join(ROOT, 'dist/dispatch/service.js'))) throw new Error('dist/ is missing: run `npm run build` first');
  if (!existsSync(CLAUDE_BIN)) throw new Error(`no claude binary at ${CLAUDE_BIN} (npm install the devDependencies)`);
  model = await startLocalModel(docker, opts.image);
  info(`fake model on ${model.url}; label ${TEST_LABEL}=${runId}; image ${opts.image}; ${opts.runs} run(s) per mode`);

  const { repo, configPath, env } = await writeBenchInstall({ root, agent, image: opts.image, gatewayImage: opts.gatewayImage, labels, modelUrl: model.url, settings: {} });

  const loaded = requireConfig(loadConfig(configPath));
  const config = withPool(loaded, 0);
  const warmConfig = withPool(loaded, 1);
  // The runner a server builds (DispatchService.startup enables its warm pool); its own, so the bench can watch the pool.
  runner = createSandboxRunner({ runDir: join(root, 'run'), extraLabels: containerLabels(env), gatewayImage: env.AGENT_DISPATCH_GATEWAY_IMAGE }, env);
  runner.enableWarmPool();
  service = new DispatchService(env, runner);

  // The same compiled container spec the dispatch uses, for the docker-run baseline (same hardening, same mounts).
  const report = resolveAgentPolicy(config, agent, { configDir: dirname(configPath), hostEnv: env, depth: 0 });
  if (!report.compiled) throw new Error(`the bench policy did not compile: ${JSON.stringify(report.findings)}`);
  const spec = report.compiled.container;
  const prompt = buildPrompt({ task: TASK });

  // Warm-up, untimed for the figures: the first dispatch also creates and chowns the agent's session volume
  // (which the docker-run baseline then mounts too), and the first exec of each path warms the page cache.
  // The gateway agent's first dispatch also starts its gateway container (reused by the timed runs).
  const first = { sandboxed: await runSandboxed(config), gateway: await runSandboxed(config, `${agent}-gw`), docker_run: await runDocker(spec, prompt), bare: await runBare(prompt, repo) };
  // The first warm dispatch of each agent runs cold and asks the pool for a sandbox for the next one.
  first.warm_fill = await runSandboxed(warmConfig, `${agent}-gw`);
  first.warm_open_fill = await runSandboxed(warmConfig);
  await runner.warmPool.settled();
  info(`warm-up: sandboxed ${ms(first.sandboxed)} ms (creates the session volume), gateway ${ms(first.gateway)} ms (starts the gateway), docker-run ${ms(first.docker_run)} ms, bare ${ms(first.bare)} ms`);

  const times = { bare: [], sandboxed: [], gateway: [], docker_run: [], warm: [], warm_open: [] };
  const modes = {
    bare: () => runBare(prompt, repo),
    sandboxed: () => runSandboxed(config),
    gateway: () => runSandboxed(config, `${agent}-gw`),
    docker_run: () => runDocker(spec, prompt),
    warm: () => runWarm(warmConfig, `${agent}-gw`),
    warm_open: () => runWarm(warmConfig, agent),
  };
  const order = Object.keys(modes);
  for (let i = 0; i < opts.runs; i++) {
    // Interleaved, with the order rotated each round, so drift on a shared machine hits every mode alike.
    for (let k = 0; k < order.length; k++) {
      if (stopping) throw new Error('interrupted');
      const mode = order[(i + k) % order.length];
      times[mode].push(await modes[mode]());
    }
    info(`round ${i + 1}/${opts.runs}: ${order.map((m) => `${m} ${ms(times[m].at(-1))}`).join(', ')}`);
  }

  const s = Object.fromEntries(Object.entries(times).map(([mode, xs]) => [mode, stats(xs)]));
  const pairedOverhead = stats(times.sandboxed.map((t, i) => t - times.bare[i]));
  const summary = {
    runs: opts.runs,
    image: opts.image,
    note: 'warm = gateway policy served from the warm pool; p95 over few runs is close to the max',
    bare_ms: round(s.bare),
    sandboxed_ms: round(s.sandboxed),
    gateway_ms: round(s.gateway),
    docker_run_ms: round(s.docker_run),
    warm_ms: round(s.warm),
    warm_open_ms: round(s.warm_open),
    warm_over_bare: { p50: ratio(s.warm.p50, s.bare.p50), p95: ratio(s.warm.p95, s.bare.p95) },
    warm_over_bare_paired: round(stats(times.warm.map((t, i) => t / times.bare[i]))),
    gateway_over_open_paired_ms: round(stats(times.gateway.map((t, i) => t - times.sandboxed[i]))),
    gateway_over_docker_run: { p50: ratio(s.gateway.p50, s.docker_run.p50), p95: ratio(s.gateway.p95, s.docker_run.p95) },
    overhead_ms: { p50: ms(s.sandboxed.p50 - s.bare.p50), p95: ms(s.sandboxed.p95 - s.bare.p95) },
    overhead_paired_ms: round(pairedOverhead),
    sandboxed_over_docker_run: { p50: ratio(s.sandboxed.p50, s.docker_run.p50), p95: ratio(s.sandboxed.p95, s.docker_run.p95) },
    sandboxed_over_bare_p50: ratio(s.sandboxed.p50, s.bare.p50),
    targets: {
      warm_below_bare_p50: s.warm.p50 / s.bare.p50 < 1,
      warm_stretch_half_of_bare_p50: s.warm.p50 / s.bare.p50 <= 0.5,
      cold_within_1_2x_docker_run: s.sandboxed.p50 / s.docker_run.p50 <= 1.2,
    },
    warmup_ms: round(first),
    samples_ms: Object.fromEntries(Object.entries(times).map(([mode, xs]) => [mode, xs.map(ms)])),
  };

  if (opts.json) {
    console.log(JSON.stringify(summary, null, 2));
    return;
  }
  const row = (name, p50, p95) => `${name.padEnd(34)} ${String(p50).padStart(9)} ${String(p95).padStart(9)}`;
  console.log(`dispatch overhead, ${opts.runs} run(s) per mode, image ${opts.image}`);
  console.log(row('', 'p50 ms', 'p95 ms'));
  console.log(row('bare claude -p (host subprocess)', ms(s.bare.p50), ms(s.bare.p95)));
  console.log(row('sandboxed (DispatchService)', ms(s.sandboxed.p50), ms(s.sandboxed.p95)));
  console.log(row('sandboxed behind the gateway', ms(s.gateway.p50), ms(s.gateway.p95)));
  console.log(row('docker run (same image + flags)', ms(s.docker_run.p50), ms(s.docker_run.p95)));
  console.log(row('warm pool, behind the gateway', ms(s.warm.p50), ms(s.warm.p95)));
  console.log(row('warm pool, open network', ms(s.warm_open.p50), ms(s.warm_open.p95)));
  console.log(row('overhead (sandboxed - bare)', summary.overhead_ms.p50, summary.overhead_ms.p95));
  console.log(row('overhead, paired per round', summary.overhead_paired_ms.p50, summary.overhead_paired_ms.p95));
  console.log(row('sandboxed - docker run', ms(s.sandboxed.p50 - s.docker_run.p50), ms(s.sandboxed.p95 - s.docker_run.p95)));
  console.log(row('ratio sandboxed / docker run', summary.sandboxed_over_docker_run.p50, summary.sandboxed_over_docker_run.p95));
  console.log(row('ratio sandboxed / bare', summary.sandboxed_over_bare_p50, ''));
  console.log(row('gateway - open, paired per round', summary.gateway_over_open_paired_ms.p50, summary.gateway_over_open_paired_ms.p95));
  console.log(row('ratio gateway / docker run', summary.gateway_over_docker_run.p50, summary.gateway_over_docker_run.p95));
  console.log(`targets: warm p50 below bare: ${summary.targets.warm_below_bare_p50 ? 'yes' : 'NO'} (stretch <= 0.5: ${summary.targets.warm_stretch_half_of_bare_p50 ? 'yes' : 'no'}); cold within 1.2x of docker run: ${summary.targets.cold_within_1_2x_docker_run ? 'yes' : 'NO'} (p50 ratio ${summary.sandboxed_over_docker_run.p50})`);
  console.log(`warm p50 ms: ${ms(s.warm.p50)}`);
  console.log(`bare p50 ms: ${ms(s.bare.p50)}`);
  console.log(`warm/bare p50 ratio: ${summary.warm_over_bare.p50}`);
  console.log(`warm p95 ms: ${ms(s.warm.p95)}`);
  console.log(`bare p95 ms: ${ms(s.bare.p95)}`);
  console.log(`warm/bare p95 ratio: ${summary.warm_over_bare.p95}`);
}

await runMain(main, cleanup);
