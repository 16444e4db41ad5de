import { stringify } from 'yaml';
import { AppError, describeError } from '../errors.js';
import { writeFileAtomic } from './atomic-write.js';
import { configPath } from './paths.js';
import type { AgentConfig, DispatchConfig, GroupConfig } from './schema.js';

/** The YAML the original wrote: None fields dropped, empty capability lists and groups pruned. */
export function renderConfig(config: DispatchConfig): string {
  const agents: Record<string, unknown> = {};
  for (const [name, agent] of Object.entries(config.agents)) agents[name] = renderAgent(agent);
  const data: Record<string, unknown> = { agents };
  const groups = Object.entries(config.groups);
  if (groups.length > 0) data['groups'] = Object.fromEntries(groups.map(([name, g]) => [name, renderGroup(g)]));
  data['settings'] = dropNullish({ ...config.settings, cache: { ...config.settings.cache } });
  // YAML 1.1 output quotes strings such as 'yes' or 'on' that a 1.1 reader (PyYAML, and our loader) would take as booleans.
  return stringify(data, { lineWidth: 0, version: '1.1' });
}

function renderAgent(agent: AgentConfig): Record<string, unknown> {
  const out = dropNullish({ ...agent }) as Record<string, unknown>;
  if (agent.capabilities.length === 0) delete out['capabilities'];
  if (agent.risky_capabilities.length === 0) delete out['risky_capabilities'];
  return out;
}

function renderGroup(group: GroupConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { description: group.description, shared_context: group.shared_context };
  if (group.members.length > 0) out['members'] = group.members.map((m) => ({ agent: m.agent, use_for: m.use_for }));
  if (group.users) out['users'] = group.users;
  return out;
}

function dropNullish<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null && v !== undefined)) as Partial<T>;
}

/** Atomic, owner-only save. Nothing is touched if rendering fails; a failed write leaves the old file. */
export function saveConfig(config: DispatchConfig, path: string = configPath()): void {
  const text = renderConfig(config);
  try {
    writeFileAtomic(path, text);
  } catch (error) {
    throw new AppError('CONFIG_WRITE_FAILED', `could not write ${path}: ${describeError(error)}`, {
      hint: 'Nothing was changed — the previous config is intact (the write is atomic). Check free space and permissions.',
      cause: error,
    });
  }
}
