#!/usr/bin/env node
// repo: overlay vs repo: ro, the sandbox's own cost per dispatch, against the built code (run `npm run build`
// first), on generated repos of ~50 MB and ~500 MB (many small files in nested directories plus a few big ones):
//   ro       runDispatch with the repo bind-mounted read-only
//   overlay  runDispatch with the per-dispatch kernel overlay: upper/work dirs made, the anonymous overlay volume
//            mounted, the agent's one-line edit in a subdirectory, then on the host the upper dir read back (one
//            helper container for the merged view of the changed directory), the patch built, the dirs removed
// Both go through the real dispatcher and SandboxRunner (policy compile, session volume, hardened container
// create/attach/start/remove); claude is replaced by a shell command that reads the prompt, does its one step
// and prints a result event, so the figures are the sandbox's cost, not the model's. Two figures per run:
//   setup    from the dispatch call to the agent's first output line (what stands before claude's first step)
//   total    the whole dispatch, the overlay's read-back and patch included
// Runs are interleaved (ro, overlay, overlay, ro, ...) and the median of N is printed per case, with the ratios.
//
//   node bench/overlay.mjs [--runs N] [--sizes 50,500] [--image NAME] [--json]
//
// Every container and volume it creates carries agent-dispatch.test=bench-<random> and agent-dispatch.test-run
// (benchLabels in bench/lib.mjs) and is removed at the end (also on failure or Ctrl-C), with the generated
// repos. Nothing is ever pulled.
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import Docker from 'dockerode';
import { stringify } from 'yaml';
import { loadConfig, requireConfig } from '../dist/config/load.js';
import { runDispatch } from '../dist/dispatch/dispatcher.js';
import { dockerOptions } from '../dist/sandbox/engine-calls.js';
import { createSandboxRunner } from '../dist/sandbox/runner.js';
import { openNetworkPolicy } from '../dist/selftest/open-policy.js';
import { benchLabels, cleanupOnSignals, removeRun } from './lib.mjs';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    sizes: { type: 'string', default: '50,500' },
    image: { type: 'string', default: 'agent-dispatch/agent:test' },
    json: { type: 'boolean', default: false },
  },
});
const runs = Number(values.runs);
const sizes = values.sizes.split(',').map(Number);
const info = (line) => process.stderr.write(`${line}\n`);

const docker = new Docker(dockerOptions(process.env));
await docker.getImage(values.image).inspect().catch((error) => {
  throw new Error(`image ${values.image} is not present locally (this benchmark never pulls): ${error.message}`);
});
const runId = `bench-${randomBytes(4).toString('hex')}`;
const labels = benchLabels(runId);
const label = `agent-dispatch.test=${runId}`;
const root = mkdtempSync(join(tmpdir(), 'ad-bench-overlay-'));
const cleanup = () => removeRun(docker, label, root, info);
cleanupOnSignals(cleanup, info);

const RESULT = JSON.stringify({ type: 'result', subtype: 'success', is_error: false, result: 'ok', session_id: '00000000-0000-4000-8000-000000000001', num_turns: 1, total_cost_usd: 0 });
/** What stands in for claude: read the prompt, do one step in the repo, print a result event. */
const STEPS = {
  ro: `cat >/dev/null; test -r src/d0/f0.txt; echo '${RESULT}'`,
  overlay: `cat >/dev/null; echo edited >> src/d0/f0.txt; echo '${RESULT}'`,
};

/** A repo of `mb` MB: small files (1-8 KB) spread over nested directories, plus a few big random files. */
function generateRepo(dir, mb) {
  const smallCount = mb >= 500 ? 10_000 : 5_000;
  let bytes = 0;
  for (let i = 0; i < smallCount; i += 1) {
    const sub = join(dir, 'src', `d${i % 100}`, `e${i % 7}`);
    if (i < 700) mkdirSync(sub, { recursive: true });
    const size = 1024 + ((i * 7919) % 7168);
    writeFileSync(join(sub, `f${i}.txt`), randomBytes(size / 2).toString('hex'));
    bytes += size;
  }
  mkdirSync(join(dir, 'src', 'd0'), { recursive: true });
  writeFileSync(join(dir, 'src', 'd0', 'f0.txt'), 'first\n');
  mkdirSync(join(dir, 'assets'));
  const big = Math.max(1, Math.round((mb * 1024 * 1024 - bytes) / (8 * 1024 * 1024)));
  const each = Math.floor((mb * 1024 * 1024 - bytes) / big);
  for (let i = 0; i < big; i += 1) writeFileSync(join(dir, 'assets', `blob${i}.bin`), randomBytes(each));
  if (process.getuid?.() === 0) chownTree(dir);
  return { files: smallCount + 1 + big, bytes: bytes + big * each };
}

