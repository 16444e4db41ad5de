import { statSync } from 'node:fs';
import type { DispatchConfig } from '../config/schema.js';
import { jobsDir, stateDir } from '../config/paths.js';
import { AppError, describeError } from '../errors.js';
import { compileSandbox, type CompiledSandbox } from './compile.js';
import { lintCompiled, lintPolicy, type Finding } from './lint.js';
import { describePolicyProblem, loadPolicy, type PolicyLoad } from './load.js';

export interface AgentPolicyReport {
  agent: string;
  load: PolicyLoad;
  compiled?: CompiledSandbox;
  findings: Finding[];
}

export interface ResolveOptions {
  configDir?: string;
  hostEnv?: Readonly<Record<string, string | undefined>>;
  depth?: number;
  home?: string;
}

/** Load, compile and lint one agent's policy. Never throws: problems become error findings. */
export function resolveAgentPolicy(config: DispatchConfig, name: string, options: ResolveOptions = {}): AgentPolicyReport {
  const agent = config.agents[name];
  if (!agent) throw new AppError('AGENT_NOT_FOUND', `Unknown agent: '${name}'`);
  const configDir = options.configDir ?? stateDir();
  const load = loadPolicy(agent.policy, configDir);
  if (load.kind !== 'ok') {
    return { agent: name, load, findings: [{ severity: 'error', code: 'policy-invalid', message: describePolicyProblem(load) }] };
  }
  const findings = lintPolicy(load.policy, {
    repo: agent.directory,
    policyPath: load.source.path,
    stateDirs: [configDir, jobsDir({ ...(options.hostEnv ?? process.env) })],
    ...(options.home ? { home: options.home } : {}),
  });
  try {
    const compiled = compileSandbox({
      agentName: name,
      agent,
      settings: config.settings,
      policy: load.policy,
      policyRef: agent.policy,
      policyHash: load.hash,
      hostEnv: options.hostEnv ?? process.env,
      depth: options.depth ?? 0,
      scope: configDir,
      ...repoOwner(agent.directory),
    });
    return { agent: name, load, compiled, findings: [...findings, ...lintCompiled(compiled)] };
  } catch (error) {
    return { agent: name, load, findings: [...findings, { severity: 'error', code: 'compile-failed', message: describeError(error) }] };
  }
}

function repoOwner(dir: string): { repoOwner?: { uid: number; gid: number } } {
  try {
    const st = statSync(dir);
    return { repoOwner: { uid: st.uid, gid: st.gid } };
  } catch {
    return {};
  }
}
