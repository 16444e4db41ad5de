import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeConfigProblem, loadConfig } from '../../config/load.js';
import { configPath } from '../../config/paths.js';
import { LOCAL_CALLER } from '../../core/caller.js';
import type { JobService } from '../../dispatch/jobs.js';
import { containerLabels } from '../../dispatch/service.js';
import { AppError, describeError } from '../../errors.js';
import { volumeScope } from '../../policy/layout.js';
import { engineLabel, namedEngines, type EngineSpec } from '../../config/engine-spec.js';
import { bounded } from '../../sandbox/engine-calls.js';
import { requireEngine } from '../../sandbox/engine-options.js';
import { judgeVolumes, listEngineVolumes, removeEngineVolumes, scopeKey, volumeKind, type AgentVolume, type ConfigScopes, type EngineVolumes, type VolumeVerdict } from '../../sandbox/volume-gc.js';
import type { VolumeRemoval } from '../../sandbox/volumes.js';
import { fail, int, parse } from '../args.js';
import { out, style, terminalSafe, warn } from '../output.js';
import { askOnTty, type Confirm } from '../prompt.js';
import type { CommandSpec } from '../spec.js';
import { cliJobs } from './jobs.js';

const DEFAULT_DAYS = 7;
/** How long one engine may take to list its volumes before gc reports it and goes on with the others. */
const ENGINE_MS = 20_000;

export const gcSpec: CommandSpec = {
  name: 'gc',
  summary: 'Delete finished jobs, and offer to remove the volumes of agents whose config no longer exists',
  args: [],
  options: {
    days: { type: 'string', value: 'N', description: `delete jobs finished more than N days ago (default: settings.job_retention_days when set, else ${DEFAULT_DAYS})` },
    all: { type: 'boolean', description: 'delete every finished job, whatever its age' },
    volumes: { type: 'boolean', description: 'remove the orphaned session and gateway volumes without asking' },
  },
  notes: [
    'Pending and running jobs are never deleted. A volume is orphaned when the config directory it was made for is',
    'gone, or no config there still has its agent at its directory; on a terminal gc asks before removing them.',
    "Every engine the config names is visited (settings.engine, agents.<name>.engine) besides the environment's;",
    'there the managed-settings volumes no container uses are removed with the orphaned ones.',
  ],
};

/** An engine gc visits: undefined spec = the environment's (DOCKER_HOST, else the local socket). */
export interface GcEngine {
  label: string;
  spec: EngineSpec | undefined;
}

/** What gc needs from outside: the jobs, the engines and their volumes, and the user. Tests replace them. */
export interface GcDeps {
  jobs: JobService;
  engines: () => GcEngine[];
  listVolumes: (engine: GcEngine) => Promise<EngineVolumes>;
  removeVolumes: (engine: GcEngine, volumes: AgentVolume[], settings: string[]) => Promise<VolumeRemoval>;
  confirm: Confirm;
  interactive: boolean;
  /** How long one engine may take to list (default ENGINE_MS). */
  engineMs?: number;
}

export function gcDeps(env: NodeJS.ProcessEnv = process.env): GcDeps {
  return {
    jobs: cliJobs(env),
    engines: () => gcEngines(env),
    // AGENT_DISPATCH_CONTAINER_LABELS marks everything this installation creates: gc then looks at nothing else.
    listVolumes: (engine) => listEngineVolumes(containerLabels(env), env, engine.spec),
    removeVolumes: (engine, volumes, settings) => removeEngineVolumes(volumes, settings, env, engine.spec),
    confirm: askOnTty,
    interactive: process.stdin.isTTY === true,
  };
}

/**
 * The environment's engine, then each other engine the config names (settings.engine, agents.<name>.engine),
 * each once however it is written. A config that does not load names none (its volumes are judged unknown anyway).
 */
export function gcEngines(env: NodeJS.ProcessEnv): GcEngine[] {
  const host = env['DOCKER_HOST'] || 'unix:///var/run/docker.sock';
  const engines: GcEngine[] = [{ label: `${host} (the environment's engine)`, spec: undefined }];
  const load = loadConfig();
  if (load.kind !== 'ok') return engines;
  const seen = new Set<string>([host.startsWith('unix://') ? host : 'environment']);
  for (const spec of namedEngines(load.config)) {
    const { engine, key } = requireEngine(spec);
    if (seen.has(key)) continue;
    seen.add(key);
    engines.push({ label: engineLabel(engine), spec });
  }
  return engines;
}

export async function gcCommand(argv: string[], deps: GcDeps = gcDeps()): Promise<number> {
  const p = parse(gcSpec, argv);
  if (p.values['all'] === true) {
    out(`Deleted ${await deps.jobs.gc(0, LOCAL_CALLER)} terminal job(s) (all ages).`);
  } else {
    const days = int(p, 'days') ?? retentionDays();
    if (days <= 0) fail(`--days must be > 0 (got ${days}). Use --all to purge every terminal job on purpose.`);
    out(`Deleted ${await deps.jobs.gc(days * 86_400, LOCAL_CALLER)} job(s) older than ${days} day(s).`);
  }
  return gcVolumes(deps, p.values['volumes'] === true);
}

/** settings.job_retention_days when it is set (the server applies the same), else 7. A broken config is not guessed around. */
function retentionDays(): number {
  const load = loadConfig();
  if (load.kind === 'invalid') {
    throw new AppError('CONFIG_INVALID', describeConfigProblem(load), { hint: 'Or pass --days N (or --all) to gc without reading the config.' });
  }
  return load.config.settings.job_retention_days || DEFAULT_DAYS;
}

