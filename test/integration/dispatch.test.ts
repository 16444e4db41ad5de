/**
 * Sandboxed dispatch end to end below the MCP layer: the real claude binary in the test agent image, driven
 * by the scripted fake model, through DispatchService (the same path the MCP tools and `test` use).
 * Probes run as Bash steps the fake model asks for, so what they report is what the agent could see.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, requireConfig } from '../../src/config/load.js';
import { DispatchService } from '../../src/dispatch/service.js';
import type { DispatchResult } from '../../src/dispatch/types.js';
import { LABELS } from '../../src/sandbox/owner.js';
import { DIRECTIVE } from '../../src/selftest/fake-model.js';
import { createFixture, openTestPolicy, TEST_AGENT_IMAGE, tearDown, type Fixture } from '../helpers/dispatch-fixture.js';
import { dockerClient, requireLocalImage, skipDocker, TEST_LABEL, testRunId } from '../helpers/docker.js';

const TIMEOUT = 120_000;

describe.skipIf(skipDocker)('sandboxed dispatch with the real claude binary', () => {
  const docker = dockerClient();
  const runId = testRunId();
  let fx: Fixture;
  let service: DispatchService;
  let repo: string;
  let overlayRepo: string;
  const agent = `it-${runId}`;

  beforeAll(async () => {
    await requireLocalImage(docker, TEST_AGENT_IMAGE);
    fx = await createFixture(docker, runId);
    repo = fx.repo('project', { 'README.md': '# project\n', 'notes.txt': 'hello from the repo\n' });
    // The overlay agent writes as the repo owner's uid, never root: a root-owned repo would be read-only to it.
    overlayRepo = fx.repo('overlay-project', { 'README.md': '# project\n', 'notes.txt': 'hello from the repo\n' });
    if (process.getuid?.() === 0) for (const path of [overlayRepo, ...['README.md', 'notes.txt'].map((f) => join(overlayRepo, f))]) chownSync(path, 1000, 1000);
    fx.policy('open-test', openTestPolicy());
    fx.policy('broken', 'version: 1\nrepo: sideways\n');
    fx.policy('no-claude', openTestPolicy({ image: 'agent-dispatch-base/node:20' }));
    fx.policy('overlay', openTestPolicy({ repo: 'overlay', tools: { permission_mode: 'acceptEdits', allow: ['Bash', 'Read', 'Edit', 'Write'], deny: [] } }));
    fx.policy('missing-image', openTestPolicy({ image: `agent-dispatch/missing-${runId}:latest` }));
    fx.agents({
      [agent]: { directory: repo, policy: 'open-test' },
      [`${agent}-broken`]: { directory: repo, policy: 'broken' },
      [`${agent}-noclaude`]: { directory: repo, policy: 'no-claude' },
      [`${agent}-noimage`]: { directory: repo, policy: 'missing-image' },
      [`${agent}-overlay`]: { directory: overlayRepo, policy: 'overlay' },
      [`${agent}-gone`]: { directory: join(fx.root, 'repos', 'gone') },
    });
    service = new DispatchService(fx.env);
  }, TIMEOUT);

  afterAll(() => tearDown({ service, docker, runId, fx }), TIMEOUT);

  const config = () => requireConfig(loadConfig(fx.configPath));
  const dispatch = (task: string, extra: Record<string, unknown> = {}, name = agent): Promise<DispatchResult> =>
    service.dispatch(config(), { agent: name, task, ...extra });

  async function leftovers(): Promise<number> {
    return (await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`, LABELS.job] } })).length;
  }

  it('answers through the sandbox with a resumable session id, a cost, and the key the server holds', async () => {
    const result = await dispatch(DIRECTIVE.reply('hello from the sandbox'));
    expect(result).toMatchObject({ agent, success: true, result: 'hello from the sandbox' });
    expect(result.session_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(result.cost_usd).toBeGreaterThan(0);
    expect(fx.model.requests.some((r) => r.apiKey === fx.apiKey)).toBe(true);
    expect(await leftovers()).toBe(0);
  }, TIMEOUT);

  it('from inside: the repo is read-only, the user is not root, no capabilities, NoNewPrivs, no server secret, no setuid programs', async () => {
    const probe = [
      `cat ${repo}/notes.txt`,
      `touch ${repo}/new-file 2>&1 || true`,
      'id -u',
      "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status",
      `env | grep -c AGENT_DISPATCH_E2E_SECRET || true`,
      `cat /proc/1/environ /proc/self/environ 2>/dev/null | tr '\\0' '\\n' | grep -c ${fx.secret} || true`,
      `ls ${fx.configDir} 2>&1 || true`,
      'ls /var/run/docker.sock 2>&1 || true',
      'find / -xdev -type f -perm /6000 2>/dev/null | wc -l',
    ].join('; echo ---; ');
    const result = await dispatch(DIRECTIVE.bash(probe));
    expect(result.success, JSON.stringify(result)).toBe(true);
    const sections = result.result.replace(/^TOOL_RESULT 1:\n/, '').split('---').map((s) => s.trim());
    expect(sections[0]).toBe('hello from the repo');
    expect(sections[1]).toMatch(/Read-only file system/);
    expect(sections[2]).toBe('1000');
    expect(sections[3]).toMatch(/CapEff:\s+0000000000000000/);
    expect(sections[3]).toMatch(/CapBnd:\s+0000000000000000/);
    expect(sections[3]).toMatch(/NoNewPrivs:\s+1/);
    expect(sections[4]).toBe('0');
    expect(sections[5]).toBe('0');
    expect(sections[6]).toMatch(/No such file or directory/);
    expect(sections[7]).toMatch(/No such file or directory/);
    expect(sections[8]).toBe('0');
  }, TIMEOUT);

  it('a process left running in the background does not outlive the dispatch', async () => {
    const marker = `bg-${runId}`;
    const result = await dispatch(DIRECTIVE.bash(`(sleep 600; echo ${marker}) > /dev/null 2>&1 & echo started`));
    expect(result.success, JSON.stringify(result)).toBe(true);
    expect(await leftovers()).toBe(0);
    const containers = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${runId}`] } });
    expect(containers.filter((c) => c.Labels[LABELS.agent] === agent)).toEqual([]);
  }, TIMEOUT);

  it('docker inspect of a running dispatch container shows the hardened configuration', async () => {
    const running = dispatch(DIRECTIVE.bash('sleep 4; echo done'));
    let inspect: Awaited<ReturnType<ReturnType<typeof docker.getContainer>['inspect']>> | undefined;
    for (let i = 0; i < 100 && !inspect; i++) {
      const [found] = await docker.listContainers({ filters: { label: [`${TEST_LABEL}=${runId}`, `${LABELS.agent}=${agent}`] } });
      if (found) inspect = await docker.getContainer(found.Id).inspect();
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect((await running).success).toBe(true);
    expect(inspect).toBeDefined();
    const host = inspect!.HostConfig;
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.CapAdd ?? []).toEqual([]);
    expect(host.SecurityOpt).toContain('no-new-privileges');
    expect(host.Privileged).toBe(false);
    expect(host.Memory).toBe(1024 ** 3);
    expect(host.NanoCpus).toBe(1e9);
    expect(host.PidsLimit).toBe(256);
    expect(host.Ulimits).toEqual([{ Name: 'nofile', Soft: 1024, Hard: 1024 }, { Name: 'fsize', Soft: 1024 ** 3, Hard: 1024 ** 3 }]);
    expect(inspect!.Config.User).toBe('1000:1000');
    expect(host.PidMode).toBe('');
    expect(host.IpcMode).toBe('private');
    expect(host.UTSMode).toBe('');
    expect(host.UsernsMode).toBe('');
    expect(host.NetworkMode).not.toBe('host');
    expect(host.Devices ?? []).toEqual([]);
    const sources = inspect!.Mounts.map((m) => m.Source ?? '');
    expect(sources.some((s) => s.includes('docker.sock'))).toBe(false);
    const repoMount = inspect!.Mounts.find((m) => m.Destination === repo);
    expect(repoMount).toMatchObject({ Type: 'bind', RW: false });
    expect(inspect!.Config.Labels).toMatchObject({ [LABELS.agent]: agent, [LABELS.serverPid]: String(process.pid) });
  }, TIMEOUT);

  it('a timeout returns a resumable session id, and the resumed session sees the first turn', async () => {
    const first = await dispatch(`remember the word pelican ${DIRECTIVE.bash('sleep 60')}`, { timeoutSeconds: 10 });
    expect(first).toMatchObject({ success: false, error_type: 'timeout' });
    expect(first.error).toContain("dispatch_session(agent='");
    expect(first.session_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await leftovers()).toBe(0);
    const resumed = await dispatch(DIRECTIVE.recall(), { sessionId: first.session_id });
    expect(resumed.success, JSON.stringify(resumed)).toBe(true);
    expect(resumed.result).toContain('remember the word pelican');
    expect(resumed.session_id).toBe(first.session_id);
  }, TIMEOUT);

  it('only the transcripts persist between dispatches: anything else written to the Claude config dir is gone', async () => {
    const first = await dispatch(DIRECTIVE.bash('echo planted > "$CLAUDE_CONFIG_DIR/settings.json" && echo kept > "$CLAUDE_CONFIG_DIR/projects/kept" && echo wrote'));
    expect(first.result).toContain('wrote');
    const second = await dispatch(DIRECTIVE.bash('ls -a "$CLAUDE_CONFIG_DIR"; echo ---; cat "$CLAUDE_CONFIG_DIR/projects/kept"'));
    const [config, kept] = second.result.split('---');
    expect(config).not.toContain('settings.json');
    expect(kept).toContain('kept');
  }, TIMEOUT);

  it('response_format=json comes back parsed', async () => {
    const result = await dispatch(DIRECTIVE.json({ answer: 42, items: ['a'] }), { responseFormat: 'json' });
    expect(result.parsed_result).toEqual({ answer: 42, items: ['a'] });
  }, TIMEOUT);

  it('stream progress reports assistant text and tool use as they happen', async () => {
    const events: string[] = [];
    const result = await dispatch(DIRECTIVE.bash('echo streamed'), { onProgress: (e: { message: string }) => events.push(e.message) });
    expect(result.success).toBe(true);
    expect(events).toContain('Using tool: Bash');
  }, TIMEOUT);

  it('repo: overlay — the agent edits a private copy, the host is untouched, the changes come back as a patch', async () => {
    const before = readFileSync(join(overlayRepo, 'notes.txt'), 'utf8');
    const script = `cat notes.txt; echo changed-by-agent >> notes.txt && echo fresh > added.txt && rm README.md && ls`;
    const result = await dispatch(DIRECTIVE.bash(script), {}, `${agent}-overlay`);
    expect(result.success, JSON.stringify(result)).toBe(true);
    expect(result.result).toContain('hello from the repo');
    expect(readFileSync(join(overlayRepo, 'notes.txt'), 'utf8')).toBe(before);
    expect(existsSync(join(overlayRepo, 'README.md'))).toBe(true);
    expect(existsSync(join(overlayRepo, 'added.txt'))).toBe(false);
    expect(result.patch).toContain('+changed-by-agent');
    expect(result.patch).toContain('diff --git a/added.txt b/added.txt');
    expect(result.patch).toContain('deleted file mode');
    expect(readFileSync(result.patch_file!, 'utf8')).toBe(result.patch);
    // The patch applies to the host repo as it is.
    const copy = join(fx.root, 'apply-check');
    cpSync(overlayRepo, copy, { recursive: true });
    const applied = spawnSync('git', ['apply', '--whitespace=nowarn', result.patch_file!], { cwd: copy, encoding: 'utf8' });
    expect(applied.status, applied.stderr).toBe(0);
    expect(readFileSync(join(copy, 'notes.txt'), 'utf8')).toBe(`${before}changed-by-agent\n`);
    expect(existsSync(join(copy, 'README.md'))).toBe(false);
  }, TIMEOUT);

  describe('failures return their error_type and a hint, and leave no container', () => {
    it('recursion: the depth counter the container would get is already at the limit', async () => {
      const deep = new DispatchService({ ...fx.env, AGENT_DISPATCH_DEPTH: '3' });
      const result = await deep.dispatch(config(), { agent, task: 'x' });
      expect(result).toMatchObject({ success: false, error_type: 'recursion' });
    });

    it('policy invalid', async () => {
      const result = await dispatch('x', {}, `${agent}-broken`);
      expect(result).toMatchObject({ success: false, error_type: 'policy' });
      expect(result.hint).toContain('policy check');
    });

    it('agent directory gone', async () => {
      const result = await dispatch('x', {}, `${agent}-gone`);
      expect(result).toMatchObject({ success: false, error_type: 'not_found' });
      expect(result.error).toContain('Directory does not exist');
    });

    it('image missing: names the build command, never pulls', async () => {
      const result = await dispatch('x', {}, `${agent}-noimage`);
      expect(result).toMatchObject({ success: false, error_type: 'sandbox' });
      expect(result.hint).toContain('agent-dispatch image build');
    });

    it('claude failing to start (an image without it)', async () => {
      const result = await dispatch('x', {}, `${agent}-noclaude`);
      expect(result).toMatchObject({ success: false, error_type: 'not_found' });
      expect(result.hint).toContain('agent-dispatch image build');
    }, TIMEOUT);

    it('engine down', async () => {
      const down = new DispatchService({ ...fx.env, DOCKER_HOST: `unix://${join(fx.root, 'no-engine.sock')}` });
      const result = await down.dispatch(config(), { agent, task: 'x' });
      expect(result).toMatchObject({ success: false, error_type: 'sandbox' });
      expect(result.hint).toContain('Start the Docker engine');
    });

    it('left nothing behind', async () => {
      expect(await leftovers()).toBe(0);
    });
  });
});
