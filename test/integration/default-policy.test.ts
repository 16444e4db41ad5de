/**
 * The shipped `default` policy, compiled by the real compiler and run in a real container: what the
 * container can and cannot do is checked from inside (a shell probe) and via `docker inspect`.
 *
 * The only changes to the compiled spec: Image (a local busybox base, see scripts/base-images.sh), Cmd
 * (the probe) and test labels on the container and its named volumes. Every HostConfig security field
 * is used exactly as compiled (asserted below).
 */
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentSchema, settingsSchema } from '../../src/config/schema.js';
import { compileSandbox, loadPolicy, policySchema, type CompiledSandbox, type CompileInput, type Policy } from '../../src/policy/index.js';
import {
  BUSYBOX_IMAGE,
  cleanupTestResources,
  dockerClient,
  removeVolumes,
  requireLocalImage,
  runContainer,
  skipDocker,
  testLabels,
  testRunId,
  type RunResult,
} from '../helpers/docker.js';
import { prepareStateVolume } from '../../src/sandbox/state-volume.js';
import { namedVolumes, testContainerOptions } from '../helpers/compiled.js';

const TIMEOUT = 60_000;
const SECRET_NAME = 'AGENT_DISPATCH_TEST_SECRET';

/** Split the probe's output into sections: lines `@@name` start a section. */
function sections(stdout: string): Record<string, string> {
  const result: Record<string, string> = {};
  let current = '';
  for (const line of stdout.split('\n')) {
    const header = /^@@(\w+)$/.exec(line);
    if (header) {
      current = header[1]!;
      result[current] = '';
    } else if (current) {
      result[current] += `${line}\n`;
    }
  }
  for (const key of Object.keys(result)) result[key] = result[key]!.trim();
  return result;
}

function statusField(status: string, name: string): string | undefined {
  return new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(status)?.[1];
}

function makeRepo(prefix: string): string {
  const repo = mkdtempSync(join('/tmp', prefix));
  writeFileSync(join(repo, 'README.md'), 'repo-file-content\n', { mode: 0o644 });
  chmodSync(repo, 0o755);
  return repo;
}

function baseInput(agentName: string, repo: string, policy: Policy, policyHash: string, extra: Partial<CompileInput> = {}): CompileInput {
  return {
    agentName,
    agent: agentSchema.parse({ directory: repo, policy: 'default' }),
    settings: settingsSchema.parse({}),
    policy,
    policyRef: 'default',
    policyHash,
    hostEnv: { ...process.env },
    depth: 0,
    ...extra,
  };
}

