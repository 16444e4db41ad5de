import type { Policy } from './schema.js';

export interface AllowRule {
  /** Exact host, `*.suffix`, or `*` for any host. */
  host: string;
  /** A port, or `*` for any. A pattern without a port means 443. */
  port: number | '*';
}

export interface NetworkSpec {
  mode: 'gateway' | 'open';
  /** The Anthropic API is always reachable (through the gateway, which adds the credential). */
  anthropicApi: true;
  allow: AllowRule[];
}

export function parseAllowPattern(pattern: string): AllowRule {
  const [host = '', port] = pattern.toLowerCase().split(':');
  if (port === undefined) return { host, port: 443 };
  return { host, port: port === '*' ? '*' : Number(port) };
}

export function compileNetwork(policy: Policy): NetworkSpec {
  return { mode: policy.network.mode, anthropicApi: true, allow: policy.network.allow.map(parseAllowPattern) };
}

/** Does a rule admit `host:port`? Used by the gateway and by `policy check` explanations alike. */
export function ruleMatches(rule: AllowRule, host: string, port: number): boolean {
  if (rule.port !== '*' && rule.port !== port) return false;
  const name = host.toLowerCase().replace(/\.$/, '');
  if (rule.host === '*') return true;
  if (rule.host.startsWith('*.')) return name.endsWith(rule.host.slice(1));
  return name === rule.host;
}

export function formatRule(rule: AllowRule): string {
  return `${rule.host}:${rule.port}`;
}
