import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Like `which`: the first executable file named `name` on PATH. */
export function which(name: string, path: string = process.env['PATH'] ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      if (statSync(candidate).isFile()) {
        accessSync(candidate, constants.X_OK);
        return candidate;
      }
    } catch {
      // not here
    }
  }
  return undefined;
}
