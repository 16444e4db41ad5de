/**
 * A FAKE sandbox for unit tests of the dispatcher and the MCP tools: it records every run it is asked for and
 * answers with scripted outcomes instead of starting a container. Plus the stream-json lines claude prints,
 * to script those outcomes with.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Sandbox } from '../../src/dispatch/dispatcher.js';
import type { OverlayEngine } from '../../src/dispatch/overlay.js';
import type { MountSpec } from '../../src/policy/container-spec.js';
import { overlayMount, type OverlayDirs } from '../../src/sandbox/overlay-volume.js';
import type { SandboxOutcome, SandboxRun } from '../../src/sandbox/runner.js';

/** What one sandbox run does; `index` counts the runs from 0. */
export type Script = (run: SandboxRun, index: number) => SandboxOutcome | Promise<SandboxOutcome>;

export class FakeSandbox implements Sandbox {
  readonly runs: SandboxRun[] = [];
  /** What the next runs do; the last one repeats. With none, a run ends with exit 0 and no output. */
  scripts: Script[];

  constructor(...scripts: Script[]) {
    this.scripts = scripts;
  }

  /** Jobs whose containers a cancel asked to remove. */
  readonly removedJobs: string[] = [];

  /** `repo: overlay` runs: a fake engine (overlayEdits plays the agent); undefined = a sandbox without one. */
  overlay: OverlayEngine | undefined = new FakeOverlayEngine();

  async removeJobContainers(job: string): Promise<number> {
    this.removedJobs.push(job);
    return 0;
  }

  async run(run: SandboxRun): Promise<SandboxOutcome> {
    const index = this.runs.length;
    this.runs.push(run);
    const script = this.scripts[Math.min(index, this.scripts.length - 1)] ?? (() => outcome());
    return script(run, index);
  }

  get last(): SandboxRun {
    const run = this.runs.at(-1);
    if (!run) throw new Error('the sandbox was never called');
    return run;
  }
}

export function outcome(fields: Partial<SandboxOutcome> = {}): SandboxOutcome {
  return { exitCode: 0, stdoutLines: [], stdoutTruncated: false, stderr: '', timedOut: false, cancelled: false, containerId: 'c0ffee', imageId: 'sha256:1', ...fields };
}

/** claude's final `result` event: by default a success with the answer 'Hello from the agent'. */
export function resultLine(fields: Record<string, unknown> = {}): string {
  return JSON.stringify({
    type: 'result',
    subtype: 'success',
    is_error: false,
    result: 'Hello from the agent',
    session_id: '367475b8-0000-4000-8000-000000000001',
    num_turns: 1,
    duration_ms: 291,
    duration_api_ms: 57,
    total_cost_usd: 0.00054,
    permission_denials: [],
    ...fields,
  });
}

export const INIT_LINE = JSON.stringify({ type: 'system', subtype: 'init', session_id: 's', tools: ['Bash'], mcp_servers: [] });

/** An assistant message with the text 'Let me look.' and a Bash tool call. */
export const ASSISTANT_LINE = JSON.stringify({
  type: 'assistant',
  message: {
    id: 'msg_1',
    role: 'assistant',
    content: [
      { type: 'text', text: 'Let me look.' },
      { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'ls' } },
    ],
  },
  parent_tool_use_id: null,
  session_id: 's',
});

/** A sandbox run that succeeds with a result line (and feeds every line through onStdoutLine, as the runner does). */
export function succeeds(lines: string[] = [INIT_LINE, resultLine()], extra: Partial<SandboxOutcome> = {}): Script {
  return (run) => {
    for (const line of lines) run.onStdoutLine?.(line);
    return outcome({ stdoutLines: lines, ...extra });
  };
}

/** A run that prints an assistant line, then waits until released (answering 'gated answer') or aborted. */
export function gate(): { script: Script; release: () => void; started: Promise<SandboxRun> } {
  let release!: () => void;
  let started!: (run: SandboxRun) => void;
  const released = new Promise<void>((r) => (release = r));
  const startedP = new Promise<SandboxRun>((r) => (started = r));
  const script: Script = async (run) => {
    run.onStdoutLine?.(ASSISTANT_LINE);
    started(run);
    const aborted = new Promise<'aborted'>((r) => run.signal?.addEventListener('abort', () => r('aborted'), { once: true }));
    if ((await Promise.race([released.then(() => 'released' as const), aborted])) === 'aborted') return outcome({ exitCode: 137, cancelled: true });
    run.onStdoutLine?.(resultLine({ result: 'gated answer' }));
    return outcome({ stdoutLines: [resultLine({ result: 'gated answer' })] });
  };
  return { script, release, started: startedP };
}

/** A policy for tool-layer tests over the fake sandbox: open network, read-only repo, the unit image (never pulled). */
export const UNIT_OPEN_POLICY = {
  version: 1,
  repo: 'ro',
  credentials: 'env',
  network: { mode: 'open' },
  env: { pass: [], set: {} },
  tools: { permission_mode: 'default', allow: null, deny: [] },
  resources: { memory: '1g', cpus: 1, pids: 256, nofile: 1024, tmp_size: '64m', timeout: 600 },
  image: 'agent-dispatch/agent:unit',
};

/**
 * A fake overlay engine: the real mount spec; the merged view of a directory is its lower and upper names
 * together (no opaque directory), unless `merged` says otherwise; `refuse` makes the engine check fail.
 */
export class FakeOverlayEngine implements OverlayEngine {
  readonly calls: string[] = [];
  merged: ((dir: string, dirs: OverlayDirs) => string[]) | undefined;

  constructor(private readonly refuse?: Error) {}

  async check(): Promise<void> {
    this.calls.push('check');
    if (this.refuse) throw this.refuse;
  }

  mount(target: string, dirs: OverlayDirs, labels: Record<string, string>): MountSpec {
    return overlayMount(target, dirs, labels);
  }

  async listMerged(_target: unknown, dirs: OverlayDirs, _listFile: string, names: string[]): Promise<Map<string, string[]>> {
    this.calls.push(`list ${names.join(',')}`);
    const seen = (n: string) => this.merged?.(n, dirs) ?? [...new Set([...readdirSync(join(dirs.lower, n)), ...readdirSync(join(dirs.upper, n))])];
    return new Map(names.map((n) => [n, seen(n)]));
  }

  async removeContents(): Promise<void> {
    this.calls.push('remove');
  }
}

/** The overlay mount of a run and the upper and work dirs it gives the kernel. */
export function overlayDirsOf(run: SandboxRun): { upper: string; work: string; mount: MountSpec } {
  const mount = run.spec.HostConfig.Mounts.find((m) => m.VolumeOptions?.DriverConfig?.Options['type'] === 'overlay');
  if (!mount) throw new Error('the run has no overlay mount');
  const o = mount.VolumeOptions!.DriverConfig!.Options['o']!;
  const field = (name: string) => new RegExp(`(?:^|,)${name}=([^,]*)`).exec(o)![1]!;
  return { upper: field('upperdir'), work: field('workdir'), mount };
}

/** Play the agent and the kernel of an overlay run: make work/work, write these files into the upper dir, then answer. */
export function overlayEdits(files: Record<string, string>, lines: string[] = [INIT_LINE, resultLine({ result: 'edited' })], extra: Partial<SandboxOutcome> = {}): Script {
  return (run, index) => {
    const { upper, work } = overlayDirsOf(run);
    mkdirSync(join(work, 'work'), { recursive: true });
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(upper, path, '..'), { recursive: true });
      writeFileSync(join(upper, path), text);
    }
    return succeeds(lines, extra)(run, index);
  };
}
