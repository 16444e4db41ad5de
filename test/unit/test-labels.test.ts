/**
 * The labels tests and benchmarks put on what they create: a per-file id and the suite run `.ci/run` cleans up
 * by (AGENT_DISPATCH_TEST_RUN). The env form must read back as the same labels through
 * AGENT_DISPATCH_CONTAINER_LABELS, and the benchmarks' copy (plain JS) must not drift.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { containerLabels } from '../../src/dispatch/service.js';
import { testLabels, testLabelsEnv, testSuiteRun } from '../helpers/docker.js';

describe('test labels', () => {
  it('carry the per-file id and the suite run (local when AGENT_DISPATCH_TEST_RUN is unset)', () => {
    vi.stubEnv('AGENT_DISPATCH_TEST_RUN', '');
    expect(testSuiteRun()).toBe('local');
    vi.stubEnv('AGENT_DISPATCH_TEST_RUN', 'ci-20261206T120000Z-0a1b2c3d');
    expect(testLabels('t1')).toEqual({ 'agent-dispatch.test': 't1', 'agent-dispatch.test-run': 'ci-20261206T120000Z-0a1b2c3d' });
  });

  it('the env form reads back as the same labels', () => {
    vi.stubEnv('AGENT_DISPATCH_TEST_RUN', 'ci-x');
    expect(testLabelsEnv('t1')).toBe('agent-dispatch.test=t1,agent-dispatch.test-run=ci-x');
    expect(containerLabels({ AGENT_DISPATCH_CONTAINER_LABELS: testLabelsEnv('t1') })).toEqual(testLabels('t1'));
  });

  it('the benchmarks label their objects the same way', async () => {
    vi.stubEnv('AGENT_DISPATCH_TEST_RUN', 'ci-y');
    const lib = (await import(pathToFileURL(join(import.meta.dirname, '..', '..', 'bench', 'lib.mjs')).href)) as { benchLabels(runId: string): Record<string, string> };
    expect(lib.benchLabels('bench-1')).toEqual(testLabels('bench-1'));
  });
});
