import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig, requireConfig } from '../config/load.js';
import { CREDENTIAL_ENV } from '../policy/schema.js';
import { newJobId } from '../dispatch/dispatcher.js';
import { DispatchService, containerLabels } from '../dispatch/service.js';
import type { DispatchResult } from '../dispatch/types.js';
import { gatewayImage } from '../sandbox/gateway-image.js';
import { DEFAULT_AGENT_IMAGE } from '../sandbox/image.js';
import { createSandboxRunner } from '../sandbox/runner.js';
import { removeAgentVolumes } from '../sandbox/volumes.js';
import { volumeScope } from '../policy/layout.js';
import { DIRECTIVE, startFakeModel } from './fake-model.js';
import { gatewayPolicy } from './open-policy.js';
import { networkProbeScript, probeScript, type ProbeFacts, parseProbe } from './probe.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

export interface SelftestReport {
  ok: boolean;
  image: string;
  checks: Check[];
  dispatch: DispatchResult;
  /** What the selftest cannot prove yet, said plainly. */
  notes: string[];
  durationMs: number;
}

const NOTES = [
  'network: checked against services on this machine only (the selftest never reaches the internet); the allowed host is one the selftest serves and allows by its IP.',
];

export interface SelftestOptions {
  image?: string;
  /** The egress gateway image (default: AGENT_DISPATCH_GATEWAY_IMAGE, else agent-dispatch/gateway:latest). */
  gatewayImage?: string;
  env?: NodeJS.ProcessEnv;
  onStep?: (message: string) => void;
  /** Cancels the dispatch (its container is killed); everything the selftest created is still removed. */
  signal?: AbortSignal;
  /** Probe through the warm pool: a first dispatch fills it, and the probe runs in the pre-started sandbox. */
  warm?: boolean;
}

/**
 * A real sandboxed dispatch of the real claude binary against a scripted local model (no tokens, no
 * internet): the model has Claude run a probe from inside the container, and every fact it reports is
 * a check. Everything it creates (config, container, session volume) is removed before it returns.
 */
