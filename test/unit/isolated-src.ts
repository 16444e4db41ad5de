/**
 * Runs code from src/ in a child node process under a timeout, for tests of code that would block forever
 * if it regressed (a FIFO opened for reading): inside the test process that would hang the whole run,
 * because a blocked event loop never lets the test timeout fire. src/ is transpiled (types stripped, no
 * type check, by the transformer vitest itself uses: TypeScript 7 has no JS API and Node 20 cannot strip
 * types) into a temp dir laid out like the repo, with node_modules, package.json and policies/ linked.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { transformWithOxc } from 'vite';
import { afterAll, beforeAll } from 'vitest';

const REPO = join(import.meta.dirname, '..', '..');

export interface IsolatedRun {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  timedOut: boolean;
}

export interface IsolatedSrc {
  /** Runs an ES module script whose `import`s name modules as `@src/<path>.js`; stdout and stderr are captured. */
  run(script: string, timeoutMs: number): IsolatedRun;
  remove(): void;
}

export async function isolatedSrc(): Promise<IsolatedSrc> {
  const root = mkdtempSync(join(tmpdir(), 'ad-isolated-'));
  for (const file of sources(join(REPO, 'src'))) {
    const out = join(root, 'src', relative(join(REPO, 'src'), file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, (await transformWithOxc(readFileSync(file, 'utf8'), file, { lang: 'ts' })).code);
  }
  for (const name of ['node_modules', 'package.json', 'policies']) symlinkSync(join(REPO, name), join(root, name));
  let n = 0;
  return {
    run(script, timeoutMs) {
      const path = join(root, `script-${++n}.mjs`);
      writeFileSync(path, script.replaceAll('@src/', './src/'));
      const started = Date.now();
      const r = spawnSync(process.execPath, [path], { cwd: root, timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
      const timedOut = (r.error as NodeJS.ErrnoException | undefined)?.code === 'ETIMEDOUT';
      return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', ms: Date.now() - started, timedOut };
    },
    remove() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    return e.isDirectory() ? sources(path) : e.name.endsWith('.ts') ? [path] : [];
  });
}

/** isolatedSrc() for the enclosing describe block: built before its tests, removed after them. */
export function useIsolatedSrc(): () => IsolatedSrc {
  let src: IsolatedSrc | undefined;
  beforeAll(async () => {
    src = await isolatedSrc();
  });
  afterAll(() => src?.remove());
  return () => src!;
}
