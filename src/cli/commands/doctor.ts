import { dirname } from 'node:path';
import { configPath } from '../../config/paths.js';
import { describeConfigProblem, loadConfig } from '../../config/load.js';
import { unknownGroupMembers, warmPoolConfig, type DispatchConfig } from '../../config/schema.js';
import { blockingFindings } from '../../policy/lint.js';
import { resolveAgentPolicy } from '../../policy/resolve.js';
import { directoryHealth } from '../../project/detect.js';
import { repoEntryKind } from '../../project/safe-read.js';
import { createEngine, type Engine } from '../../sandbox/engine.js';
import { engineDockerOptions } from '../../sandbox/engine-options.js';
import { effectiveEngineSpec, engineLabel, parseEngineSpec, type EngineSpec } from '../../config/engine-spec.js';
import { GATEWAY_PROTOCOL } from '../../gateway/protocol.js';
import { serverCredentialName } from '../../policy/schema.js';
import { gatewayBuildHint, gatewayImage, GATEWAY_PROTOCOL_LABEL } from '../../sandbox/gateway-image.js';
import { imageBuildHint } from '../../sandbox/image.js';
import { describeError } from '../../errors.js';
import { parse } from '../args.js';
import type { CommandSpec } from '../spec.js';
import { claudeMcp } from '../claude-mcp.js';
import { SERVER_NAME, survey } from '../mcp-survey.js';
import { fsProbe, isPythonOriginalScript, thisProgram, type This } from '../registration.js';
import { removeCommand, selfInvocation, where, why } from '../registration-report.js';
import { registrationJudge, serverScript } from './init.js';
import { which } from '../which.js';
import { out, style } from '../output.js';

type Status = 'OK' | 'WARN' | 'FAIL';

class Report {
  issues = 0;
  warnings = 0;

  section(title: string): void {
    out();
    out(style.bold(title));
  }

