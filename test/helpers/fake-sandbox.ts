/**
 * A FAKE sandbox for unit tests of the dispatcher and the MCP tools: it records every run it is asked for and
 * answers with scripted outcomes instead of starting a container. Plus the stream-json lines claude prints,
 * to script those outcomes with.
 */
import type { Sandbox } from '../../src/dispatch/dispatcher.js';
import { OVERLAY_PATCH_BEGIN, OVERLAY_PATCH_END } from '../../src/dispatch/overlay.js';
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

/** The lines the overlay wrapper prints for a patch: the markers around its base64, 76 characters a line. */
export function overlayPatchLines(patch: string): string[] {
  return [OVERLAY_PATCH_BEGIN, ...(Buffer.from(patch).toString('base64').match(/.{1,76}/g) ?? []), OVERLAY_PATCH_END];
}
