/**
 * The survey and the replacement over a scripted `ClaudeMcp` (the cases the fake claude binary does not
 * reach: failures, managed scopes, a removal that does not take), and the wording around them.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClaudeMcp, Outcome } from '../../src/cli/claude-mcp.js';
import type { McpGetResult, McpList } from '../../src/cli/mcp-output.js';
import { removeForeign } from '../../src/cli/mcp-replace.js';
import { survey, type Judge, type Registration } from '../../src/cli/mcp-survey.js';
import { removeCommand, selfInvocation, where } from '../../src/cli/registration-report.js';
import { fsProbe, thisProgram, type Endpoint } from '../../src/cli/registration.js';

/** This program is `ours serve`; anything mentioning agent_dispatch or named agent-dispatch is the original. */
const judge: Judge = (e: Endpoint) => ({ kind: /^ours serve$/.test(e.line) ? 'ours' : /agent[-_]dispatch/.test(e.line) ? 'original' : 'other' });

const view = (name: string, scope: string, command: string | undefined, args = 'serve'): McpGetResult => ({
  name,
  scope,
  status: '✔ Connected',
  type: command === undefined ? undefined : 'stdio',
  command,
  args: command === undefined ? undefined : args,
  url: undefined,
});

/** A scripted claude: `get` answers from `views` (nearest scope first), `remove` drops one; every call is logged. */
function scripted(options: { views?: McpGetResult[]; list?: Outcome<McpList>; getFails?: string; removeTakes?: boolean } = {}): ClaudeMcp & { log: string[] } {
  const views = [...(options.views ?? [])];
  const log: string[] = [];
  return {
    log,
    get(name) {
      log.push(`get ${name}`);
      if (options.getFails) return { ok: false, message: options.getFails };
      return { ok: true, value: views.find((v) => v.name === name) };
    },
    list() {
      log.push('list');
      return options.list ?? { ok: true, value: { entries: [], conflicts: [] } };
    },
    remove(name, scope) {
      log.push(`remove ${name} ${scope}`);
      const at = views.findIndex((v) => v.name === name && v.scope === scope);
      if (at !== -1 && options.removeTakes !== false) views.splice(at, 1);
      return { ok: true, value: undefined };
    },
    addJson() {
      throw new Error('not used');
    },
  };
}

describe('survey', () => {
  it('fails only when claude mcp get agent-dispatch does', () => {
    expect(survey(scripted({ getFails: 'claude mcp get timed out after 60 s' }), judge)).toEqual({ ok: false, message: 'claude mcp get timed out after 60 s' });
  });

  it('a failed list: agent-dispatch still judged, the survey marked incomplete', () => {
    const found = survey(scripted({ views: [view('agent-dispatch', 'user', 'ours')], list: { ok: false, message: 'claude mcp list timed out after 60 s' } }), judge);
    expect(found).toMatchObject({ ok: true, value: { current: { scope: 'user', verdict: { kind: 'ours' } }, foreign: [], incomplete: 'claude mcp list timed out after 60 s' } });
  });

  it('a registration without a type: its command line comes from mcp list', () => {
    const list: McpList = { entries: [{ name: 'agent-dispatch', endpoint: '/x/agent-dispatch serve', transport: 'stdio', status: '✘ Failed to connect' }], conflicts: [] };
    const found = survey(scripted({ views: [view('agent-dispatch', 'local', undefined)], list: { ok: true, value: list } }), judge);
    expect(found.ok && found.value.foreign).toEqual([{ name: 'agent-dispatch', scope: 'local', endpoint: { transport: 'stdio', line: '/x/agent-dispatch serve' }, verdict: { kind: 'original' } }]);
  });

  it('another name: asked for its scope only when it runs the original; unknown scope when get cannot say', () => {
    const list: McpList = {
      entries: [
        { name: 'github', endpoint: 'npx -y server-github', transport: 'stdio', status: '✔ Connected' },
        { name: 'py', endpoint: 'python3 -m agent_dispatch serve', transport: 'stdio', status: '✔ Connected' },
      ],
      conflicts: [],
    };
    const mcp = scripted({ list: { ok: true, value: list } });
    const found = survey(mcp, judge);
    expect(mcp.log).toEqual(['get agent-dispatch', 'list', 'get py']);
    expect(found.ok && found.value.foreign).toEqual([{ name: 'py', scope: undefined, endpoint: { transport: 'stdio', line: 'python3 -m agent_dispatch serve' }, verdict: { kind: 'original' } }]);
  });

  it('conflicts: every foreign scope once, the current one not twice, other names only when they run the original', () => {
    const list: McpList = {
      entries: [],
      conflicts: [
        {
          name: 'agent-dispatch',
          endpoints: [
            { scope: 'user', endpoint: '/x/agent-dispatch serve', transport: 'stdio' },
            { scope: 'local', endpoint: 'ours serve', transport: 'stdio' },
          ],
        },
        {
          name: 'tools',
          endpoints: [
            { scope: 'user', endpoint: 'uvx agent-dispatch serve', transport: 'stdio' },
            { scope: 'local', endpoint: 'other serve', transport: 'stdio' },
          ],
        },
      ],
    };
    const found = survey(scripted({ views: [view('agent-dispatch', 'local', 'ours')], list: { ok: true, value: list } }), judge);
    expect(found.ok && found.value.foreign.map((r) => `${r.name}/${r.scope}`)).toEqual(['agent-dispatch/user', 'tools/user']);
    expect(found.ok && found.value.current?.verdict).toEqual({ kind: 'ours' });
  });
});

