/**
 * The agent image (images/agent/Dockerfile) built for real through dockerode, from the local base images
 * (scripts/base-images.sh); nothing is pulled. A tiny fake `claude` keeps most builds fast; one build bakes
 * in the real native binary and runs it hardened (read-only root, uid 1000, no capabilities, no network).
 * Every image built here has a per-run tag and the test labels (`testLabels`), and is removed in afterAll.
 * The CLI half runs `node dist/cli.js` (`npm test` builds first; run `npm run build` before this file alone).
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { AppError } from '../../src/errors.js';
import { buildAgentImage, DEFAULT_CLAUDE_VERSION } from '../../src/sandbox/image.js';
import { BUSYBOX_IMAGE, NODE_IMAGE, cleanupTestResources, dockerClient, removeVolumes, requireLocalImage, runContainer, skipDocker, testLabels, testRunId } from '../helpers/docker.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');
const BUILD_TIMEOUT = 180_000;

function realClaudeBinary(): string {
  const pkg = createRequire(import.meta.url).resolve('@anthropic-ai/claude-code-linux-x64/package.json');
  const binary = join(dirname(pkg), 'claude');
  if (!existsSync(binary)) throw new Error(`the claude binary is missing at ${binary}: run npm ci`);
  return binary;
}

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.skipIf(skipDocker)('agent image build (images/agent through dockerode)', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const startedAt = Date.now();
  const labels = testLabels(runId);
  const labelArgs = Object.entries(labels).flatMap(([key, value]) => ['--label', `${key}=${value}`]);
  const root = mkdtempSync(join(tmpdir(), 'ad-image-build-'));
  const fakeClaude = join(root, 'claude');
  const tags: string[] = [];
  const volumes: string[] = [];
  const tag = (name: string) => {
    const t = `agent-dispatch-test/agent:${runId}-${name}`;
    tags.push(t);
    return t;
  };
  const missing = async (image: string) =>
    docker
      .getImage(image)
      .inspect()
      .then(() => false)
      .catch((error: { statusCode?: number }) => error.statusCode === 404);

  beforeAll(async () => {
    await requireLocalImage(docker, NODE_IMAGE);
    await requireLocalImage(docker, BUSYBOX_IMAGE);
    // The run id makes the binary, hence the build from its COPY on, new in every run (no cache hit).
    writeFileSync(fakeClaude, `#!/bin/sh\n# ${runId}\necho "${DEFAULT_CLAUDE_VERSION} (Claude Code)"\n`);
    chmodSync(fakeClaude, 0o755);
  });

  afterAll(async () => {
    await cleanupTestResources(docker, runId);
    await removeVolumes(docker, volumes);
    for (const t of tags) await docker.getImage(t).remove({ force: true }).catch(() => undefined);
    // A failed build step leaves its last good layer as an untagged image, without the build's labels (they
    // come with the last step): remove the ones made since this file started from the base the failing builds use.
    const busybox = (await docker.getImage(BUSYBOX_IMAGE).inspect()).Id;
    const parents = new Map((await docker.listImages({ all: true })).map((i) => [i.Id, i.ParentId]));
    const fromBusybox = (id: string): boolean => {
      for (let at: string | undefined = id; at; at = parents.get(at)) if (at === busybox) return true;
      return false;
    };
    const dangling = await docker.listImages({ filters: JSON.stringify({ dangling: ['true'] }) });
    for (const image of dangling.filter((i) => i.Created * 1000 >= startedAt - 1000 && fromBusybox(i.Id))) {
      await docker.getImage(image.Id).remove().catch(() => undefined);
    }
    rmSync(root, { recursive: true, force: true });
  });

  it('with a local (fake) claude binary: tagged, labelled, non-root, claude --version as CMD', { timeout: BUILD_TIMEOUT }, async () => {
    const lines: string[] = [];
    const t = tag('fake');
    const built = await buildAgentImage({ claudeBinary: fakeClaude, tag: t, labels, docker, onProgress: (l) => lines.push(l) });
    expect(built).toMatchObject({ tag: t, claudeVersion: DEFAULT_CLAUDE_VERSION });
    expect(built.imageId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(lines.some((l) => /^Step 1\/\d+ : ARG BASE=/.test(l))).toBe(true);
    expect(lines).toContain(`claude --version: ${DEFAULT_CLAUDE_VERSION} (Claude Code)`);
    expect(lines.every((l) => !l.includes('\n'))).toBe(true);

    const inspect = await docker.getImage(t).inspect();
    expect(inspect.Id).toBe(built.imageId);
    expect(inspect.Config.Labels).toMatchObject({
      'agent-dispatch.image': 'agent',
      'agent-dispatch.claude-version': DEFAULT_CLAUDE_VERSION,
      ...labels,
    });
    expect(inspect.Config.User).toBe('1000:1000');
    expect(inspect.Config.Env).toEqual(expect.arrayContaining(['HOME=/home/agent', 'PATH=/usr/local/bin:/usr/bin:/bin']));
    expect(inspect.Config.Cmd).toEqual(['claude', '--version']);
    expect(inspect.Config.Entrypoint ?? []).toEqual([]);
    expect(inspect.Config.WorkingDir || '/').toBe('/');

    const r = await runContainer(docker, { Image: t, Labels: labels, HostConfig: { NetworkMode: 'none', ReadonlyRootfs: true } });
    expect(r).toMatchObject({ exitCode: 0, stdout: `${DEFAULT_CLAUDE_VERSION} (Claude Code)\n` });

    // The image's own contract: user agent, /etc/claude-code, and the binary root-owned 0755.
    const files = await runContainer(docker, {
      Image: t,
      Labels: labels,
      Cmd: ['sh', '-c', 'id -un; stat -c "%U %a" /home/agent/.claude /etc/claude-code /usr/local/bin/claude; ls -A /usr/local/bin'],
      HostConfig: { NetworkMode: 'none', ReadonlyRootfs: true },
    });
    expect(files.stderr).toBe('');
    expect(files.stdout).toBe('agent\nagent 700\nroot 755\nroot 755\nclaude\n');
  });

  it('with the real claude binary: runs hardened as uid 1000; a fresh volume on ~/.claude is the agent\'s', { timeout: BUILD_TIMEOUT }, async () => {
    const t = tag('real');
    const started = Date.now();
    const built = await buildAgentImage({ claudeBinary: realClaudeBinary(), tag: t, labels, docker });
    const seconds = (Date.now() - started) / 1000;
    const size = (await docker.getImage(t).inspect()).Size;
    process.stderr.write(`[image-build] real binary: built in ${seconds.toFixed(1)}s, image ${(size / 1e6).toFixed(0)} MB\n`);
    expect(built.claudeVersion).toBe(DEFAULT_CLAUDE_VERSION); // read from the binary's package.json

    const hardened = { NetworkMode: 'none', ReadonlyRootfs: true, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], Tmpfs: { '/tmp': 'rw,nosuid,nodev,size=64m' } };
    const r = await runContainer(docker, {
      Image: t,
      Labels: labels,
      User: '1000:1000',
      Cmd: ['bash', '-c', 'claude --version && git --version && stat -c "%u:%g" /home/agent/.claude && cd /tmp && git init -q r && echo ok'],
      HostConfig: hardened,
    });
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${DEFAULT_CLAUDE_VERSION.replace(/\./g, '\\.')} \\(Claude Code\\)\ngit version \\S+\n1000:1000\nok\n$`));

    const volume = `agent-dispatch-test-claude-${runId}`;
    volumes.push(volume);
    await docker.createVolume({ Name: volume, Labels: labels });
    const v = await runContainer(docker, {
      Image: t,
      Labels: labels,
      User: '1000:1000',
      Cmd: ['sh', '-c', 'stat -c "%u:%g %a" /home/agent/.claude && echo hi >/home/agent/.claude/probe && cat /home/agent/.claude/probe'],
      HostConfig: { ...hardened, Mounts: [{ Type: 'volume', Source: volume, Target: '/home/agent/.claude' }] },
    });
    expect(v).toMatchObject({ exitCode: 0, stdout: '1000:1000 700\nhi\n', stderr: '' });
  });

  it('a failing step (a base without git): IMAGE_BUILD_FAILED with the step and its output; nothing tagged', { timeout: BUILD_TIMEOUT }, async () => {
    const t = tag('no-git');
    const lines: string[] = [];
    const error = await rejection(buildAgentImage({ base: BUSYBOX_IMAGE, claudeBinary: fakeClaude, tag: t, labels, docker, onProgress: (l) => lines.push(l) }));
    expect(error.code).toBe('IMAGE_BUILD_FAILED');
    expect(error.message).toMatch(/failed at Step \d+\/\d+ : RUN /);
    expect(error.message).toContain('the command exited with code 1');
    expect(error.message).toContain(`agent image: ERROR: git is missing in the base image ${BUSYBOX_IMAGE}`);
    expect(error.message).not.toContain('\u001b[');
    expect(error.hint).toContain('bash scripts/base-images.sh');
    expect(lines.some((l) => l.includes('git is missing'))).toBe(true);
    expect(await missing(t)).toBe(true);
  });

  it('a base that is not present locally: IMAGE_NOT_FOUND, and the engine is never asked to build or pull', async () => {
    const base = `agent-dispatch-test/no-such-base:${runId}`;
    const buildImage = vi.spyOn(docker, 'buildImage');
    const pull = vi.spyOn(docker, 'pull');
    const since = Math.floor(Date.now() / 1000) - 1;
    const error = await rejection(buildAgentImage({ base, claudeBinary: fakeClaude, tag: tag('no-base'), labels, docker }));
    expect(error.code).toBe('IMAGE_NOT_FOUND');
    expect(error.message).toBe(`Base image ${base} is not present locally (agent-dispatch never pulls images)`);
    expect(error.hint).toContain('bash scripts/base-images.sh');
    expect(error.hint).toContain('--base IMAGE');
    expect(buildImage).not.toHaveBeenCalled();
    expect(pull).not.toHaveBeenCalled();
    // And the engine saw no pull of it.
    const events = await docker.getEvents({ since, until: Math.floor(Date.now() / 1000) + 1, filters: { type: ['image'], event: ['pull'] } });
    const text = await new Promise<string>((resolve) => {
      let body = '';
      events.on('data', (d: Buffer) => (body += d.toString('utf8')));
      events.on('end', () => resolve(body));
    });
    expect(text).not.toContain('no-such-base');
  });

  it('a --claude-binary that does not exist: INVALID_INPUT', async () => {
    const error = await rejection(buildAgentImage({ claudeBinary: join(root, 'no-claude'), tag: tag('no-binary'), labels, docker }));
    expect(error.code).toBe('INVALID_INPUT');
    expect(error.message).toContain('does not exist');
  });

  describe('through the CLI (node dist/cli.js image build)', () => {
    beforeAll(() => {
      if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build`);
    });

    it('success: progress on stderr, one result line on stdout, exit 0', { timeout: BUILD_TIMEOUT }, async () => {
      const t = tag('cli');
      const r = await cli(['image', 'build', 'agent', '--claude-binary', fakeClaude, '--tag', t, ...labelArgs]);
      expect(r.stderr).toMatch(/^Step 1\/\d+ : ARG BASE=/m);
      expect(r.stdout).toMatch(new RegExp(`^Built ${t} \\([0-9a-f]{12}, Claude Code ${DEFAULT_CLAUDE_VERSION.replace(/\./g, '\\.')}\\) in \\d+\\.\\ds\\n$`));
      expect(r.code).toBe(0);
      expect((await docker.getImage(t).inspect()).Config.Labels).toMatchObject(labels);
    });

    it('gateway: builds the gateway image alone, labelled with its protocol, running as its own non-root user', { timeout: BUILD_TIMEOUT }, async () => {
      const t = tag('cli-gateway');
      const r = await cli(['image', 'build', 'gateway', '-q', '--gateway-tag', t, ...labelArgs]);
      expect(r.stdout).toMatch(new RegExp(`^Built ${t} \\([0-9a-f]{12}\\) in \\d+\\.\\ds\\n$`));
      expect(r.code).toBe(0);
      const info = await docker.getImage(t).inspect();
      expect(info.Config.Labels).toMatchObject({ ...labels, 'agent-dispatch.gateway-protocol': '2' });
      expect(info.Config.User).toBe('10001:10001');
    });

    it('a failing step: exit 1, the step output and a hint on stderr, nothing on stdout', { timeout: BUILD_TIMEOUT }, async () => {
      const r = await cli(['image', 'build', 'agent', '-q', '--base', BUSYBOX_IMAGE, '--claude-binary', fakeClaude, '--tag', tag('cli-fail'), ...labelArgs]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^Error: The build of \S+ failed at Step \d+\/\d+ : RUN /m);
      expect(r.stderr).toContain('git is missing');
      expect(r.stderr).not.toMatch(/^ {4}at /m);
    });

    it('a missing base: exit 3; a missing binary: exit 1; no engine: exit 3; no subcommand: exit 2', { timeout: 60_000 }, async () => {
      const noBase = await cli(['image', 'build', 'agent', '--base', `agent-dispatch-test/no-such-base:${runId}`, '--claude-binary', fakeClaude, '--tag', tag('cli-no-base')]);
      expect(noBase.code).toBe(3);
      expect(noBase.stderr).toContain('is not present locally (agent-dispatch never pulls images)');
      expect(noBase.stderr).toContain('bash scripts/base-images.sh');
      const noBinary = await cli(['image', 'build', 'agent', '--claude-binary', join(root, 'nope'), '--tag', tag('cli-no-binary')]);
      expect(noBinary.code).toBe(1);
      expect(noBinary.stderr).toContain('does not exist');
      const noEngine = await cli(['image', 'build', 'agent', '--claude-binary', fakeClaude], { DOCKER_HOST: `unix://${join(root, 'no.sock')}` });
      expect(noEngine.code).toBe(3);
      expect(noEngine.stderr).toContain('Docker engine not reachable');
      expect((await cli(['image'])).code).toBe(2);
      expect((await cli(['image', 'build', 'everything'])).code).toBe(2);
    });
  });
});