export async function runSelftest(options: SelftestOptions = {}): Promise<SelftestReport> {
  const started = Date.now();
  const image = options.image ?? DEFAULT_AGENT_IMAGE;
  const step = options.onStep ?? (() => undefined);
  const baseEnv = options.env ?? process.env;
  const root = mkdtempSync(join(tmpdir(), 'agent-dispatch-selftest-'));
  const agent = `selftest-${randomBytes(4).toString('hex')}`;
  const canary = `selftest-canary-${randomBytes(8).toString('hex')}`;
  const key = `sk-selftest-${randomBytes(8).toString('hex')}`;
  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    AGENT_DISPATCH_CONFIG: join(root, 'config', 'agents.yaml'),
    AGENT_DISPATCH_DEPTH: '0',
    // Only the throwaway key may travel: the user's real credentials are blanked out.
    ...Object.fromEntries(CREDENTIAL_ENV.map((name) => [name, ''])),
    ANTHROPIC_API_KEY: key,
    AGENT_DISPATCH_SELFTEST_CANARY: canary,
  };
  const runner = createSandboxRunner({ runDir: join(root, 'run'), extraLabels: containerLabels(baseEnv), gatewayImage: options.gatewayImage ?? gatewayImage(baseEnv) }, env);
  const job = newJobId();
  const services: Server[] = [];
  let leftover = -1;
  try {
    const host = await runner.bridgeAddress();
    step(`scripted model on ${host}`);
    const model = await startFakeModel({ host });
    env['ANTHROPIC_BASE_URL'] = model.url;
    const allowedBody = `selftest-allowed-${randomBytes(4).toString('hex')}`;
    const allowed = { host, port: await serve(services, host, allowedBody), body: allowedBody };
    const hostService = { host, port: await serve(services, '0.0.0.0', 'host-service') };
    try {
      const repo = join(root, 'repo');
      mkdirSync(repo);
      writeFileSync(join(repo, 'selftest.txt'), 'readable\n');
      // A sibling of the repo: the repo's parent directories exist in the container (mount points), files beside it must not.
      writeFileSync(join(root, 'outside.txt'), 'outside\n');
      const configPath = env['AGENT_DISPATCH_CONFIG']!;
      mkdirSync(join(root, 'config', 'policies'), { recursive: true });
      const policy = gatewayPolicy(image, {
        description: 'agent-dispatch selftest',
        network: { mode: 'gateway', allow: [`${allowed.host}:${allowed.port}`] },
        tools: { permission_mode: 'default', allow: ['Bash'], deny: ['WebFetch', 'WebSearch'] },
        resources: { memory: '1g', cpus: 1, pids: 256, nofile: 1024, tmp_size: '64m', timeout: 120 },
      });
      writeFileSync(join(root, 'config', 'policies', 'selftest.yaml'), stringify(policy));
      const settings = { warm_pool: options.warm ? 1 : 0 };
      writeFileSync(configPath, stringify({ agents: { [agent]: { directory: repo, policy: 'selftest', description: 'selftest' } }, settings }), { mode: 0o600 });
      const service = new DispatchService(env, runner);
      step(`dispatching to a sandboxed claude in ${image}, behind its egress gateway`);
      const config = requireConfig(loadConfig(configPath));
      const hostPaths = [configPath, join(root, 'outside.txt'), baseEnv['HOME'] ? join(baseEnv['HOME'], '.config') : '/root/.config'];
      const probe = `${probeScript({ repo, canary, hostPaths })}\n${networkProbeScript({ allowed, hostService, secret: key })}`;
      if (options.warm) {
        step('filling the warm pool');
        runner.enableWarmPool();
        await service.dispatch(config, { agent, task: DIRECTIVE.reply('warm-up') });
        await runner.warmPool.settled();
      }
      const claimedBefore = runner.warmPool.claimed;
      const result = await service.dispatch(config, { agent, ...(options.signal ? { signal: options.signal } : {}), task: DIRECTIVE.bash(probe) }, job);
      const servedWarm = runner.warmPool.claimed > claimedBefore;
      const facts = result.success ? parseProbe(result.result) : undefined;
      const keyArrived = model.requests.some((r) => r.apiKey === key);
      const otherCredentials = model.requests.filter((r) => (r.apiKey !== undefined && r.apiKey !== key) || r.authorization !== undefined).length;
      leftover = await runner.leftoverContainers(job).catch(() => -1);
      await runner.shutdown();
      const gatewaysLeft = await runner.agentContainers(agent).catch(() => -1);
      const checks = [
        ...judge(result, facts, { keyArrived, otherCredentials, leftover }),
        ...judgeNetwork(result, facts, { allowed, hostService, gatewaysLeft }),
        ...(options.warm ? [{ name: 'the probe ran in a pre-started sandbox', ok: servedWarm, detail: servedWarm ? 'claimed from the warm pool' : 'the warm pool had no sandbox ready: it ran cold' }] : []),
      ];
      return { ok: checks.every((c) => c.ok), image, checks, dispatch: result, notes: NOTES, durationMs: Date.now() - started };
    } finally {
      await model.close();
    }
  } finally {
    await runner.shutdown();
    await Promise.all(services.map((s) => new Promise((resolve) => s.close(resolve))));
    await removeAgentVolumes(agent, volumeScope(join(root, 'config'), join(root, 'repo')), baseEnv);
    rmSync(root, { recursive: true, force: true });
  }
}

