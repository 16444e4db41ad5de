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
