/**
 * A throwaway agent-dispatch installation for dispatch tests: a config dir with agents.yaml and policy
 * files, project repos, and the environment a server needs to dispatch into the test agent image with the
 * scripted fake model as its API. Until the egress gateway exists the test policies are `network: open`
 * with `credentials: env`, so the fake model listens on the Docker bridge address the containers can reach.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { stringify } from 'yaml';
import { startFakeModel, type FakeModel } from '../../src/selftest/fake-model.js';
import { TEST_LABEL } from './docker.js';

/** Built by test/global-setup.ts from images/agent with the devDependency's claude binary. */
export const TEST_AGENT_IMAGE = 'agent-dispatch/agent:test';

export interface PolicyOverrides {
  [key: string]: unknown;
}

export function openTestPolicy(overrides: PolicyOverrides = {}): Record<string, unknown> {
  return {
    version: 1,
    description: 'test: open network until the egress gateway exists',
    repo: 'ro',
    credentials: 'env',
    network: { mode: 'open' },
    env: { pass: [], set: { CLAUDE_CODE_MAX_RETRIES: '0' } },
    tools: { permission_mode: 'default', allow: ['Bash', 'Read', 'Glob', 'Grep'], deny: ['WebFetch', 'WebSearch'] },
    resources: { memory: '1g', cpus: 1, pids: 256, nofile: 1024, tmp_size: '64m', timeout: 300 },
    image: TEST_AGENT_IMAGE,
    ...overrides,
  };
}

/** The address of the default bridge on the host: where containers on it reach host services. */
export async function bridgeAddress(docker: Docker): Promise<string> {
  const info = await docker.getNetwork('bridge').inspect();
  const gateway = (info.IPAM?.Config ?? []).map((c: { Gateway?: string }) => c.Gateway).find(Boolean);
  if (gateway) return gateway;
  const docker0 = networkInterfaces()['docker0']?.find((a) => a.family === 'IPv4');
  if (docker0) return docker0.address;
  throw new Error('cannot find the Docker bridge address (no IPAM gateway, no docker0 interface)');
}

export interface Fixture {
  root: string;
  configDir: string;
  configPath: string;
  model: FakeModel;
  apiKey: string;
  secret: string;
  env: NodeJS.ProcessEnv;
  /** Make a project directory with a few files. */
  repo(name: string, files?: Record<string, string>): string;
  /** Write a policy file into the config's policies/ folder; returns its name. */
  policy(name: string, body: Record<string, unknown> | string): string;
  /** Write agents.yaml. */
  agents(agents: Record<string, Record<string, unknown>>, settings?: Record<string, unknown>): void;
  close(): Promise<void>;
}

export async function createFixture(docker: Docker, runId: string): Promise<Fixture> {
  const root = mkdtempSync(join('/tmp', 'agent-dispatch-e2e-'));
  const configDir = join(root, 'config');
  mkdirSync(join(configDir, 'policies'), { recursive: true });
  const host = await bridgeAddress(docker);
  const model = await startFakeModel({ host });
  const apiKey = `sk-test-${runId}`;
  const secret = `server-secret-${runId}`;
  const configPath = join(configDir, 'agents.yaml');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    HOME: root,
    AGENT_DISPATCH_CONFIG: configPath,
    AGENT_DISPATCH_CONTAINER_LABELS: `${TEST_LABEL}=${runId}`,
    ANTHROPIC_BASE_URL: model.url,
    ANTHROPIC_API_KEY: apiKey,
    AGENT_DISPATCH_E2E_SECRET: secret,
    ...(process.env['DOCKER_HOST'] ? { DOCKER_HOST: process.env['DOCKER_HOST'] } : {}),
  };
  return {
    root,
    configDir,
    configPath,
    model,
    apiKey,
    secret,
    env,
    repo(name, files = { 'README.md': `# ${name}\n` }) {
      const dir = join(root, 'repos', name);
      mkdirSync(dir, { recursive: true });
      for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
      return dir;
    },
    policy(name, body) {
      writeFileSync(join(configDir, 'policies', `${name}.yaml`), typeof body === 'string' ? body : stringify(body));
      return name;
    },
    agents(agents, settings = {}) {
      writeFileSync(configPath, stringify({ agents, groups: {}, settings }), { mode: 0o600 });
    },
    async close() {
      await model.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
