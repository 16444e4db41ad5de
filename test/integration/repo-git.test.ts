/**
 * `repo: rw` must not hand the agent code execution on the host through `.git`: a command in `.git/config`
 * (core.fsmonitor, core.hooksPath, an alias) or a `.git/hooks/*` script runs at the user's next git command.
 * The compiled spec (busybox image, test labels; every HostConfig field as compiled) runs a shell probe
 * against real repos on the host: a plain one, a worktree-style one whose `.git` is a file naming a git dir
 * outside the repo, and one whose `.git` file names a git dir inside it; then `repo_git: writable`, the opt-in.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentSchema, settingsSchema } from '../../src/config/schema.js';
import { compileSandbox, policySchema, type CompiledSandbox, type PolicyInput } from '../../src/policy/index.js';
import { BUSYBOX_IMAGE, dockerClient, requireLocalImage, runContainer, skipDocker, testRunId } from '../helpers/docker.js';
import { removeCompiledResources, testContainerOptions } from '../helpers/compiled.js';

const TIMEOUT = 60_000;
const OWNER = { uid: 1000, gid: 1000 };

/** Each attempt prints `@@name` and then `ok` or the shell's error. */
function probe(attempts: Record<string, string>): string {
  return Object.entries(attempts)
    .map(([name, command]) => `echo @@${name}; ( ${command} ) 2>&1 && echo ok`)
    .concat('echo @@end')
    .join('\n');
}

function sections(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  let current = '';
  for (const line of stdout.split('\n')) {
    const header = /^@@(\w+)$/.exec(line);
    if (header) out[(current = header[1]!)] = '';
    else if (current) out[current] += `${line}\n`;
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.trim()]));
}

function chownTree(path: string): void {
  execFileSync('chown', ['-R', `${OWNER.uid}:${OWNER.gid}`, path]);
}

describe.skipIf(skipDocker)('repo: rw protects .git in a real container', () => {
  const docker = dockerClient();
  const runId = testRunId();
  const root = mkdtempSync(join('/tmp', 'agent-dispatch-itest-git-'));
  const compiledList: CompiledSandbox[] = [];

  function gitRepo(name: string): string {
    const dir = join(root, name);
    mkdirSync(dir);
    execFileSync('git', ['init', '-q', dir]);
    writeFileSync(join(dir, 'README.md'), 'readme\n');
    return dir;
  }

  async function runIn(repo: string, policy: Partial<PolicyInput>, attempts: Record<string, string>): Promise<Record<string, string>> {
    chownTree(repo);
    const compiled = compileSandbox({
      agentName: `itest-${runId}-${compiledList.length}`,
      agent: agentSchema.parse({ directory: repo }),
      settings: settingsSchema.parse({}),
      policy: policySchema.parse({ version: 1, ...policy }),
      policyRef: 'test',
      policyHash: 'test',
      hostEnv: {},
      depth: 0,
      repoOwner: OWNER,
    });
    compiledList.push(compiled);
    const result = await runContainer(docker, testContainerOptions(compiled, BUSYBOX_IMAGE, ['/bin/sh', '-c', probe(attempts)], runId));
    expect(result.exitCode, result.stderr).toBe(0);
    return sections(result.stdout);
  }

  beforeAll(async () => {
    await requireLocalImage(docker, BUSYBOX_IMAGE);
    chmodSync(root, 0o755);
  }, TIMEOUT);

  afterAll(async () => {
    await removeCompiledResources(docker, compiledList, runId);
    rmSync(root, { recursive: true, force: true });
  }, TIMEOUT);

  it('a plain repo: the work tree is writable, .git/config, .git/hooks and .git itself are not', async () => {
    const repo = gitRepo('plain');
    const config = readFileSync(join(repo, '.git', 'config'), 'utf8');
    const r = await runIn(repo, { repo: 'rw' }, {
      work_tree: `echo changed > ${repo}/README.md && echo new > ${repo}/new-file`,
      config: `printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' >> ${repo}/.git/config`,
      hook: `echo 'touch /tmp/pwned' > ${repo}/.git/hooks/post-checkout`,
      hooks_path: `mkdir ${repo}/.git/evil-hooks`,
      rename: `mv ${repo}/.git ${repo}/.git-moved`,
      remove: `rm -rf ${repo}/.git`,
    });
    expect(r['work_tree']).toBe('ok');
    for (const attempt of ['config', 'hook', 'hooks_path']) expect(r[attempt], attempt).toMatch(/Read-only file system/);
    expect(r['rename']).toMatch(/Device or resource busy|Read-only file system/);
    expect(r['remove']).toMatch(/Read-only file system/);
    expect(readFileSync(join(repo, 'README.md'), 'utf8')).toBe('changed\n');
    expect(readFileSync(join(repo, '.git', 'config'), 'utf8')).toBe(config);
    expect(existsSync(join(repo, '.git', 'hooks', 'post-checkout'))).toBe(false);
    expect(existsSync(join(repo, '.git-moved'))).toBe(false);
  }, TIMEOUT);

  it('a worktree: its .git file cannot be repointed, and the git dir it names (outside the repo) is not in the container', async () => {
    const main = gitRepo('main');
    execFileSync('git', ['-C', main, '-c', 'user.email=t@t', '-c', 'user.name=t', 'commit', '-q', '--allow-empty', '-m', 'init']);
    const worktree = join(root, 'worktree');
    execFileSync('git', ['-C', main, 'worktree', 'add', '-q', worktree]);
    const gitfile = readFileSync(join(worktree, '.git'), 'utf8');
    const r = await runIn(worktree, { repo: 'rw' }, {
      work_tree: `echo new > ${worktree}/new-file`,
      repoint: `echo 'gitdir: ${worktree}/evil' > ${worktree}/.git`,
      main_git: `ls ${main}/.git/config`,
    });
    expect(r['work_tree']).toBe('ok');
    expect(r['repoint']).toMatch(/Read-only file system/);
    expect(r['main_git']).toMatch(/No such file or directory/);
    expect(readFileSync(join(worktree, '.git'), 'utf8')).toBe(gitfile);
  }, TIMEOUT);

  it('a .git file naming a git dir inside the repo: that dir is read-only too', async () => {
    const repo = join(root, 'inner');
    mkdirSync(repo);
    execFileSync('git', ['init', '-q', '--separate-git-dir', join(repo, '.realgit'), repo]);
    const r = await runIn(repo, { repo: 'rw' }, {
      work_tree: `echo new > ${repo}/new-file`,
      config: `echo x >> ${repo}/.realgit/config`,
      hook: `echo x > ${repo}/.realgit/hooks/post-checkout`,
    });
    expect(r['work_tree']).toBe('ok');
    expect(r['config']).toMatch(/Read-only file system/);
    expect(r['hook']).toMatch(/Read-only file system/);
  }, TIMEOUT);

  it('repo_git: writable (the opt-in policy check reports as an error): .git/config and hooks are writable', async () => {
    const repo = gitRepo('optin');
    const r = await runIn(repo, { repo: 'rw', repo_git: 'writable' }, {
      config: `printf '[alias]\\n\\tst = status\\n' >> ${repo}/.git/config`,
      hook: `echo '#!/bin/sh' > ${repo}/.git/hooks/post-checkout`,
    });
    expect(r['config']).toBe('ok');
    expect(r['hook']).toBe('ok');
    expect(readFileSync(join(repo, '.git', 'config'), 'utf8')).toContain('st = status');
    expect(existsSync(join(repo, '.git', 'hooks', 'post-checkout'))).toBe(true);
  }, TIMEOUT);
});
