/**
 * Test and selftest policies: the `default` preset's filesystem, identity and resources with Bash allowed (the
 * scripted model drives the agent through it) and no API retries.
 * - `gatewayPolicy`: the real thing, network through the egress gateway, which adds the credential.
 * - `openNetworkPolicy`: `network.mode: open` and `credentials: env` (policy check flags both), for comparing
 *   against a bare `docker run` and for the suites that test the container itself.
 */
export function gatewayPolicy(image: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...basePolicy(image),
    description: 'egress gateway, credential injected',
    credentials: 'inject',
    network: { mode: 'gateway', allow: [] },
    ...overrides,
  };
}

export function openNetworkPolicy(image: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...basePolicy(image),
    description: 'open network',
    credentials: 'env',
    network: { mode: 'open' },
    ...overrides,
  };
}

function basePolicy(image: string): Record<string, unknown> {
  return {
    version: 1,
    repo: 'ro',
    env: { pass: [], set: { CLAUDE_CODE_MAX_RETRIES: '0' } },
    tools: { permission_mode: 'default', allow: ['Bash', 'Read', 'Glob', 'Grep'], deny: ['WebFetch', 'WebSearch'] },
    resources: { memory: '1g', cpus: 1, pids: 256, nofile: 1024, tmp_size: '64m', timeout: 300 },
    image,
  };
}