describe.skipIf(skipDocker)('default policy in a real container', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const agentName = `itest-${runId}`;
  const secret = `s3cret-${randomBytes(8).toString('hex')}`;
  let repo = '';
  let configDir = '';
  let compiled: CompiledSandbox;
  let options: Docker.ContainerCreateOptions;
  let run: RunResult;
  let probe: Record<string, string> = {};

  beforeAll(async () => {
    await requireLocalImage(docker, BUSYBOX_IMAGE);
    process.env[SECRET_NAME] = secret;
    repo = makeRepo('agent-dispatch-itest-ro-');
    // An empty config dir, so a user's own policies/default.yaml cannot shadow the shipped preset.
    configDir = mkdtempSync(join('/tmp', 'agent-dispatch-itest-config-'));
    const loaded = loadPolicy('default', configDir);
    if (loaded.kind !== 'ok') throw new Error(`the default preset did not load: ${JSON.stringify(loaded)}`);
    expect(loaded.source.preset).toBe(true);
    compiled = compileSandbox(baseInput(agentName, repo, loaded.policy, loaded.hash));
    options = testContainerOptions(compiled, BUSYBOX_IMAGE, ['/bin/sh', '-c', probeScript(repo)], runId);
    // The runner gives a new session volume to the container user before the first dispatch (NoCopy mounts).
    await prepareStateVolume(docker, { ...compiled.container, Image: BUSYBOX_IMAGE }, { uid: 1000, gid: 1000 }, testLabels(runId));
    run = await runContainer(docker, options);
    probe = sections(run.stdout);
  }, TIMEOUT);

  afterAll(async () => {
    delete process.env[SECRET_NAME];
    if (compiled) await removeVolumes(docker, namedVolumes(compiled));
    await cleanupTestResources(docker, runId);
    if (repo) rmSync(repo, { recursive: true, force: true });
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  }, TIMEOUT);

  it('runs the probe to the end', () => {
    expect(run.stderr, run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(probe['end']).toBe('');
  });

  it('changes nothing in HostConfig but the test labels on named volumes', () => {
    const sent = structuredClone(options.HostConfig) as unknown as CompiledSandbox['container']['HostConfig'];
    for (const m of sent.Mounts) for (const key of Object.keys(testLabels(runId))) delete m.VolumeOptions?.Labels?.[key];
    expect(sent).toEqual(compiled.container.HostConfig);
    expect(compiled.network.mode).toBe('gateway');
    expect(namedVolumes(compiled)).toHaveLength(2);
  });

  it('mounts the repo read-only', () => {
    expect(probe['touch_repo']).toMatch(/Read-only file system/);
    expect(probe['touch_repo']).toMatch(/rc=1$/);
    expect(existsSync(join(repo, 'x'))).toBe(false);
  });

  it('has a read-only root filesystem', () => {
    expect(probe['touch_root']).toMatch(/Read-only file system/);
    expect(probe['touch_etc']).toMatch(/Read-only file system/);
  });

  it('mounts the gateway socket volume read-only', () => {
    expect(probe['touch_gateway']).toMatch(/Read-only file system/);
  });

  it('runs as uid/gid 1000, never root', () => {
    expect(probe['uid']).toBe('1000');
    expect(probe['gid']).toBe('1000');
  });

  it('has no capabilities at all', () => {
    expect(statusField(probe['status'] ?? '', 'CapEff')).toBe('0000000000000000');
    expect(statusField(probe['status'] ?? '', 'CapBnd')).toBe('0000000000000000');
    expect(statusField(probe['status'] ?? '', 'CapPrm')).toBe('0000000000000000');
  });

  it('sets no_new_privs', () => {
    expect(statusField(probe['status'] ?? '', 'NoNewPrivs')).toBe('1');
  });

  it('does not leak a server environment variable into the container', () => {
    expect(process.env[SECRET_NAME]).toBe(secret);
    expect(compiled.container.Env.join('\n')).not.toContain(secret);
    expect(probe['env']).toMatch(/^HOME=\/home\/agent$/m); // the section is real output
    expect(probe['env']).not.toContain(SECRET_NAME);
    expect(probe['env']).not.toContain(secret);
    expect(probe['environ']).toMatch(/^HOME=\/home\/agent$/m);
    expect(probe['environ']).not.toContain(SECRET_NAME);
    expect(probe['environ']).not.toContain(secret);
    expect(run.stdout).not.toContain(secret);
  });

  it('has no network interface but loopback (gateway mode = network none)', () => {
    expect(probe['net']?.split('\n')).toEqual(['lo']);
  });

  it('can write /tmp and $HOME', () => {
    expect(probe['tmp']).toBe('tmp-ok\nrc=0');
    expect(probe['home']).toBe('home-ok\nrc=0');
  });

  it('no process can write a file past resources.max_file_size (ulimit -f)', async () => {
    const loaded = loadPolicy('default', configDir);
    if (loaded.kind !== 'ok') throw new Error('the default preset did not load');
    const small = { ...loaded.policy, resources: { ...loaded.policy.resources, max_file_size: '2m' } };
    const capped = compileSandbox(baseInput(agentName, repo, small, 'fsize'));
    const script = ['dd if=/dev/zero of=/tmp/big bs=1024 count=3000 2>&1; echo "rc=$?"', 'wc -c < /tmp/big'].join('\n');
    const result = await runContainer(docker, testContainerOptions(capped, BUSYBOX_IMAGE, ['/bin/sh', '-c', script], runId));
    expect(result.stdout).toMatch(/File size limit exceeded|rc=153/);
    expect(result.stdout.trim().split('\n').at(-1)).toBe(String(2 * 1024 * 1024));
  }, TIMEOUT);

  it('can write the Claude state volume', () => {
    expect(probe['claude']).toBe('claude-ok\nrc=0');
  });

  it('can read the repo and starts in it', () => {
    expect(probe['repo_file']).toBe('repo-file-content\nrc=0');
    expect(probe['pwd']).toBe(repo);
  });

  it('is hardened as seen by docker inspect', () => {
    const hc = run.inspect.HostConfig as Docker.HostConfig & Record<string, unknown>;
    expect(hc.ReadonlyRootfs).toBe(true);
    expect(hc.CapDrop).toEqual(['ALL']);
    expect(hc.CapAdd ?? []).toEqual([]);
    expect(hc.SecurityOpt).toContain('no-new-privileges');
    expect(hc.SecurityOpt ?? []).not.toContain('seccomp:unconfined');
    expect(hc.Privileged).toBe(false);
    expect(hc.Memory).toBeGreaterThan(0);
    expect(hc.NanoCpus).toBeGreaterThan(0);
    expect(hc.PidsLimit).toBeGreaterThan(0);
    expect(hc.Ulimits?.length).toBeGreaterThan(0);
    expect(hc.NetworkMode).toBe('none');
    expect(hc.Devices ?? []).toEqual([]);
    expect(hc.PidMode ?? '').not.toBe('host');
    expect(hc.IpcMode ?? '').not.toBe('host');
    expect(hc['UTSMode'] ?? '').not.toBe('host');
    expect(hc['UsernsMode'] ?? '').not.toBe('host');
    expect(hc.Binds ?? []).toEqual([]);

    const user = run.inspect.Config.User;
    expect(user).toBe('1000:1000');
    expect(user.split(':')[0]).not.toMatch(/^(0|root)?$/);

    const mounts = run.inspect.Mounts;
    expect(mounts.length).toBeGreaterThan(0);
    for (const m of mounts) {
      expect(`${m.Source} ${m.Destination}`).not.toMatch(/docker\.sock/);
      expect(m.Propagation ?? '').not.toMatch(/^r?shared$/);
    }
    const repoMount = mounts.find((m) => m.Destination === repo);
    expect(repoMount?.RW).toBe(false);
  });
});

