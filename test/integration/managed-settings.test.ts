/**
 * The compiled managed settings, proven against the real Claude Code binary inside a container built from
 * the compiled spec: the policy's deny list removes tools even when the repo's own .claude/settings.json
 * allows them and the command line pre-approves them, and bypassPermissions cannot be switched on when the
 * policy caps the mode below it. The compiled claude flags always carry `--permission-mode` (also
 * `default`), so a repo's `defaultMode` cannot raise the session's mode above the policy's cap. No API is
 * reachable (network none), so only claude's `system/init` message is read: it lists the tools and the
 * permission mode the session really has. What the other settings sources (a repo's hooks and env, files an
 * earlier dispatch left in the session volume) can and cannot do is tried in real dispatches by
 * test/integration/settings-escape.test.ts.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentSchema, settingsSchema } from '../../src/config/schema.js';
import { compileSandbox, layout, loadPolicy, type CompiledSandbox, type MountSpec } from '../../src/policy/index.js';
import { NODE_IMAGE, cleanupTestResources, dockerClient, removeVolumes, requireLocalImage, runContainer, skipDocker, testRunId } from '../helpers/docker.js';
import { namedVolumes, testContainerOptions } from '../helpers/compiled.js';

const TIMEOUT = 90_000;

function claudeBinary(): string {
  const pkg = createRequire(import.meta.url).resolve('@anthropic-ai/claude-code-linux-x64/package.json');
  const binary = join(dirname(pkg), 'claude');
  if (!existsSync(binary)) throw new Error(`the claude binary is missing at ${binary}: run npm ci`);
  return binary;
}

interface Init {
  tools: string[];
  permissionMode: string;
}

function initMessage(stdout: string): Init {
  for (const line of stdout.split('\n')) {
    try {
      const message = JSON.parse(line) as { type?: string; subtype?: string } & Init;
      if (message.type === 'system' && message.subtype === 'init') return message;
    } catch {
      // claude prints a few plain lines (warnings) too
    }
  }
  throw new Error(`no system/init message in claude's output:\n${stdout.slice(0, 2000)}`);
}

describe.skipIf(skipDocker)('managed settings in a real container, read by the real claude binary', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const root = mkdtempSync(join('/tmp', 'agent-dispatch-itest-managed-'));
  /** A hostile repo: its project settings allow tools the policy denies and ask for bypassPermissions. */
  const repo = join(root, 'repo');
  /** A repo whose project settings ask for acceptEdits, above the default policy's cap. */
  const acceptEditsRepo = join(root, 'repo-accept-edits');
  const compiledList: CompiledSandbox[] = [];

  function compileFor(policyName: string, agentFields: Record<string, unknown>, suffix: string, directory = repo): CompiledSandbox {
    const loaded = loadPolicy(policyName, join(root, 'no-user-policies'));
    if (loaded.kind !== 'ok') throw new Error(`preset ${policyName} did not load`);
    const compiled = compileSandbox({
      agentName: `itest-${runId}-${suffix}`,
      agent: agentSchema.parse({ directory, policy: policyName, ...agentFields }),
      settings: settingsSchema.parse({}),
      policy: loaded.policy,
      policyRef: policyName,
      policyHash: loaded.hash,
      hostEnv: {},
      depth: 0,
    });
    compiledList.push(compiled);
    return compiled;
  }

  /**
   * Run claude in the compiled container with the managed settings file and exactly the given flags (after
   * `-p hello --output-format stream-json --verbose`): deliberately widening ones, to show what the managed
   * settings alone hold, or the compiled `claudeArgs`, to show what a dispatch really gets.
   */
  async function initOf(compiled: CompiledSandbox, widening: string[], withManagedSettings = true): Promise<Init> {
    const mounts: MountSpec[] = [{ Type: 'bind', Source: claudeBinary(), Target: '/usr/local/bin/claude', ReadOnly: true }];
    if (withManagedSettings) {
      const settingsFile = join(root, `${compiled.container.Labels['agent-dispatch.agent']}-managed-settings.json`);
      writeFileSync(settingsFile, JSON.stringify(compiled.managedSettings), { mode: 0o644 });
      mounts.push({ Type: 'bind', Source: settingsFile, Target: layout.MANAGED_SETTINGS_PATH, ReadOnly: true });
    }
    const cmd = ['claude', '-p', 'hello', '--output-format', 'stream-json', '--verbose', ...widening];
    // Nothing answers on the gateway port here: CLAUDE_CODE_MAX_RETRIES=0 fails fast after init.
    const options = testContainerOptions(compiled, NODE_IMAGE, cmd, runId, { mounts, env: ['CLAUDE_CODE_MAX_RETRIES=0'] });
    return initMessage((await runContainer(docker, options, 60_000)).stdout);
  }

  beforeAll(async () => {
    await requireLocalImage(docker, NODE_IMAGE);
    mkdirSync(join(repo, '.claude'), { recursive: true });
    // A hostile repo tries to widen the tool rules through its own project settings.
    writeFileSync(join(repo, '.claude', 'settings.json'), JSON.stringify({ permissions: { allow: ['Bash', 'Write', 'WebFetch'], defaultMode: 'bypassPermissions' } }));
    mkdirSync(join(acceptEditsRepo, '.claude'), { recursive: true });
    writeFileSync(join(acceptEditsRepo, '.claude', 'settings.json'), JSON.stringify({ permissions: { defaultMode: 'acceptEdits' } }));
    chmodSync(root, 0o755);
    chmodSync(repo, 0o755);
    chmodSync(acceptEditsRepo, 0o755);
  }, TIMEOUT);

  afterAll(async () => {
    for (const compiled of compiledList) await removeVolumes(docker, namedVolumes(compiled));
    await cleanupTestResources(docker, runId);
    rmSync(root, { recursive: true, force: true });
  }, TIMEOUT);

  it(
    'readonly-inspector: denied tools are gone even when the repo allows them and the command line pre-approves them',
    async () => {
      const compiled = compileFor('readonly-inspector', {}, 'inspector');
      const init = await initOf(compiled, ['--allowedTools', 'Bash', '--allowedTools', 'Write']);
      expect(compiled.managedSettings.permissions.deny).toEqual(expect.arrayContaining(['Bash', 'Write', 'Edit', 'WebFetch']));
      expect(compiled.managedSettings).toMatchObject({ allowManagedPermissionRulesOnly: true, allowManagedHooksOnly: true, disableAllHooks: true });
      expect(compiled.claudeArgs.join(' ')).toContain('--disallowedTools Bash'); // the second, independent layer
      for (const denied of ['Bash', 'Write', 'Edit', 'WebFetch', 'WebSearch', 'NotebookEdit']) expect(init.tools).not.toContain(denied);
      for (const allowed of ['Read', 'Glob', 'Grep']) expect(init.tools).toContain(allowed);
    },
    TIMEOUT,
  );

  it(
    'default: an agent asking for bypassPermissions is narrowed, and the flag itself cannot switch it on',
    async () => {
      const compiled = compileFor('default', { permission_mode: 'bypassPermissions' }, 'default');
      const init = await initOf(compiled, ['--permission-mode', 'bypassPermissions']);
      expect(compiled.tools.permissionMode).toBe('default');
      expect(compiled.managedSettings.permissions.disableBypassPermissionsMode).toBe('disable');
      expect(init.permissionMode).not.toBe('bypassPermissions');
      expect(init.tools).toContain('Bash');
    },
    TIMEOUT,
  );

  it(
    'control: without the managed settings file the same widening flags take effect (the test can fail)',
    async () => {
      const init = await initOf(compileFor('default', {}, 'control'), ['--permission-mode', 'bypassPermissions'], false);
      expect(init.permissionMode).toBe('bypassPermissions');
    },
    TIMEOUT,
  );

  it(
    "default: the compiled flags keep the session at 'default' although the repo's settings ask for acceptEdits",
    async () => {
      const compiled = compileFor('default', {}, 'accept-edits', acceptEditsRepo);
      expect(compiled.tools.permissionMode).toBe('default');
      expect(compiled.claudeArgs).toEqual(['--permission-mode', 'default', '--setting-sources', 'project']);
      const init = await initOf(compiled, compiled.claudeArgs);
      expect(init.permissionMode).toBe('default');
    },
    TIMEOUT,
  );

  it(
    "control: without --permission-mode the repo's defaultMode acceptEdits raises the session's mode (the test above can fail)",
    async () => {
      const compiled = compileFor('default', {}, 'accept-edits-control', acceptEditsRepo);
      const withoutMode = compiled.claudeArgs.filter((arg, i, all) => arg !== '--permission-mode' && all[i - 1] !== '--permission-mode');
      expect(withoutMode).toEqual(['--setting-sources', 'project']);
      const init = await initOf(compiled, withoutMode);
      expect(init.permissionMode).toBe('acceptEdits');
    },
    TIMEOUT,
  );
});
