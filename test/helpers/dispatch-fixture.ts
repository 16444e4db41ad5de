/**
 * A throwaway agent-dispatch installation for dispatch tests: a config dir with agents.yaml and policy
 * files, project repos, and the environment a server needs to dispatch into the test agent and gateway images
 * with the scripted fake model as its API. The fake model listens on the Docker bridge address, which the
 * gateway container (and, under an open-network policy, the agent container) can reach.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { stringify } from 'yaml';
import { bridgeAddress } from '../../src/sandbox/bridge.js';
import { startFakeModel, type FakeModel } from '../../src/selftest/fake-model.js';
import { gatewayPolicy, openNetworkPolicy } from '../../src/selftest/open-policy.js';
import { cleanupTestResources, requireLocalImage, testLabelsEnv } from './docker.js';

/** Built by test/global-setup.ts from images/agent with the devDependency's claude binary. */
export const TEST_AGENT_IMAGE = 'agent-dispatch/agent:test';
/** Built by test/global-setup.ts from images/gateway and dist/gateway. */
export const TEST_GATEWAY_IMAGE = 'agent-dispatch/gateway:test';

export interface PolicyOverrides {
  [key: string]: unknown;
}

export function openTestPolicy(overrides: PolicyOverrides = {}): Record<string, unknown> {
  return openNetworkPolicy(TEST_AGENT_IMAGE, { description: 'test: open network', ...overrides });
}

/** A policy whose network goes through the egress gateway (credential injected): `network.allow` in overrides. */
export function gatewayTestPolicy(allow: string[] = [], overrides: PolicyOverrides = {}): Record<string, unknown> {
  return gatewayPolicy(TEST_AGENT_IMAGE, { description: 'test: egress gateway', network: { mode: 'gateway', allow }, ...overrides });
}

/** After a suite: the service's containers and gateways, everything labelled with the run, then the fixture. */
export async function tearDown(parts: { service?: { shutdown(): Promise<void> } | undefined; docker: Docker; runId: string; fx?: Fixture | undefined }): Promise<void> {
  await parts.service?.shutdown();
  await cleanupTestResources(parts.docker, parts.runId);
  await parts.fx?.close();
}

/** The built CLI the e2e suites run (`npm test` builds first). */
export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli.js');

/** A fixture for suites that run the built CLI against the test agent image; fails clearly when either is missing. */
export async function createBuiltFixture(docker: Docker, runId: string): Promise<Fixture> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first ('npm test' does it).`);
  await requireLocalImage(docker, TEST_AGENT_IMAGE);
  await requireLocalImage(docker, TEST_GATEWAY_IMAGE);
  return createFixture(docker, runId);
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
  agents(agents: Record<string, Record<string, unknown>>, settings?: Record<string, unknown>, groups?: Record<string, unknown>): void;
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
    AGENT_DISPATCH_CONTAINER_LABELS: testLabelsEnv(runId),
    AGENT_DISPATCH_GATEWAY_IMAGE: TEST_GATEWAY_IMAGE,
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
    agents(agents, settings = {}, groups = {}) {
      writeFileSync(configPath, stringify({ agents, groups, settings }), { mode: 0o600 });
    },
    async close() {
      await model.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