/** A one-line HTTP service on host:0; resolves to its port. */
export function serve(services: Server[], host: string, body: string): Promise<number> {
  const server = createServer((_req, res) => res.end(body));
  services.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

export function judgeNetwork(
  result: DispatchResult,
  facts: ProbeFacts | undefined,
  seen: { allowed: { host: string; port: number }; hostService: { host: string; port: number }; gatewaysLeft: number },
): Check[] {
  const failed = result.success ? 'the probe did not report this' : `the dispatch failed (${result.error_type})`;
  const fact = (name: string, test: (f: ProbeFacts) => [boolean, string]): Check => {
    if (!facts) return { name, ok: false, detail: failed };
    const [ok, detail] = test(facts);
    return { name, ok, detail };
  };
  const refused = `${seen.hostService.host}:${seen.hostService.port}`;
  return [
    fact('the API key is nowhere in the container', (f) => [f.secret_in_env === '0' && f.secret_in_proc === '0' && f.secret_in_home === '0', `env ${f.secret_in_env ?? '?'}, /proc ${f.secret_in_proc ?? '?'}, files under ~ ${f.secret_in_home ?? '?'}`]),
    fact('DNS does not resolve', (f) => [f.dns?.startsWith('failed') === true, f.dns ?? '?']),
    fact('only loopback, no IPv6 route', (f) => [f.interfaces === 'lo' && (f.ipv6 === 'none' || f.ipv6 === 'lo'), `interfaces ${f.interfaces ?? '?'}; IPv6 ${f.ipv6 ?? '?'}`]),
    fact('allowlisted host reachable through the gateway', (f) => [f.allowed_via_proxy === 'reached', `${seen.allowed.host}:${seen.allowed.port}: ${f.allowed_via_proxy ?? '?'}`]),
    fact('other hosts refused, with the policy reason', (f) => [f.denied_via_proxy === '403:policy', `${refused}: ${f.denied_via_proxy ?? '?'}`]),
    fact('no direct connection, even to an allowed host', (f) => [f.direct_allowed?.startsWith('failed') === true, f.direct_allowed ?? '?']),
    fact('host services on 0.0.0.0 unreachable', (f) => [f.host_service?.startsWith('failed') === true, `${refused}: ${f.host_service ?? '?'}`]),
    {
      name: 'the gateway reported the refusal',
      ok: (result.egress?.denied ?? 0) >= 1 && (result.egress?.denied_hosts ?? []).includes(refused),
      detail: result.egress ? `allowed ${result.egress.allowed}, denied ${result.egress.denied} (${result.egress.denied_hosts.join(', ') || 'none'})` : 'no egress summary',
    },
    { name: 'gateway removed at shutdown', ok: seen.gatewaysLeft === 0, detail: seen.gatewaysLeft < 0 ? 'could not ask the engine' : `${seen.gatewaysLeft} left` },
  ];
}

export function judge(result: DispatchResult, facts: ProbeFacts | undefined, seen: { keyArrived: boolean; otherCredentials: number; leftover: number }): Check[] {
  const failed = result.success ? 'the probe did not report this' : `the dispatch failed (${result.error_type}): ${result.error ?? ''}${result.hint ? ` — ${result.hint}` : ''}`;
  const fact = (name: string, test: (f: ProbeFacts) => [boolean, string]): Check => {
    if (!facts) return { name, ok: false, detail: failed };
    const [ok, detail] = test(facts);
    return { name, ok, detail };
  };
  return [
    { name: 'claude ran in the sandbox and answered', ok: result.success && seen.keyArrived, detail: result.success ? `session ${result.session_id ?? '?'}; the key reached the scripted model through the gateway` : failed },
    fact('repo is readable', (f) => [f.repo_read === 'readable', `read: ${f.repo_read ?? '(nothing)'}`]),
    fact('repo is read-only', (f) => [f.repo_write === 'refused', `write: ${f.repo_write ?? '?'}`]),
    fact('root filesystem is read-only', (f) => [f.root_write === 'refused', `write to /: ${f.root_write ?? '?'}`]),
    fact('not root', (f) => [f.uid !== undefined && f.uid !== '0', `uid ${f.uid ?? '?'}`]),
    fact('no capabilities', (f) => [isZero(f.CapEff) && isZero(f.CapBnd), `CapEff ${f.CapEff ?? '?'}, CapBnd ${f.CapBnd ?? '?'}`]),
    fact('no new privileges', (f) => [f.NoNewPrivs === '1', `NoNewPrivs ${f.NoNewPrivs ?? '?'}`]),
    fact("server's secret not in the environment", (f) => [f.secret_env === '0' && f.secret_proc === '0', `env: ${f.secret_env ?? '?'}, /proc: ${f.secret_proc ?? '?'} occurrence(s)`]),
    fact('host files outside the repo are absent', (f) => [f.host_paths === 'absent', `agents.yaml, a file beside the repo, ~/.config: ${f.host_paths ?? '?'}`]),
    fact('no Docker socket', (f) => [f.docker_sock === 'absent', `/var/run/docker.sock: ${f.docker_sock ?? '?'}`]),
    { name: 'only the throwaway key reached the model', ok: seen.otherCredentials === 0, detail: `${seen.otherCredentials} request(s) carried another credential` },
    { name: 'container removed after the dispatch', ok: seen.leftover === 0, detail: seen.leftover < 0 ? 'could not ask the engine' : `${seen.leftover} left` },
  ];
}

function isZero(mask: string | undefined): boolean {
  return mask !== undefined && /^0+$/.test(mask);
}
