/**
 * `agent-dispatch test` as a user runs it: the built CLI dispatches into the test agent image, where the
 * real claude talks to the scripted fake model.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '../../src/sandbox/owner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { CLI, createBuiltFixture, gatewayTestPolicy, openTestPolicy, type Fixture } from '../helpers/dispatch-fixture.js';
import { cleanupTestResources, dockerClient, skipDocker, TEST_LABEL, testRunId } from '../helpers/docker.js';

const TIMEOUT = 90_000;

describe.skipIf(skipDocker)('agent-dispatch test NAME [TASK]', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const agent = `cli-${runId}`;
  let fx: Fixture;

  beforeAll(async () => {
    fx = await createBuiltFixture(docker, runId);
    fx.policy('open-test', openTestPolicy());
    fx.policy('gateway-test', gatewayTestPolicy());
    fx.agents({ [agent]: { directory: fx.repo('tool'), policy: 'open-test' }, [`${agent}-gw`]: { directory: fx.repo('tool'), policy: 'gateway-test' } });
  }, TIMEOUT);

  afterAll(async () => {
    await cleanupTestResources(docker, runId);
    await fx?.close();
  }, TIMEOUT);

  function cli(args: string[], onStderr?: (text: string, kill: () => void) => void, env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], { env: { ...fx.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        onStderr?.(stderr, () => child.kill('SIGINT'));
      });
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  }

  it('prints the answer and the cost, exit 0', async () => {
    const run = await cli(['test', agent, DIRECTIVE.reply('the cli answer')]);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain(`Dispatching to '${agent}'`);
    expect(run.stdout).toContain('the cli answer');
    expect(run.stdout).toMatch(/--- Cost: \$\d+\.\d{4} \| Turns: \d+/);
  }, TIMEOUT);

  it('--stream prints live progress on stderr', async () => {
    const run = await cli(['test', agent, DIRECTIVE.bash('echo from-bash'), '--stream']);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stderr).toContain('  -> Using tool: Bash');
    expect(run.stdout).toContain('from-bash');
  }, TIMEOUT);

  it('behind the egress gateway: the answer and the egress line, exit 0', async () => {
    const run = await cli(['test', `${agent}-gw`, DIRECTIVE.reply('through the gateway')]);
    expect(run.status, run.stderr + run.stdout).toBe(0);
    expect(run.stdout).toContain('through the gateway');
    expect(run.stdout).toMatch(/--- Egress: \d+ allowed, 0 refused by policy/);
  }, TIMEOUT);

  it('a failure prints the error and a diagnosis, exit 1 (a server with no credential for the gateway to add)', async () => {
    const run = await cli(['test', `${agent}-gw`, 'x'], undefined, { ANTHROPIC_API_KEY: '' });
    expect(run.status).toBe(1);
    expect(run.stdout).toContain("Error: The egress gateway for agent '");
    expect(run.stdout).toContain('Diagnosis: sandbox');
    expect(run.stdout).toContain('CLAUDE_CODE_OAUTH_TOKEN');
  }, TIMEOUT);

  it('--timeout is a one-off timeout; a timeout says how to resume', async () => {
    const run = await cli(['test', agent, DIRECTIVE.bash('sleep 60'), '--timeout', '10']);
    expect(run.status).toBe(1);
    expect(run.stdout).toContain('timed out after 10s');
    expect(run.stdout).toContain('Diagnosis: timeout');
  }, TIMEOUT);

  it('Ctrl-C kills the dispatch container before the CLI exits', async () => {
    let signalled = false;
    const run = await cli(['test', agent, DIRECTIVE.bash('sleep 120'), '--stream'], (text, kill) => {
      if (!signalled && text.includes('Using tool: Bash')) {
        signalled = true;
        kill();
      }
    });
    expect(signalled).toBe(true);
    expect(run.status).toBe(1);
    expect(run.stdout).toContain('cancelled');
    const left = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`, LABELS.job] } });
    expect(left).toEqual([]);
  }, TIMEOUT);
});
