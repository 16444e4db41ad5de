import type { Policy } from './schema.js';

/** One line for list_agents: `repo ro · env none · net: Anthropic API only · tools default · 2g/1cpu/512pids`. */
export function summarizePolicy(policy: Policy): string {
  const env = policy.env.pass.length + Object.keys(policy.env.set).length === 0 ? 'env none' : `env ${[...policy.env.pass, ...Object.keys(policy.env.set)].join(',')}`;
  const net =
    policy.network.mode === 'open'
      ? 'net OPEN'
      : policy.network.allow.length === 0
        ? 'net Anthropic API only'
        : `net Anthropic API + ${policy.network.allow.length} host(s)`;
  const tools = `tools ${policy.tools.permission_mode}${policy.tools.allow ? ` (${policy.tools.allow.length} allowed)` : ''}${policy.tools.deny.length ? `, ${policy.tools.deny.length} denied` : ''}`;
  const creds = policy.credentials === 'env' ? ' · key IN container' : '';
  const r = policy.resources;
  return `repo ${policy.repo} · ${env} · ${net} · ${tools}${creds} · ${r.memory}/${r.cpus}cpu/${r.pids}pids/${r.timeout}s`;
}
