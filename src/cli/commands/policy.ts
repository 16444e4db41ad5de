import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { stateDir } from '../../config/paths.js';
import { loadConfig, describeConfigProblem } from '../../config/load.js';
import { agentSchema, type DispatchConfig } from '../../config/schema.js';
import {
  compileSandbox,
  describePolicyProblem,
  bySeverity,
  formatRule,
  lintPolicy,
  loadPolicy,
  loadPolicyFile,
  redactCompiled,
  resolveAgentPolicy,
  type CompiledSandbox,
  type Finding,
  type Policy,
  type PolicyLoad,
} from '../../policy/index.js';
import { AppError } from '../../errors.js';
import { parse, str, UsageError } from '../args.js';
import type { CommandGroup, CommandSpec } from '../spec.js';
import { out, style } from '../output.js';

/** Exit codes of `policy check`: CI gates on them. */
export const POLICY_EXIT = { clean: 0, findings: 1, unusable: 2 } as const;

interface CheckResult {
  subject: string;
  load: PolicyLoad;
  compiled?: CompiledSandbox;
  findings: Finding[];
}

const checkSpec: CommandSpec = {
  name: 'policy check',
  summary: 'Validate policies and lint them (exit 0 clean, 1 error findings, 2 unusable input)',
  args: [{ name: 'PATH', variadic: true, description: 'policy files to check (none: every configured agent)' }],
  options: {
    agent: { type: 'string', value: 'NAME', description: "check this agent's policy (also with PATHs)" },
    json: { type: 'boolean', description: 'print the results as JSON' },
  },
};

const showSpec: CommandSpec = {
  name: 'policy show',
  summary: 'Print the compiled container spec, network and claude arguments as JSON (secrets redacted)',
  args: [{ name: 'NAME', description: 'an agent, or a policy preset or path' }],
  options: {},
};

export const policyCommands: CommandGroup = {
  name: 'policy',
  summary: 'Sandbox policies',
  subcommands: [
    { spec: checkSpec, run: policyCheck },
    { spec: showSpec, run: policyShow },
  ],
};

function requireUsableConfig(): DispatchConfig {
  const load = loadConfig();
  if (load.kind === 'invalid') throw new AppError('CONFIG_INVALID', describeConfigProblem(load));
  return load.config;
}

function checkAgents(config: DispatchConfig, only?: string): CheckResult[] {
  const names = only ? [only] : Object.keys(config.agents);
  return names.map((name) => {
    if (!(name in config.agents)) throw new AppError('AGENT_NOT_FOUND', `Agent '${name}' not found. Run 'agent-dispatch list' to see agents.`);
    const report = resolveAgentPolicy(config, name);
    return { subject: `agent ${name}`, load: report.load, ...(report.compiled ? { compiled: report.compiled } : {}), findings: report.findings };
  });
}

function checkFile(path: string): CheckResult {
  const absolute = resolve(path);
  if (!existsSync(absolute)) {
    return { subject: `policy ${path}`, load: { kind: 'not-found', ref: path, searched: [absolute] }, findings: [] };
  }
  const load = loadPolicyFile({ ref: path, path: absolute, preset: false });
  if (load.kind !== 'ok') return { subject: `policy ${path}`, load, findings: [] };
  return { subject: `policy ${path}`, load, findings: lintPolicy(load.policy, { policyPath: absolute }) };
}

async function policyCheck(argv: string[]): Promise<number> {
  const p = parse(checkSpec, argv);
  const agent = str(p, 'agent');
  const results: CheckResult[] = p.positionals.map(checkFile);
  if (agent !== undefined || p.positionals.length === 0) {
    try {
      results.push(...checkAgents(requireUsableConfig(), agent));
    } catch (error) {
      // CI gates on the exit code: an unknown agent or a broken config is unusable input (2), not findings (1).
      if (error instanceof AppError) throw new UsageError(error.message);
      throw error;
    }
  }
  const unusable = results.filter((r) => r.load.kind !== 'ok');
  const errors = results.flatMap((r) => r.findings).filter((f) => f.severity === 'error');
  const warnings = results.flatMap((r) => r.findings).filter((f) => f.severity === 'warning');
  if (p.values['json']) {
    out(JSON.stringify({ results: results.map(toJson), summary: { checked: results.length, unusable: unusable.length, errors: errors.length, warnings: warnings.length } }, null, 2));
  } else {
    if (results.length === 0) out('No agents configured and no policy files given: nothing to check. Try: agent-dispatch policy check policies/*.yaml');
    for (const r of results) printResult(r);
    out(`Summary: ${results.length} checked, ${unusable.length} unusable, ${errors.length} error(s), ${warnings.length} warning(s)`);
  }
  if (unusable.length > 0) return POLICY_EXIT.unusable;
  return errors.length > 0 ? POLICY_EXIT.findings : POLICY_EXIT.clean;
}

function toJson(r: CheckResult): Record<string, unknown> {
  const base: Record<string, unknown> = { subject: r.subject, valid: r.load.kind === 'ok' };
  if (r.load.kind === 'ok') base['policy'] = { ref: r.load.source.ref, path: r.load.source.path, preset: r.load.source.preset, hash: r.load.hash };
  else base['problem'] = describePolicyProblem(r.load);
  if (r.compiled && r.load.kind === 'ok') base['effective'] = effective(r.compiled);
  base['findings'] = r.findings;
  return base;
}

