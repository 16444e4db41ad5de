import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Data flows interface → core → sandbox → Docker, never back; these tests hold the lines. */
const SRC = join(import.meta.dirname, '..', '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function imports(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!);
}

function importersOf(pattern: RegExp, within: string): string[] {
  return files(join(SRC, within))
    .filter((f) => imports(f).some((i) => pattern.test(i)))
    .map((f) => relative(SRC, f));
}

describe('module boundaries', () => {
  it('only src/sandbox imports dockerode or tar-fs', () => {
    const offenders = files(SRC)
      .filter((f) => !relative(SRC, f).startsWith('sandbox/'))
      .filter((f) => imports(f).some((i) => i === 'dockerode' || i === 'tar-fs'))
      .map((f) => relative(SRC, f));
    expect(offenders).toEqual([]);
  });

  it('the policy compiler is pure: no Docker, no MCP, no CLI, no child processes', () => {
    expect(importersOf(/sandbox|mcp|cli|^dockerode$|child_process/, 'policy')).toEqual([]);
  });

  it('config knows nothing of the layers above it', () => {
    expect(importersOf(/\/(policy|core|mcp|cli|sandbox)\//, 'config')).toEqual([]);
  });

  it('sandbox never imports the MCP server or the CLI', () => {
    expect(importersOf(/\/(mcp|cli)\//, 'sandbox')).toEqual([]);
  });

  it('the MCP adapter never imports the CLI', () => {
    expect(importersOf(/\/cli\//, 'mcp')).toEqual([]);
  });

  it('library code never writes to the console (stdout belongs to the protocol)', () => {
    const offenders = files(SRC)
      .filter((f) => /console\.(log|info|warn|error|debug)\(/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(SRC, f));
    expect(offenders).toEqual([]);
  });
});
