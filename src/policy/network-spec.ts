import { parseAllowPattern } from '../gateway/allowlist.js';
import type { AllowRule } from '../gateway/protocol.js';
import type { Policy } from './schema.js';

export { parseAllowPattern, type AllowRule };

export interface NetworkSpec {
  mode: 'gateway' | 'open';
  /** The Anthropic API is always reachable (through the gateway, which adds the credential). */
  anthropicApi: true;
  /** What the gateway tunnels to (the same matcher runs in the gateway: src/gateway/allowlist.ts). */
  allow: AllowRule[];
}

export function compileNetwork(policy: Policy): NetworkSpec {
  return { mode: policy.network.mode, anthropicApi: true, allow: policy.network.allow.map(parseAllowPattern) };
}

export function formatRule(rule: AllowRule): string {
  return `${rule.host}:${rule.port}`;
}