interface EngineFindings {
  engine: GcEngine;
  orphaned: VolumeVerdict[];
  settings: string[];
}

/**
 * Every engine is listed at once, each within its bound; one that does not answer is reported and skipped. The
 * orphaned volumes and unused settings volumes of all engines are offered together and removed on their engine.
 */
async function gcVolumes(deps: GcDeps, remove: boolean): Promise<number> {
  const engines = deps.engines();
  const listed = await Promise.allSettled(engines.map((engine) => bounded(deps.listVolumes(engine), deps.engineMs ?? ENGINE_MS, `list the volumes on ${engine.label}`)));
  const found: EngineFindings[] = [];
  const silent: string[] = [];
  for (const [i, answer] of listed.entries()) {
    const engine = engines[i]!;
    out(`Volumes on ${terminalSafe(engine.label)}:`);
    if (answer.status === 'rejected') {
      silent.push(`${engine.label}: ${describeError(answer.reason)}`);
      warn(`volumes not checked on ${silent.at(-1)!}`);
      continue;
    }
    found.push(reportEngine(engine, answer.value));
  }
  if (silent.length === engines.length) {
    // Jobs are done; the volume check is a bonus unless --volumes asked for it.
    if (remove) throw new AppError('DOCKER_UNAVAILABLE', `No Docker engine answered (${silent.join('; ')}).`, { hint: "Start the engine, then run 'agent-dispatch gc --volumes' again." });
    return 0;
  }
  const count = found.reduce((n, f) => n + f.orphaned.length + f.settings.length, 0);
  const partial = remove && silent.length > 0 ? 1 : 0;
  if (count === 0) return partial;
  if (!remove && !(deps.interactive && (await deps.confirm(`Remove these ${count} volume(s) (session transcripts, gateway sockets, unused tool rules)?`)))) {
    out("Kept them. Remove them with 'agent-dispatch gc --volumes'.");
    return 0;
  }
  let failed = partial;
  for (const f of found.filter((x) => x.orphaned.length + x.settings.length > 0)) {
    const result = await deps.removeVolumes(f.engine, f.orphaned.map((v) => v.volume), f.settings);
    out(`${terminalSafe(f.engine.label)}: Removed ${result.removed.length} volume(s).`);
    for (const k of result.kept) warn(`kept ${k.name}: ${k.reason}`);
    if (result.unreachable) warn(`${f.engine.label} stopped answering: ${result.unreachable}. Run 'agent-dispatch gc --volumes' again.`);
    if (result.kept.length > 0 || result.unreachable) failed = 1;
  }
  return failed;
}

/** What one engine holds: the undecidable volumes (kept), the orphaned ones and the unused settings volumes. */
function reportEngine(engine: GcEngine, volumes: EngineVolumes): EngineFindings {
  const verdicts = judgeVolumes(volumes.agent, configScopes, dirname(configPath()));
  const orphaned = verdicts.filter((v) => v.verdict === 'orphaned');
  const unknown = verdicts.filter((v) => v.verdict === 'unknown');
  if (unknown.length > 0) {
    out(`Kept ${unknown.length} volume(s) whose config cannot be judged from here:`);
    for (const v of unknown) out(volumeLine(v));
  }
  if (orphaned.length === 0) out('No orphaned session or gateway volumes.');
  else {
    out(`${orphaned.length} volume(s) of agents whose config no longer exists:`);
    for (const v of orphaned) out(volumeLine(v));
  }
  if (volumes.unusedSettings.length > 0) {
    out(`${volumes.unusedSettings.length} managed-settings volume(s) no container uses (made again when needed):`);
    for (const name of volumes.unusedSettings) out(`  ${name}  ${style.bold('settings')}`);
  }
  return { engine, orphaned, settings: volumes.unusedSettings };
}

function volumeLine(v: VolumeVerdict): string {
  const why = v.verdict === 'live' ? '' : ` — ${v.reason}`;
  return `  ${v.volume.name}  ${style.bold(volumeKind(v.volume.name))}${terminalSafe(why)}`;
}

/**
 * What a config directory says about its volumes: every `*.yaml`/`*.yml` directly in it that loads as a config
 * contributes its agents' scopes. A directory that is gone, or holds no config, makes its volumes orphaned; one
 * that cannot be read, or whose agents.yaml (or the current config) is broken, makes them unknown.
 */
export function configScopes(dir: string): ConfigScopes {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) return { kind: 'gone', reason: `config directory ${dir} is no longer a directory` };
    names = readdirSync(dir).filter((n) => /\.ya?ml$/.test(n));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'gone', reason: `config directory ${dir} no longer exists` };
    return { kind: 'unknown', reason: `config directory ${dir} cannot be read (${describeError(error)})` };
  }
  const scopes = new Set<string>();
  const files: string[] = [];
  for (const name of names.sort()) {
    const path = join(dir, name);
    if (!isRegularFile(path)) continue; // a FIFO would block the read
    const load = loadConfig(path);
    if (load.kind === 'invalid') {
      if (name === 'agents.yaml' || path === configPath()) return { kind: 'unknown', reason: describeConfigProblem(load) };
      continue;
    }
    if (load.kind !== 'ok') continue;
    files.push(path);
    for (const [agent, config] of Object.entries(load.config.agents)) scopes.add(scopeKey(agent, volumeScope(dir, config.directory)));
  }
  if (files.length === 0) return { kind: 'gone', reason: `no config is left in ${dir}` };
  return { kind: 'live', scopes, files };
}

function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
