/**
 * `agent-dispatch image ...` without an engine: usage errors, input checks that come before any Docker
 * call, the pins that must agree (Dockerfile, package.json, src), and doctor's hint for a missing image.
 * The builds themselves are in test/integration/image-build.test.ts.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import Docker from 'dockerode';
import { doctorCommand } from '../../src/cli/commands/doctor.js';
import { isAppError } from '../../src/errors.js';
import { policySchema } from '../../src/policy/schema.js';
import type { Engine } from '../../src/sandbox/engine.js';
import {
  AGENT_IMAGE_DIR,
  buildAgentImage,
  DEFAULT_AGENT_IMAGE,
  DEFAULT_BASE_IMAGE,
  DEFAULT_CLAUDE_VERSION,
  imageBuildHint,
} from '../../src/sandbox/image.js';
import { capture, fakeAgentDispatch, fakeClaude, run, setupEnv, STACK_LINE, type Env } from './cli-harness.js';

let env: Env;

beforeEach(() => {
  env = setupEnv();
  // Nothing in this file may reach an engine: an unreachable one makes any accidental call fail loudly.
  vi.stubEnv('DOCKER_HOST', `unix://${join(env.root, 'no-docker.sock')}`);
});

afterEach(() => {
  env.cleanup();
});

/** A docker client whose every call fails the test: these checks must come before the engine. */
function untouchableDocker(): Docker {
  return new Proxy({} as Docker, {
    get(_, key) {
      throw new Error(`docker.${String(key)} was used`);
    },
  });
}

describe('image command: usage', () => {
  it('no subcommand, or an unknown one: usage, exit 2', async () => {
    for (const argv of [['image'], ['image', 'frob']]) {
      const r = await run(...argv);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('usage: agent-dispatch image build|copy');
      expect(r.stdout).toBe('');
    }
  });

  it('unknown option, positional argument, bad --label: exit 2', async () => {
    expect((await run('image', 'build', '--pull')).code).toBe(2);
    expect((await run('image', 'build', 'extra')).code).toBe(2);
    expect((await run('image', 'build', 'agent', 'gateway')).code).toBe(2);
    const r = await run('image', 'build', '--label', 'novalue');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--label must be KEY=VALUE (got 'novalue')");
  });

  it('is listed in the usage and has help', async () => {
    expect((await run('--help')).stdout).toMatch(/^ {2}image build +Build /m);
    const r = await run('image', 'build', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--claude-binary PATH');
  });

  it('a --claude-binary that does not exist: INVALID_INPUT (exit 1) with a hint, before Docker', async () => {
    const r = await run('image', 'build', '-q', '--claude-binary', join(env.root, 'nope'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`Error: --claude-binary ${join(env.root, 'nope')} does not exist`);
    expect(r.stderr).toContain('node_modules/@anthropic-ai/claude-code-linux-x64/claude');
    expect(r.stderr).not.toMatch(STACK_LINE);
    expect(r.stdout).toBe('');
  });

  it('an engine that does not answer: DOCKER_UNAVAILABLE, exit 3', async () => {
    const r = await run('image', 'build', '-q');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('Error: Docker engine not reachable');
    expect(r.stderr).toContain('Start the Docker engine');
  });
});

describe('buildAgentImage: input checks before the engine', () => {
  async function codeOf(options: Parameters<typeof buildAgentImage>[0]): Promise<string> {
    try {
      await buildAgentImage({ ...options, docker: untouchableDocker() });
    } catch (error) {
      if (isAppError(error)) return `${error.code}: ${error.message}`;
      throw error;
    }
    throw new Error('did not reject');
  }

  it('missing, directory, empty, not executable binary: INVALID_INPUT', async () => {
    const empty = join(env.root, 'empty');
    writeFileSync(empty, '');
    chmodSync(empty, 0o755);
    const plain = join(env.root, 'plain');
    writeFileSync(plain, '#!/bin/sh\n');
    chmodSync(plain, 0o644);
    expect(await codeOf({ claudeBinary: join(env.root, 'missing') })).toMatch(/^INVALID_INPUT: .* does not exist$/);
    expect(await codeOf({ claudeBinary: env.root })).toMatch(/^INVALID_INPUT: .* is not a regular file$/);
    expect(await codeOf({ claudeBinary: empty })).toMatch(/^INVALID_INPUT: .* is empty$/);
    if (process.getuid?.() !== 0) expect(await codeOf({ claudeBinary: plain })).toMatch(/^INVALID_INPUT: .* not readable and executable$/);
  });

  it('a malformed version or tag: INVALID_INPUT', async () => {
    expect(await codeOf({ claudeVersion: '1.0; rm -rf /' })).toMatch(/^INVALID_INPUT: Invalid Claude Code version/);
    expect(await codeOf({ tag: 'a b' })).toMatch(/^INVALID_INPUT: Invalid image tag/);
    expect(await codeOf({ base: '' })).toMatch(/^INVALID_INPUT: Invalid base image/);
  });
});

describe('pins and hints', () => {
  it('the Dockerfile defaults, package.json and the module agree', () => {
    const dockerfile = readFileSync(join(AGENT_IMAGE_DIR, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain(`ARG BASE=${DEFAULT_BASE_IMAGE}\n`);
    expect(dockerfile).toContain(`ARG CLAUDE_VERSION=${DEFAULT_CLAUDE_VERSION}\n`);
    const pkg = JSON.parse(readFileSync(join(AGENT_IMAGE_DIR, '..', '..', 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
    expect(pkg.devDependencies['@anthropic-ai/claude-code']).toBe(DEFAULT_CLAUDE_VERSION);
    expect(policySchema.shape.image.parse(undefined)).toBe(DEFAULT_AGENT_IMAGE);
  });

  it('the Dockerfile never pulls a frontend and has no ENTRYPOINT but the reset', () => {
    const dockerfile = readFileSync(join(AGENT_IMAGE_DIR, 'Dockerfile'), 'utf8');
    expect(dockerfile).not.toMatch(/^# *syntax=/m);
    expect(dockerfile.match(/^ENTRYPOINT .*/gm)).toEqual(['ENTRYPOINT []']);
    expect(dockerfile).toMatch(/^CMD \["claude", "--version"\]$/m);
  });

  it('imageBuildHint names the command that builds the image', () => {
    expect(imageBuildHint(DEFAULT_AGENT_IMAGE)).toBe('Build it: agent-dispatch image build (add --claude-binary PATH on a machine with no npm registry)');
    expect(imageBuildHint('my/agent:2')).toBe('Build it: agent-dispatch image build --tag my/agent:2 (add --claude-binary PATH on a machine with no npm registry)');
  });

  it('doctor names that command for a missing agent image', async () => {
    fakeClaude(env.binDir, { mcpList: 'agent-dispatch: /x/agent-dispatch serve - ✔ Connected\n' });
    fakeAgentDispatch(env.binDir);
    env.writeConfig({ agents: { api: { directory: env.project('api') } } });
    const engine: Engine = { info: async () => ({ version: '27.0.0', apiVersion: '1.46' }), imageExists: async () => false, imageLabels: async () => undefined };
    const r = await capture(() => doctorCommand([], engine));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('[FAIL] agent-dispatch/agent:latest is not present locally (agent-dispatch never pulls images)');
    expect(r.stdout).toContain(imageBuildHint(DEFAULT_AGENT_IMAGE));
  });
});