function effective(c: CompiledSandbox): Record<string, unknown> {
  return {
    mounts: c.mounts,
    env_names: c.envNames,
    network: { mode: c.network.mode, anthropic_api: true, allow: c.network.allow.map(formatRule) },
    tools: { permission_mode: c.tools.permissionMode, allowed: c.tools.allowedTools, denied: c.tools.disallowedTools },
    mcp_servers: c.managedSettings.allowedMcpServers?.map((s) => s.serverName) ?? 'repo',
    resources: {
      memory_bytes: c.container.HostConfig.Memory,
      cpus: c.container.HostConfig.NanoCpus / 1e9,
      pids: c.container.HostConfig.PidsLimit,
      ulimits: c.container.HostConfig.Ulimits,
      timeout_seconds: c.timeoutSeconds,
    },
    image: c.container.Image,
  };
}

function printResult(r: CheckResult): void {
  out(style.bold(r.subject));
  if (r.load.kind !== 'ok') {
    out(`  ${style.red('UNUSABLE')} ${describePolicyProblem(r.load)}`);
    for (const f of r.findings.filter((x) => x.code !== 'policy-invalid')) printFinding(f);
    out();
    return;
  }
  const policy = r.load.policy;
  out(`  policy:      ${r.load.source.ref} (${r.load.source.preset ? 'preset' : 'file'} ${r.load.source.path}, hash ${r.load.hash})`);
  if (r.compiled) {
    const c = r.compiled;
    out('  mounts:');
    for (const m of c.mounts) out(`    ${m.mode.padEnd(7)} ${m.kind.padEnd(6)} ${m.source} -> ${m.target}  (${m.what})`);
    out(`  env names:   ${c.envNames.join(', ')}`);
  } else {
    out(`  repo:        ${policy.repo} at the agent's own path${policy.repo === 'rw' ? ` (.git ${policy.repo_git === 'writable' ? style.yellow('WRITABLE') : 'read-only'})` : ''}`);
    for (const m of policy.mounts) out(`  mount:       ${m.mode} ${m.source} -> ${m.target ?? m.source}`);
    out(`  env:         pass [${policy.env.pass.join(', ')}], set [${Object.keys(policy.env.set).join(', ')}]`);
  }
  const allow = policy.network.allow.length ? policy.network.allow.join(', ') : 'nothing else';
  out(`  network:     ${policy.network.mode === 'open' ? style.yellow('OPEN (plain bridge, no allowlist)') : `gateway only — Anthropic API + ${allow}`}`);
  out(`  credentials: ${policy.credentials === 'inject' ? 'injected by the gateway; the container sees a placeholder' : style.yellow('passed INTO the container')}`);
  const tools = r.compiled?.tools;
  out(
    `  tools:       permission_mode ${tools?.permissionMode ?? policy.tools.permission_mode}; allowed ${listOr(tools?.allowedTools ?? policy.tools.allow, 'any (no policy limit)')}; denied ${listOr(tools?.disallowedTools ?? policy.tools.deny, 'none')}`,
  );
  out(`  mcp servers: ${mcpServersLine(policy.tools.mcp_servers)}`);
  const res = policy.resources;
  out(`  resources:   memory ${res.memory}, cpus ${res.cpus}, pids ${res.pids}, nofile ${res.nofile}, timeout ${r.compiled?.timeoutSeconds ?? res.timeout}s, image ${policy.image}`);
  for (const f of bySeverity(r.findings)) printFinding(f);
  out();
}

function mcpServersLine(servers: Policy['tools']['mcp_servers']): string {
  if (servers === 'none') return "none of the repo's .mcp.json servers start";
  if (servers === 'repo') return style.yellow("every server in the repo's .mcp.json starts (repo code runs at start)");
  return `only ${servers.join(', ')} from the repo's .mcp.json`;
}

function listOr(items: string[] | null, empty: string): string {
  return items === null ? empty : items.length === 0 ? '(none)' : items.join(', ');
}

function printFinding(f: Finding): void {
  const tag = f.severity === 'error' ? style.red('ERROR  ') : f.severity === 'warning' ? style.yellow('warning') : 'info   ';
  out(`  ${tag} ${f.code}: ${f.message}${f.fix ? ` — ${f.fix}` : ''}`);
}

async function policyShow(argv: string[]): Promise<number> {
  const p = parse(showSpec, argv);
  const name = p.positionals[0]!;
  const config = requireUsableConfig();
  if (name in config.agents) {
    const report = resolveAgentPolicy(config, name);
    if (report.load.kind !== 'ok' || !report.compiled) {
      throw new AppError('POLICY_INVALID', report.findings.map((f) => f.message).join('; '));
    }
    out(JSON.stringify(showJson(`agent ${name}`, report.load, report.compiled), null, 2));
    return 0;
  }
  const load = loadPolicy(name, stateDir());
  if (load.kind !== 'ok') {
    throw new AppError('POLICY_NOT_FOUND', `'${name}' is neither a configured agent nor a usable policy. ${describePolicyProblem(load)}`);
  }
  const agent = agentSchema.parse({ directory: process.cwd(), policy: name });
  const compiled = compileSandbox({
    agentName: 'example',
    agent,
    settings: config.settings,
    policy: load.policy,
    policyRef: name,
    policyHash: load.hash,
    hostEnv: process.env,
    depth: 0,
  });
  out(JSON.stringify({ ...showJson(`policy ${name}`, load, compiled), note: `compiled for an example agent whose directory is ${process.cwd()}` }, null, 2));
  return 0;
}

function showJson(subject: string, load: Extract<PolicyLoad, { kind: 'ok' }>, compiled: CompiledSandbox): Record<string, unknown> {
  const safe = redactCompiled(compiled, load.policy);
  return {
    subject,
    policy: { ref: load.source.ref, path: load.source.path, hash: load.hash },
    container: safe.container,
    network: safe.network,
    claude_args: safe.claudeArgs,
    managed_settings: safe.managedSettings,
    timeout_seconds: safe.timeoutSeconds,
    notes: safe.notes,
  };
}