  line(status: Status, message: string, ...next: string[]): void {
    if (status === 'FAIL') this.issues++;
    if (status === 'WARN') this.warnings++;
    const tag = status === 'OK' ? style.green('[OK]') : status === 'WARN' ? style.yellow('[WARN]') : style.red('[FAIL]');
    out(`  ${tag} ${message}`);
    for (const n of next) out(`         ${n}`);
  }
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export const doctorSpec: CommandSpec = {
  name: 'doctor',
  summary: 'Check claude, Docker, config, MCP registration, agents, policies, images, the egress gateway and groups',
  args: [],
  options: {},
  notes: ['Exit codes: 0 all checks passed (warnings allowed), 1 any FAIL, 3 Docker engine unreachable.'],
};

/** The engine of an agents.yaml engine spec (doctor checks each one the config names). */
export type EngineFactory = (spec: EngineSpec) => Engine;

const configuredEngine: EngineFactory = (spec) => createEngine(engineDockerOptions(spec, process.env));

export async function doctorCommand(argv: string[], engine: Engine = createEngine(), engineFor: EngineFactory = configuredEngine): Promise<number> {
  parse(doctorSpec, argv);
  const r = new Report();
  // How to run this program from a shell: `agent-dispatch` only when that is it on PATH.
  const self = thisProgram(serverScript());
  const invocation = selfInvocation(self, fsProbe());

  r.section('Environment');
  const claude = which('claude');
  if (claude) r.line('OK', `claude CLI: ${claude}`);
  else r.line('FAIL', 'claude CLI not found on PATH', 'Install Claude Code: https://docs.anthropic.com/en/docs/claude-code');
  checkPathCommand(r, self, invocation);

  r.section('Docker');
  let engineUp = false;
  try {
    const info = await engine.info();
    engineUp = true;
    r.line('OK', `Docker engine reachable: server ${info.version} (API ${info.apiVersion})`);
  } catch (error) {
    r.line('FAIL', describeError(error), 'Start the Docker engine (or set DOCKER_HOST); every dispatch runs in a container.');
  }

  r.section('Config');
  const path = configPath();
  const load = loadConfig(path);
  let config: DispatchConfig | undefined;
  if (load.kind === 'missing') {
    r.line('WARN', `Config not found: ${path}`, `Run: ${invocation} init`);
  } else if (load.kind === 'invalid') {
    const title = { schema: 'Config schema invalid', yaml: 'Config not valid YAML', encoding: 'Config is not valid UTF-8', unreadable: 'Config could not be read' }[load.problem];
    r.line('FAIL', title, describeConfigProblem(load), ...(load.problem === 'encoding' ? ['Re-save the file as UTF-8.'] : []));
  } else {
    config = load.config;
    r.line('OK', `Config: ${path} (${plural(Object.keys(config.agents).length, 'agent')})`);
  }

  r.section('MCP registration');
  if (!claude) r.line('WARN', 'Skipped (claude CLI missing)');
  else checkRegistration(r, claude, invocation);

  r.section('Agents');
  const images = new Set<string>();
  const gated: string[] = [];
  const remote = new Map<string, RemoteNeeds>();
  if (!config) r.line('WARN', 'Skipped (no usable config)');
  else if (Object.keys(config.agents).length === 0) r.line('WARN', 'No agents configured. Add one: agent-dispatch add <name> <directory>');
  else for (const name of Object.keys(config.agents)) checkAgent(r, config, name, images, gated, remote);

  r.section('Agent images');
  if (!engineUp) r.line('WARN', 'Skipped (Docker engine not reachable)');
  else if (images.size === 0 && remote.size === 0) r.line('WARN', 'No agent with a valid policy, so no image to check');
  for (const image of engineUp ? images : []) {
    try {
      if (await engine.imageExists(image)) r.line('OK', `${image} present`);
      else r.line('FAIL', `${image} is not present locally (agent-dispatch never pulls images)`, imageBuildHint(image));
    } catch (error) {
      r.line('FAIL', describeError(error));
    }
  }

  r.section('Egress gateway');
  await checkGateway(r, engine, engineUp, gated, images.size > 0 || remote.size === 0);

  if (config && (config.settings.engine !== undefined || remote.size > 0)) {
    r.section('Remote engines');
    await checkRemoteEngines(r, config, remote, engineFor);
  }

  r.section('Warm pool');
  await checkWarmPool(r, engine, engineUp, config);

  r.section('Groups');
  if (config) checkGroups(r, config);

  r.section('Summary');
  if (r.issues === 0 && r.warnings === 0) out(style.green('  All checks passed.'));
  else out(`  ${plural(r.issues, 'issue')}, ${plural(r.warnings, 'warning')}`);
  // 3 when the engine is down whatever else failed (it is what to fix first), as image build does.
  return !engineUp ? 3 : r.issues > 0 ? 1 : 0;
}

/**
 * What a user typing `agent-dispatch …` runs. The Python original there is an error: its `test` (and every
 * command that dispatches) runs claude unsandboxed, and it edits the same agents.yaml.
 */
function checkPathCommand(r: Report, self: This, invocation: string): void {
  const found = which('agent-dispatch');
  if (!found) return r.line('WARN', 'agent-dispatch not on PATH (MCP server still works via absolute path)');
  if (fsProbe().command(found) === self.script) return r.line('OK', `agent-dispatch on PATH: ${found} (this program)`);
  if (!isPythonOriginalScript(found)) return;
  r.line(
    'FAIL',
    `agent-dispatch on PATH is the Python original: ${found}`,
    'Commands typed as `agent-dispatch ...` run it, and its `test` dispatches unsandboxed, directly on this machine.',
    `Fix: uninstall it (pip uninstall agent-dispatch, or pipx/uv tool uninstall agent-dispatch), then put this program on PATH (npm link in ${dirname(dirname(self.script))}); until then run ${invocation}`,
  );
}

/** Registered as this program — not as the Python original or anything else, under this or any name. */
function checkRegistration(r: Report, claude: string, invocation: string): void {
  const found = survey(claudeMcp(claude), registrationJudge());
  if (!found.ok) return r.line('WARN', `Could not check MCP registration: ${found.message}`);
  const { current, foreign, incomplete } = found.value;
  if (current?.verdict.kind === 'ours') r.line('OK', `${SERVER_NAME} is registered with Claude Code (${current.scope} scope; this program: ${serverScript()})`);
  else if (!current) r.line('WARN', `${SERVER_NAME} is not registered with Claude Code`, `Run: ${invocation} init`);
  for (const f of foreign) {
    const title = f.name === SERVER_NAME ? `${SERVER_NAME} is registered with Claude Code as another program: ${where(f)}` : `MCP server ${f.name} runs the Python original: ${where(f)}`;
    r.line('FAIL', title, why(f), `Fix: ${invocation} init --replace (or: ${removeCommand(f)})`);
  }
  if (incomplete) r.line('WARN', `Could not look for other registrations of the Python original: ${incomplete}`);
}

/** Agents whose policy routes through the gateway need its image and a credential for it to add. */
async function checkGateway(r: Report, engine: Engine, engineUp: boolean, gated: string[], localImage = true): Promise<void> {
  if (gated.length === 0) return r.line('OK', 'No agent routes through the gateway (network.mode: open everywhere)');
  const credential = serverCredentialName(process.env);
  if (credential) r.line('OK', `The gateway will add ${credential} from this environment to ${plural(gated.length, 'agent')}'s API requests`);
  else {
    // A warning: the MCP server's environment (claude mcp add -e ...) may hold what this shell does not.
    r.line('WARN', `No Anthropic credential in this environment for the gateway to add (dispatches to ${gated.join(', ')} fail without one)`, 'Set ANTHROPIC_API_KEY, or ANTHROPIC_AUTH_TOKEN / CLAUDE_CODE_OAUTH_TOKEN (claude setup-token), where the MCP server starts (claude mcp add ... -e NAME=value).');
  }
  if (!localImage) return;
  if (!engineUp) return r.line('WARN', 'Gateway image not checked (Docker engine not reachable)');
  const image = gatewayImage(process.env);
  try {
    const labels = await engine.imageLabels(image);
    if (!labels) r.line('FAIL', `${image} is not present locally (agent-dispatch never pulls images)`, gatewayBuildHint(image));
    else if (labels[GATEWAY_PROTOCOL_LABEL] !== String(GATEWAY_PROTOCOL)) r.line('FAIL', `${image} speaks gateway protocol ${labels[GATEWAY_PROTOCOL_LABEL] ?? 'none'}, this version ${GATEWAY_PROTOCOL}`, gatewayBuildHint(image));
    else r.line('OK', `${image} present (protocol ${GATEWAY_PROTOCOL})`);
  } catch (error) {
    r.line('FAIL', describeError(error));
  }
}

/** settings.warm_pool, and the pre-started sandboxes serving servers keep on the engine now. */
async function checkWarmPool(r: Report, engine: Engine, engineUp: boolean, config: DispatchConfig | undefined): Promise<void> {
  const pool = config ? warmPoolConfig(config.settings) : undefined;
  if (pool?.size === 0) r.line('OK', 'Off (settings.warm_pool: 0): every dispatch starts a fresh container');
  else if (pool) r.line('OK', `${pool.size} pre-started ${pool.size === 1 ? 'sandbox' : 'sandboxes'} per agent dispatched in the last ${pool.idle_minutes} min (a serving server only; at most ${pool.memory_mb} MB idle in all)`);
  if (!engineUp || !engine.warmSandboxes) return;
  try {
    const counts = [...(await engine.warmSandboxes())].map(([agent, n]) => `${agent} ${n}`);
    r.line('OK', counts.length === 0 ? 'No pre-started sandbox on the engine now' : `Pre-started sandboxes on the engine now (idle or serving): ${counts.join(', ')}`);
  } catch (error) {
    r.line('WARN', `Could not list the pre-started sandboxes: ${describeError(error)}`);
  }
}

function checkAgent(r: Report, config: DispatchConfig, name: string, images: Set<string>, gated: string[], remote: Map<string, RemoteNeeds>): void {
  const agent = config.agents[name]!;
  const health = directoryHealth(agent.directory);
  if (health === false) r.line('FAIL', `${name}: directory missing - ${agent.directory}`);
  else if (health === 'UNREADABLE') r.line('FAIL', `${name}: directory unreadable - ${agent.directory}`);
  else {
    const files = ['CLAUDE.md', '.mcp.json'].filter((f) => repoEntryKind(agent.directory, f) !== undefined);
    r.line('OK', `${name}: ${agent.directory}${files.length ? ` [${files.join(', ')}]` : ''}`);
  }
  const report = resolveAgentPolicy(config, name);
  const errors = blockingFindings(report.findings);
  if (report.load.kind !== 'ok') r.line('FAIL', `${name}: policy '${agent.policy}' unusable`, errors[0]?.message ?? '');
  else if (errors.length > 0) r.line('FAIL', `${name}: policy '${agent.policy}' has ${plural(errors.length, 'error')}: ${errors.map((e) => e.code).join(', ')}`, `Run: agent-dispatch policy check --agent ${name}`);
  else r.line('OK', `${name}: policy '${agent.policy}' valid`);
  if (report.load.kind !== 'ok') return;
  const gateway = report.load.policy.network.mode === 'gateway';
  if (gateway) gated.push(name);
  const spec = effectiveEngineSpec(agent, config.settings);
  if (spec === undefined) {
    images.add(report.load.policy.image);
    return;
  }
  const parsed = parseEngineSpec(spec);
  if (!parsed.ok) return;
  const needs = remote.get(parsed.key) ?? { spec, label: engineLabel(parsed.engine), images: new Map<string, string>() };
  remote.set(parsed.key, needs);
  for (const image of [report.load.policy.image, ...(gateway ? [gatewayImage(process.env)] : [])]) if (!needs.images.has(image)) needs.images.set(image, name);
}

/** An engine agents.yaml names, and the images its agents need there (image → an agent that needs it). */
interface RemoteNeeds {
  spec: EngineSpec;
  label: string;
  images: Map<string, string>;
}

/**
 * Each engine the config names: it answers (server version), and holds every image its agents need, which is
 * copied there from this machine's engine (never pulled, never built there).
 */
async function checkRemoteEngines(r: Report, config: DispatchConfig, remote: Map<string, RemoteNeeds>, engineFor: EngineFactory): Promise<void> {
  const settings = config.settings.engine;
  if (settings !== undefined) {
    const parsed = parseEngineSpec(settings);
    if (parsed.ok && !remote.has(parsed.key)) remote.set(parsed.key, { spec: settings, label: engineLabel(parsed.engine), images: new Map() });
  }
  for (const needs of remote.values()) {
    let engine: Engine;
    let version: string;
    try {
      engine = engineFor(needs.spec);
      const info = await engine.info();
      version = `${info.version} (API ${info.apiVersion})`;
    } catch (error) {
      r.line('FAIL', `${needs.label}: ${describeError(error)}`, 'Check the address and credentials in agents.yaml and that the engine runs there; dispatches to its agents fail until it answers.');
      continue;
    }
    r.line('OK', `${needs.label} reachable: server ${version}`);
    for (const [image, agent] of needs.images) {
      try {
        if (await engine.imageExists(image)) r.line('OK', `${needs.label}: ${image} present`);
        else r.line('FAIL', `${needs.label}: ${image} is not there (agent-dispatch never pulls images)`, `Copy it from this machine: agent-dispatch image copy --agent ${agent}`);
      } catch (error) {
        r.line('FAIL', `${needs.label}: ${describeError(error)}`);
      }
    }
  }
}

function checkGroups(r: Report, config: DispatchConfig): void {
  const groups = Object.entries(config.groups);
  if (groups.length === 0) {
    r.line('OK', 'No groups configured');
    return;
  }
  const recreate = (g: string) => `Fix by recreating: agent-dispatch group remove ${g} && agent-dispatch group add ${g} --member ... (or edit agents.yaml)`;
  for (const [name, group] of groups) {
    const unknown = unknownGroupMembers(config, group);
    if (unknown.length > 0) r.line('FAIL', `${name}: unknown member(s): ${unknown.join(', ')}`, recreate(name));
    else if (group.members.length === 0) r.line('WARN', `${name}: no members configured`, recreate(name));
    else r.line('OK', `${name}: ${plural(group.members.length, 'member')}`);
  }
}
