import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/** The devDependency's native claude binary (what its postinstall puts behind node_modules/.bin/claude). */
export const CLAUDE_BINARY = (() => {
  const require = createRequire(import.meta.url);
  try {
    return join(dirname(require.resolve(`@anthropic-ai/claude-code-${process.platform}-${process.arch}/package.json`)), 'claude');
  } catch {
    const pkg = require.resolve('@anthropic-ai/claude-code/package.json');
    return join(dirname(pkg), (JSON.parse(readFileSync(pkg, 'utf8')) as { bin: { claude: string } }).bin.claude);
  }
})();

/**
 * The environment for running the real claude and the built CLI under `root`, built from nothing, not from
 * this process's: no CLAUDE_CONFIG_DIR, ANTHROPIC_*, XDG_* or the real HOME, so neither claude nor the server can
 * touch the real ~/.claude.json, config or Docker engine. `bin` comes first on PATH.
 */
export function isolatedClaudeEnv(root: string, bin: string): NodeJS.ProcessEnv {
  return {
    HOME: join(root, 'home'),
    PATH: `${bin}:/usr/bin:/bin`,
    AGENT_DISPATCH_CONFIG: join(root, 'config', 'agents.yaml'),
    DOCKER_HOST: `unix://${join(root, 'no-docker.sock')}`,
    NO_COLOR: '1',
    DISABLE_AUTOUPDATER: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
  };
}