function chownTree(path) {
  chownSync(path, 1000, 1000);
  if (!statSync(path).isDirectory()) return;
  for (const name of readdirSync(path)) chownTree(join(path, name));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = [];

try {
  const runner = createSandboxRunner({ runDir: join(root, 'run'), extraLabels: labels }, process.env);
  // The real runner, with claude's argv swapped for the step of the mode.
  let firstLine;
  const sandboxFor = (mode) => ({
    run: (r) =>
      runner.run({
        ...r,
        cmd: ['/bin/sh', '-c', STEPS[mode]],
        warm: undefined,
        onStdoutLine: (line) => {
          firstLine ??= performance.now();
          r.onStdoutLine?.(line);
        },
      }),
    overlay: runner.overlay,
  });
  for (const mb of sizes) {
    const caseRoot = join(root, `repo-${mb}`);
    mkdirSync(caseRoot);
    const repo = join(caseRoot, 'repo');
    mkdirSync(repo);
    const made = generateRepo(repo, mb);
    const configDir = join(caseRoot, 'config');
    mkdirSync(join(configDir, 'policies'), { recursive: true });
    for (const mode of ['ro', 'overlay']) writeFileSync(join(configDir, 'policies', `${mode}.yaml`), stringify(openNetworkPolicy(values.image, { repo: mode, description: `bench: repo ${mode}` })));
    const configPath = join(configDir, 'agents.yaml');
    writeFileSync(configPath, stringify({ agents: { ro: { directory: repo, policy: 'ro' }, overlay: { directory: repo, policy: 'overlay' } }, groups: {}, settings: { warm_pool: 0 } }), { mode: 0o600 });
    const env = { PATH: process.env.PATH, HOME: root, AGENT_DISPATCH_CONFIG: configPath, ANTHROPIC_API_KEY: 'sk-bench-dummy', ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}) };
    const config = requireConfig(loadConfig(configPath));
    const times = { ro: { setup: [], total: [] }, overlay: { setup: [], total: [] } };
    const dispatch = async (mode) => {
      firstLine = undefined;
      const started = performance.now();
      const result = await runDispatch({ config, configDir, env, sandbox: sandboxFor(mode) }, { agent: mode, task: 'bench' });
      const total = performance.now() - started;
      if (!result.success) throw new Error(`${mode} dispatch failed: ${result.error} ${result.hint ?? ''}`);
      if (mode === 'overlay' && !String(result.patch).includes('+edited')) throw new Error(`the overlay dispatch returned no patch of its edit: ${JSON.stringify(result).slice(0, 500)}`);
      return { setup: firstLine - started, total };
    };
    // One of each first: the session volume is made and the image's layers are warm.
    await dispatch('ro');
    await dispatch('overlay');
    for (let i = 0; i < runs; i += 1) {
      for (const mode of i % 2 === 0 ? ['ro', 'overlay'] : ['overlay', 'ro']) {
        const t = await dispatch(mode);
        times[mode].setup.push(t.setup);
        times[mode].total.push(t.total);
      }
    }
    const m = (mode, what) => Math.round(median(times[mode][what]));
    const line = { size_mb: Math.round(made.bytes / 1024 / 1024), files: made.files, runs };
    for (const mode of ['ro', 'overlay']) line[mode] = { setup_ms: m(mode, 'setup'), total_ms: m(mode, 'total') };
    line.ratio = { setup: Number((line.overlay.setup_ms / line.ro.setup_ms).toFixed(2)), total: Number((line.overlay.total_ms / line.ro.total_ms).toFixed(2)) };
    results.push(line);
    if (!values.json) {
      for (const mode of ['ro', 'overlay']) {
        console.log(`repo ${line.size_mb} MB, ${line.files} files  ${mode.padEnd(7)}  setup ${String(line[mode].setup_ms).padStart(5)} ms  total ${String(line[mode].total_ms).padStart(5)} ms  (median of ${runs})`);
      }
      console.log(`repo ${line.size_mb} MB: overlay/ro  setup ${line.ratio.setup}x  total ${line.ratio.total}x`);
    }
  }
  if (values.json) console.log(JSON.stringify(results, null, 2));
  await runner.shutdown();
} finally {
  await cleanup();
}