describe('removeForeign', () => {
  const original = (scope: string, name = 'agent-dispatch'): Registration => ({ name, scope, endpoint: { transport: 'stdio', command: '/x/agent-dispatch', args: 'serve', line: '/x/agent-dispatch serve' }, verdict: { kind: 'original' } });

  it('removes by scope, then asks get until none is left; returns what is current afterwards', () => {
    const mcp = scripted({ views: [view('agent-dispatch', 'local', '/x/agent-dispatch'), view('agent-dispatch', 'user', '/x/agent-dispatch')] });
    const done = removeForeign(mcp, [original('local')], judge);
    expect(mcp.log).toEqual(['remove agent-dispatch local', 'get agent-dispatch', 'remove agent-dispatch user', 'get agent-dispatch']);
    expect(done).toMatchObject({ ok: true, value: { current: undefined } });
    expect(done.ok && done.value.removed.map((r) => r.scope)).toEqual(['local', 'user']);
  });

  it('stops at this program: it stays', () => {
    const mcp = scripted({ views: [view('agent-dispatch', 'local', '/x/agent-dispatch'), view('agent-dispatch', 'user', 'ours')] });
    const done = removeForeign(mcp, [original('local')], judge);
    expect(done).toMatchObject({ ok: true, value: { current: { scope: 'user', verdict: { kind: 'ours' } } } });
  });

  it('an unknown scope (seen only in mcp list) is found by get and removed', () => {
    const mcp = scripted({ views: [view('py', 'project', 'python3', '-m agent_dispatch serve')] });
    const done = removeForeign(mcp, [{ ...original('user', 'py'), scope: undefined }], judge);
    expect(mcp.log).toEqual(['get agent-dispatch', 'get py', 'remove py project', 'get py']);
    expect(done.ok).toBe(true);
  });

  it('a managed (enterprise) registration cannot be removed: says where it is', () => {
    const done = removeForeign(scripted(), [original('enterprise')], judge);
    expect(done).toEqual({ ok: false, message: 'agent-dispatch (enterprise scope): /x/agent-dispatch serve is in the enterprise configuration, which claude mcp remove cannot change; remove it there.' });
  });

  it('a removal that does not take: gives up after one try per scope, saying so', () => {
    const mcp = scripted({ views: [view('agent-dispatch', 'user', '/x/agent-dispatch')], removeTakes: false });
    const done = removeForeign(mcp, [], judge);
    expect(done).toEqual({ ok: false, message: 'agent-dispatch (user scope): /x/agent-dispatch serve is still registered after removing it from every scope.' });
    expect(mcp.log.filter((l) => l.startsWith('remove'))).toHaveLength(3);
  });
});

describe('registration-report', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'ad-report-'));
  });
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it('where and removeCommand name scope and command; an unknown scope gets no -s; a managed one no command', () => {
    const r: Registration = { name: 'agent-dispatch', scope: 'user', endpoint: { transport: 'stdio', command: '/opt/my tools/agent-dispatch', args: 'serve', line: '' }, verdict: { kind: 'original' } };
    expect(where(r)).toBe("agent-dispatch (user scope): '/opt/my tools/agent-dispatch' serve");
    expect(removeCommand(r)).toBe('claude mcp remove agent-dispatch -s user');
    expect(removeCommand({ ...r, scope: undefined })).toBe('claude mcp remove agent-dispatch');
    expect(where({ ...r, scope: undefined, endpoint: { transport: 'unknown', line: '' } })).toBe('agent-dispatch (scope unknown): (claude mcp get shows no command)');
    expect(removeCommand({ ...r, scope: 'enterprise' })).toContain('claude mcp remove cannot change');
  });

  it('selfInvocation: agent-dispatch when that is this program on PATH, else node and the script (quoted)', () => {
    const script = join(root, 'my pkg', 'dist', 'cli.js');
    mkdirSync(join(script, '..'), { recursive: true });
    writeFileSync(script, '#!/usr/bin/env node\n');
    chmodSync(script, 0o755);
    const bin = join(root, 'bin');
    mkdirSync(bin);
    const self = thisProgram(script);
    expect(selfInvocation(self, fsProbe({ PATH: bin }))).toBe(`${process.execPath} '${self.script}'`);
    writeFileSync(join(bin, 'agent-dispatch'), '#!/usr/bin/python3\n');
    chmodSync(join(bin, 'agent-dispatch'), 0o755);
    expect(selfInvocation(self, fsProbe({ PATH: bin }))).toBe(`${process.execPath} '${self.script}'`);
    rmSync(join(bin, 'agent-dispatch'));
    symlinkSync(script, join(bin, 'agent-dispatch'));
    expect(selfInvocation(self, fsProbe({ PATH: bin }))).toBe('agent-dispatch');
  });
});