describe.skipIf(skipDocker)('repo: rw policy in a real container', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const agentName = `itest-rw-${runId}`;
  const owner = { uid: 4321, gid: 4321 };
  const policy = policySchema.parse({ version: 1, repo: 'rw' });
  let repo = '';
  let compiled: CompiledSandbox | undefined;

  beforeAll(async () => {
    await requireLocalImage(docker, BUSYBOX_IMAGE);
    repo = makeRepo('agent-dispatch-itest-rw-');
    // A repo owned by a non-root user: the container runs as that owner (compile never picks root).
    chownSync(repo, owner.uid, owner.gid);
    chownSync(join(repo, 'README.md'), owner.uid, owner.gid);
  }, TIMEOUT);

  afterAll(async () => {
    if (compiled) await removeVolumes(docker, namedVolumes(compiled));
    await cleanupTestResources(docker, runId);
    if (repo) rmSync(repo, { recursive: true, force: true });
  }, TIMEOUT);

  it(
    'lets the container write the repo as the repo owner, and nothing else changes',
    async () => {
      const st = statSync(repo);
      compiled = compileSandbox(baseInput(agentName, repo, policy, 'test', { repoOwner: { uid: st.uid, gid: st.gid } }));
      expect(compiled.container.User).toBe(`${owner.uid}:${owner.gid}`);
      const script = [
        `cd '${repo}' || exit 9`,
        'echo "@@uid"; id -u',
        'echo "@@write"; echo written-by-container > from-container 2>&1; echo "rc=$?"',
        'echo "@@touch_root"; touch /x 2>&1; echo "rc=$?"',
        'echo "@@end"',
      ].join('\n');
      const run = await runContainer(docker, testContainerOptions(compiled, BUSYBOX_IMAGE, ['/bin/sh', '-c', script], runId));
      const probe = sections(run.stdout);
      expect(run.stderr, run.stderr).toBe('');
      expect(run.exitCode).toBe(0);
      expect(probe['uid']).toBe(String(owner.uid));
      expect(probe['write']).toBe('rc=0');
      expect(probe['touch_root']).toMatch(/Read-only file system/);
      expect(readFileSync(join(repo, 'from-container'), 'utf8')).toBe('written-by-container\n');
      expect(statSync(join(repo, 'from-container')).uid).toBe(owner.uid);
      expect(run.inspect.HostConfig.ReadonlyRootfs).toBe(true);
      expect(run.inspect.Mounts.find((m) => m.Destination === repo)?.RW).toBe(true);
    },
    TIMEOUT,
  );

  it('keeps uid 1000 (not root) for a root-owned repo', () => {
    const input = baseInput(`${agentName}-root`, repo, policy, 'test', { repoOwner: { uid: 0, gid: 0 } });
    const rootCompiled = compileSandbox(input);
    expect(rootCompiled.container.User).toBe('1000:1000');
    expect(rootCompiled.notes.join('\n')).toMatch(/owned by root/);
  });
});

/** A busybox sh script; each `@@name` line starts a section the test reads. */
function probeScript(repo: string): string {
  return [
    `REPO='${repo}'`,
    'sec() { echo "@@$1"; }',
    'sec touch_repo; touch "$REPO/x" 2>&1; echo "rc=$?"',
    'sec touch_root; touch /x 2>&1; echo "rc=$?"',
    'sec touch_etc; touch /etc/x 2>&1; echo "rc=$?"',
    'sec touch_gateway; touch /run/agent-dispatch/x 2>&1; echo "rc=$?"',
    'sec uid; id -u',
    'sec gid; id -g',
    'sec status; cat /proc/self/status',
    'sec env; env',
    "sec environ; cat /proc/self/environ | tr '\\0' '\\n'",
    'sec net; ls -1 /sys/class/net',
    'sec tmp; echo tmp-ok > /tmp/probe 2>&1 && cat /tmp/probe; echo "rc=$?"',
    'sec home; echo home-ok > "$HOME/probe" 2>&1 && cat "$HOME/probe"; echo "rc=$?"',
    'sec claude; echo claude-ok > "$CLAUDE_CONFIG_DIR/projects/probe" 2>&1 && cat "$CLAUDE_CONFIG_DIR/projects/probe"; echo "rc=$?"',
    'sec repo_file; cat "$REPO/README.md" 2>&1; echo "rc=$?"',
    'sec pwd; pwd',
    'sec end',
  ].join('\n');
}
