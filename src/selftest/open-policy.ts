/**
 * The sandbox policy that can run before the egress gateway exists: the `default` preset's filesystem,
 * identity, tools and resources, with `network.mode: open` (a plain bridge, to reach a model on this machine)
 * and `credentials: env`. The selftest runs under it; tests and benchmarks use it too.
 */
export function openNetworkPolicy(image: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    description: 'open network until the egress gateway exists',
    repo: 'ro',
    credentials: 'env',
    network: { mode: 'open' },
    env: { pass: [], set: { CLAUDE_CODE_MAX_RETRIES: '0' } },
    tools: { permission_mode: 'default', allow: ['Bash', 'Read', 'Glob', 'Grep'], deny: ['WebFetch', 'WebSearch'] },
    resources: { memory: '1g', cpus: 1, pids: 256, nofile: 1024, tmp_size: '64m', timeout: 300 },
    image,
    ...overrides,
  };
}
