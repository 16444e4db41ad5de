/**
 * `agent-dispatch selftest` as a user runs it (the built CLI), against the test agent image; and the
 * judging of probe facts, so a weakened sandbox is shown to fail the checks it should.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseProbe, probeScript } from '../../src/selftest/probe.js';
import { judge, judgeNetwork } from '../../src/selftest/selftest.js';
import { TEST_AGENT_IMAGE, TEST_GATEWAY_IMAGE } from '../helpers/dispatch-fixture.js';
import { cleanupTestResources, dockerClient, skipDocker, TEST_LABEL, testLabelsEnv, testRunId } from '../helpers/docker.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const runId = testRunId();

function selftest(...args: string[]) {
  const run = spawnSync(process.execPath, [CLI, 'selftest', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, AGENT_DISPATCH_CONTAINER_LABELS: testLabelsEnv(runId), AGENT_DISPATCH_GATEWAY_IMAGE: TEST_GATEWAY_IMAGE, ANTHROPIC_AUTH_TOKEN: 'users-real-token', CLAUDE_CODE_OAUTH_TOKEN: 'users-real-oauth' },
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe.skipIf(skipDocker)('agent-dispatch selftest on this machine', () => {
  afterAll(async () => {
    await cleanupTestResources(dockerClient(), runId);
  });

  it('passes every check with the agent image, and leaves nothing behind; the user\'s real credentials stay out', async () => {
    const run = selftest('--image', TEST_AGENT_IMAGE, '--json');
    expect(run.status, run.stderr + run.stdout).toBe(0);
    const report = JSON.parse(run.stdout) as { ok: boolean; checks: { name: string; ok: boolean }[] };
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining(['repo is read-only', 'not root', 'no capabilities', "server's secret not in the environment", 'the API key is nowhere in the container', 'DNS does not resolve', 'host services on 0.0.0.0 unreachable']),
    );
    expect(report.checks).toHaveLength(21);
    const docker = dockerClient();
    expect(await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`] } })).toEqual([]);
    expect((await docker.listVolumes({ filters: { label: [`${TEST_LABEL}=${runId}`] } })).Volumes ?? []).toEqual([]);
  }, 120_000);

  it('prints a table and exits 1 when the image is missing, naming the command that builds it', () => {
    const run = selftest('--image', `agent-dispatch/missing-${runId}:latest`);
    expect(run.status).toBe(1);
    expect(run.stdout).toMatch(/FAIL\s+claude ran in the sandbox/);
    expect(run.stdout).toContain('agent-dispatch image build');
  }, 60_000);
});

describe('selftest judging', () => {
  const good = parseProbe(
    ['uid=1000', 'CapEff=0000000000000000', 'CapBnd=0000000000000000', 'NoNewPrivs=1', 'repo_read=readable', 'repo_write=refused', 'root_write=refused', 'secret_env=0', 'secret_proc=0', 'host_paths=absent', 'docker_sock=absent'].join('\n'),
  );
  const ok = { agent: 'a', success: true, result: '' };
  const seen = { keyArrived: true, otherCredentials: 0, leftover: 0 };

  it('a sound sandbox passes every check', () => {
    expect(judge(ok, good, seen).filter((c) => !c.ok)).toEqual([]);
  });

  it.each([
    ['repo is read-only', { repo_write: 'allowed' }],
    ['root filesystem is read-only', { root_write: 'allowed' }],
    ['not root', { uid: '0' }],
    ['no capabilities', { CapEff: '00000000a80425fb' }],
    ['no new privileges', { NoNewPrivs: '0' }],
    ["server's secret not in the environment", { secret_proc: '1' }],
    ['host files outside the repo are absent', { host_paths: 'present:/root/.config' }],
    ['no Docker socket', { docker_sock: 'present' }],
  ])('a sandbox that breaks "%s" fails exactly that check', (name, broken) => {
    const failed = judge(ok, { ...good, ...broken }, seen).filter((c) => !c.ok);
    expect(failed.map((c) => c.name)).toEqual([name]);
  });

  it('another credential reaching the model fails its check', () => {
    expect(judge(ok, good, { ...seen, otherCredentials: 1 }).filter((c) => !c.ok).map((c) => c.name)).toEqual(['only the throwaway key reached the model']);
  });

  it('a leftover container and a failed dispatch fail their checks', () => {
    expect(judge(ok, good, { ...seen, leftover: 1 }).find((c) => !c.ok)?.name).toBe('container removed after the dispatch');
    const failed = judge({ agent: 'a', success: false, result: '', error: 'boom', error_type: 'sandbox' }, undefined, seen);
    const observedOutside = ['container removed after the dispatch', 'only the throwaway key reached the model'];
    expect(failed.every((c) => observedOutside.includes(c.name) || !c.ok)).toBe(true);
  });

  it('the probe script quotes paths so a repo name cannot inject shell', () => {
    const script = probeScript({ repo: "/tmp/x'; rm -rf /; '", canary: 'c', hostPaths: [] });
    expect(script).toContain(`'/tmp/x'\\''; rm -rf /; '\\'''`);
  });
});

describe('selftest judging of the network', () => {
  const good = parseProbe(
    ['secret_in_env=0', 'secret_in_proc=0', 'secret_in_home=0', 'dns=failed:EAI_AGAIN', 'allowed_via_proxy=reached', 'denied_via_proxy=403:policy', 'direct_allowed=failed:ENETUNREACH', 'host_service=failed:ENETUNREACH', 'interfaces=lo', 'ipv6=none'].join('\n'),
  );
  const seen = { allowed: { host: '172.17.0.1', port: 1000 }, hostService: { host: '172.17.0.1', port: 2000 }, gatewaysLeft: 0 };
  const ok = { agent: 'a', success: true, result: '', egress: { allowed: 3, denied: 1, denied_hosts: ['172.17.0.1:2000'] } };

  it('a sound gateway passes every check', () => {
    expect(judgeNetwork(ok, good, seen).filter((c) => !c.ok)).toEqual([]);
  });

  it.each([
    ['the API key is nowhere in the container', { secret_in_home: '1' }],
    ['DNS does not resolve', { dns: 'resolved:93.184.216.34' }],
    ['only loopback, no IPv6 route', { interfaces: 'lo,eth0' }],
    ['only loopback, no IPv6 route', { ipv6: 'lo,eth0' }],
    ['allowlisted host reachable through the gateway', { allowed_via_proxy: 'failed:502' }],
    ['other hosts refused, with the policy reason', { denied_via_proxy: '200:other' }],
    ['other hosts refused, with the policy reason', { denied_via_proxy: '403:other' }],
    ['no direct connection, even to an allowed host', { direct_allowed: 'connected' }],
    ['host services on 0.0.0.0 unreachable', { host_service: 'connected' }],
  ])('a gateway that breaks "%s" fails exactly that check', (name, broken) => {
    expect(judgeNetwork(ok, { ...good, ...broken }, seen).filter((c) => !c.ok).map((c) => c.name)).toEqual([name]);
  });

  it('no refusal in the egress summary, or a gateway left running, fail their checks', () => {
    expect(judgeNetwork({ ...ok, egress: { allowed: 3, denied: 0, denied_hosts: [] } }, good, seen).filter((c) => !c.ok).map((c) => c.name)).toEqual(['the gateway reported the refusal']);
    expect(judgeNetwork(ok, good, { ...seen, gatewaysLeft: 1 }).filter((c) => !c.ok).map((c) => c.name)).toEqual(['gateway removed at shutdown']);
  });
});
