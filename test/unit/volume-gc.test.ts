/** Which agent volumes are orphaned, decided without an engine (the real volumes: test/integration/volume-gc.test.ts). */
import { describe, expect, it } from 'vitest';
import { judgeVolumes, scopeKey, volumeKind, type AgentVolume, type ConfigScopes } from '../../src/sandbox/volume-gc.js';

const vol = (agent: string, scope: string, configDir?: string): AgentVolume => ({
  name: `agent-dispatch-claude.${agent}.${scope}`,
  agent,
  scope,
  ...(configDir ? { configDir } : {}),
});

const DIRS: Record<string, ConfigScopes> = {
  '/cfg/live': { kind: 'live', scopes: new Set([scopeKey('api', 'aaaaaaaaaaaa')]), files: ['/cfg/live/agents.yaml'] },
  '/cfg/gone': { kind: 'gone', reason: 'config directory /cfg/gone no longer exists' },
  '/cfg/broken': { kind: 'unknown', reason: 'agents.yaml is not valid YAML' },
};

describe('judgeVolumes', () => {
  const asked: string[] = [];
  const scopesOf = (dir: string) => {
    asked.push(dir);
    return DIRS[dir] ?? { kind: 'gone' as const, reason: `no config is left in ${dir}` };
  };

  it('live when its config still has the agent at that scope; orphaned when the agent left or the config is gone; unknown when the config cannot be read', () => {
    const verdicts = judgeVolumes(
      [vol('api', 'aaaaaaaaaaaa', '/cfg/live'), vol('api', 'bbbbbbbbbbbb', '/cfg/live'), vol('web', 'aaaaaaaaaaaa', '/cfg/live'), vol('api', 'cccccccccccc', '/cfg/gone'), vol('api', 'dddddddddddd', '/cfg/broken')],
      scopesOf,
      '/cfg/live',
    );
    expect(verdicts.map((v) => v.verdict)).toEqual(['live', 'orphaned', 'orphaned', 'orphaned', 'unknown']);
    expect(verdicts[1]).toMatchObject({ reason: "agent 'api' is no longer in /cfg/live/agents.yaml (removed, or moved to another directory)" });
    expect(verdicts[3]).toMatchObject({ reason: 'config directory /cfg/gone no longer exists' });
    expect(verdicts[4]).toMatchObject({ reason: 'agents.yaml is not valid YAML' });
  });

  it('a volume with no recorded config directory is never orphaned: live if the current config has it, else unknown', () => {
    const verdicts = judgeVolumes([vol('api', 'aaaaaaaaaaaa'), vol('old', 'eeeeeeeeeeee')], scopesOf, '/cfg/live');
    expect(verdicts.map((v) => v.verdict)).toEqual(['live', 'unknown']);
    expect(judgeVolumes([vol('api', 'aaaaaaaaaaaa')], scopesOf, '/cfg/gone')[0]!.verdict).toBe('unknown');
  });

  it('reads each config directory once', () => {
    asked.length = 0;
    judgeVolumes([vol('a', '111111111111', '/cfg/live'), vol('b', '222222222222', '/cfg/live'), vol('c', '333333333333', '/x')], scopesOf, '/cfg/live');
    expect(asked).toEqual(['/cfg/live', '/x']);
  });

  it('names what a volume is for', () => {
    expect(volumeKind('agent-dispatch-claude.api.aaaaaaaaaaaa.uid1001')).toBe('session');
    expect(volumeKind('agent-dispatch-gateway.api.aaaaaaaaaaaa')).toBe('gateway');
    expect(volumeKind('something-else')).toBe('volume');
  });
});
