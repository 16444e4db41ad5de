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

export function formatRule(rule: AllowRule): string {
  return `${rule.host}:${rule.port}`;
}
