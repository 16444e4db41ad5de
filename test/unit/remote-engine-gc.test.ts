/**
 * `gc --volumes` across engines: which engines it visits (gcEngines), how it reports and skips one that does
 * not answer, and that each engine's volumes are removed on that engine (fake listers); the listing and removal
 * on one engine (listEngineVolumes, removeEngineVolumes) against a fake engine API on a Unix socket: the filters
 * it sends, the unused managed-settings volumes, and a volume the engine refuses. The real thing on a second
 * dockerd: test/e2e/remote-engine.test.ts.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { gcCommand, gcEngines, type GcDeps, type GcEngine } from '../../src/cli/commands/gc.js';
import { DispatchCore } from '../../src/dispatch/core.js';
import { claudeStateVolume, gatewayVolume, LABEL_PREFIX, volumeScope } from '../../src/policy/layout.js';
import { CONFIG_DIR_LABEL, listEngineVolumes, removeEngineVolumes, type AgentVolume, type EngineVolumes } from '../../src/sandbox/volume-gc.js';
import type { VolumeRemoval } from '../../src/sandbox/volumes.js';
import { FakeSandbox } from '../helpers/fake-sandbox.js';
import { capture, setupEnv, type Env } from './cli-harness.js';

let env: Env;
beforeEach(() => {
  env = setupEnv();
  vi.stubEnv('AGENT_DISPATCH_JOBS_DIR', join(env.root, 'jobs'));
  vi.stubEnv('DOCKER_HOST', `unix://${join(env.root, 'no-engine.sock')}`);
});
afterEach(() => {
  env.cleanup();
  vi.unstubAllEnvs();
});

const TLS = { host: 'tcp://192.0.2.7:2376', tls_cert_dir: '/etc/certs' };

describe('gcEngines', () => {
  it("the environment's engine first, then each engine the config names once, however it is written", () => {
    const repo = env.project('api');
    env.writeConfig({
      settings: { engine: TLS },
      agents: {
        api: { directory: repo },
        web: { directory: repo, engine: { host: 'tcp://192.0.2.7:2376/', tls_cert_dir: '/etc/certs' } },
        ops: { directory: repo, engine: 'ssh://deploy@build-1.example.com' },
        dev: { directory: repo, engine: 'ssh://deploy@build-1.example.com:22' },
        here: { directory: repo, engine: `unix://${join(env.root, 'no-engine.sock')}` },
      },
    });
    expect(gcEngines(process.env).map((e) => e.label)).toEqual([
      `unix://${join(env.root, 'no-engine.sock')} (the environment's engine)`,
      'tcp://192.0.2.7:2376',
      'ssh://deploy@build-1.example.com:22',
    ]);
  });

  it("a config that does not load names no other engine: only the environment's is visited", () => {
    env.writeConfigText('agents: [oops');
    expect(gcEngines({ DOCKER_HOST: 'tcp://127.0.0.1:2375' }).map((e) => e.spec)).toEqual([undefined]);
    expect(gcEngines({}).map((e) => e.label)).toEqual(["unix:///var/run/docker.sock (the environment's engine)"]);
  });
});

describe('gc --volumes on several engines', () => {
  const local: GcEngine = { label: 'local', spec: undefined };
  const far: GcEngine = { label: 'tcp://192.0.2.7:2376', spec: TLS };
  const hung: GcEngine = { label: 'ssh://deploy@hung', spec: 'ssh://deploy@hung' };
  let removed: Array<{ engine: string; volumes: string[]; settings: string[] }>;

  /** A config with agent `api` (live everywhere); `web` was removed from it, its volumes are on both engines. */
  function world() {
    const repo = env.project('api');
    env.writeConfig({ agents: { api: { directory: repo } } });
    const scope = volumeScope(env.stateDir, repo);
    const webScope = volumeScope(env.stateDir, env.project('web'));
    const volume = (name: string, agent: string, s: string): AgentVolume => ({ name, agent, scope: s, configDir: env.stateDir });
    return {
      live: volume(claudeStateVolume('api', scope), 'api', scope),
      webSession: volume(claudeStateVolume('web', webScope), 'web', webScope),
      webGateway: volume(gatewayVolume('web', webScope), 'web', webScope),
    };
  }

  function deps(listing: Map<GcEngine, EngineVolumes | Error | 'hang'>, removal: (engine: GcEngine) => VolumeRemoval | undefined = () => undefined): GcDeps {
    return {
      jobs: new DispatchCore(process.env, new FakeSandbox()).jobs,
      engines: () => [...listing.keys()],
      listVolumes: async (engine) => {
        const answer = listing.get(engine)!;
        if (answer === 'hang') return new Promise<EngineVolumes>(() => undefined);
        if (answer instanceof Error) throw answer;
        return answer;
      },
      removeVolumes: async (engine, volumes, settings) => {
        removed.push({ engine: engine.label, volumes: volumes.map((v) => v.name), settings });
        return removal(engine) ?? { removed: [...volumes.map((v) => v.name), ...settings], kept: [] };
      },
      confirm: async () => false,
      interactive: false,
      engineMs: 200,
    };
  }

  beforeEach(() => {
    removed = [];
  });

  it('judges each engine, says what it found there, and removes each volume on the engine it lives on', async () => {
    const w = world();
    const listing = new Map<GcEngine, EngineVolumes>([
      [local, { agent: [w.live, w.webSession], unusedSettings: [] }],
      [far, { agent: [w.live, w.webGateway], unusedSettings: [`${LABEL_PREFIX}-settings-aaaa`] }],
    ]);
    const r = await capture(() => gcCommand(['--volumes'], deps(listing)));
    expect(r.code).toBe(0);
    expect(removed).toEqual([
      { engine: 'local', volumes: [w.webSession.name], settings: [] },
      { engine: far.label, volumes: [w.webGateway.name], settings: [`${LABEL_PREFIX}-settings-aaaa`] },
    ]);
    const farPart = r.stdout.slice(r.stdout.indexOf(`Volumes on ${far.label}:`));
    expect(r.stdout.indexOf('Volumes on local:')).toBeGreaterThanOrEqual(0);
    expect(farPart).toContain(`1 volume(s) of agents whose config no longer exists:\n  ${w.webGateway.name}  gateway — agent 'web' is no longer in`);
    expect(farPart).toContain(`1 managed-settings volume(s) no container uses (made again when needed):\n  ${LABEL_PREFIX}-settings-aaaa  settings\n`);
    expect(r.stdout).toContain('local: Removed 1 volume(s).');
    expect(r.stdout).toContain(`${far.label}: Removed 2 volume(s).`);
    expect(r.stdout).not.toContain(`  ${w.live.name}`);
  });

  it('an engine that does not answer in time is reported and skipped; the others are collected; --volumes exits 1', async () => {
    const w = world();
    const listing = new Map<GcEngine, EngineVolumes | 'hang'>([
      [local, { agent: [w.webSession], unusedSettings: [] }],
      [hung, 'hang'],
    ]);
    const started = Date.now();
    const r = await capture(() => gcCommand(['--volumes'], deps(listing)));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`Warning: volumes not checked on ${hung.label}: The Docker engine did not answer within 1 s while trying to list the volumes on ${hung.label}.`);
    expect(removed).toEqual([{ engine: 'local', volumes: [w.webSession.name], settings: [] }]);
    // Without --volumes (not a terminal) the same finding is only reported: exit 0, nothing removed.
    removed = [];
    const listed = await capture(() => gcCommand([], deps(listing)));
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain("Kept them. Remove them with 'agent-dispatch gc --volumes'.");
    expect(removed).toEqual([]);
  });

  it('no engine answers: --volumes fails with DOCKER_UNAVAILABLE naming each (exit 3); without it, a warning and exit 0', async () => {
    world();
    const listing = new Map<GcEngine, Error | 'hang'>([
      [local, new Error('connect ENOENT /nope.sock')],
      [hung, 'hang'],
    ]);
    await expect(capture(() => gcCommand(['--volumes'], deps(listing)))).rejects.toMatchObject({
      code: 'DOCKER_UNAVAILABLE',
      message: expect.stringMatching(/^No Docker engine answered \(local: connect ENOENT \/nope\.sock; ssh:\/\/deploy@hung: The Docker engine did not answer/),
    });
    const r = await capture(() => gcCommand([], deps(listing)));
    expect(r.code).toBe(0);
    expect(removed).toEqual([]);
  });

  it('a volume the engine keeps, or an engine that stops answering during removal: named, exit 1, the other engines still done', async () => {
    const w = world();
    const listing = new Map<GcEngine, EngineVolumes>([
      [far, { agent: [w.webSession], unusedSettings: [`${LABEL_PREFIX}-settings-bbbb`] }],
      [local, { agent: [w.webGateway], unusedSettings: [] }],
    ]);
    const r = await capture(() =>
      gcCommand(
        ['--volumes'],
        deps(listing, (engine) =>
          engine === far ? { removed: [w.webSession.name], kept: [{ name: `${LABEL_PREFIX}-settings-bbbb`, reason: 'volume is in use' }] } : { removed: [], kept: [], unreachable: 'socket hang up' },
        ),
      ),
    );
    expect(r.code).toBe(1);
    expect(removed.map((x) => x.engine)).toEqual([far.label, 'local']);
    expect(r.stdout).toContain(`Warning: kept ${LABEL_PREFIX}-settings-bbbb: volume is in use`);
    expect(r.stdout).toContain("Warning: local stopped answering: socket hang up. Run 'agent-dispatch gc --volumes' again.");
  });
});

/** A fake engine API on a Unix socket: volumes with labels, `in use` ones refuse removal; requests are recorded. */
class FakeEngineApi {
  readonly requests: string[] = [];
  readonly removedNames: string[] = [];
  private server: Server | undefined;

  constructor(
    private volumes: Array<{ Name: string; Labels: Record<string, string>; inUse?: boolean }>,
    readonly socket: string,
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res) => {
      const url = new URL(req.url ?? '/', 'http://engine');
      this.requests.push(`${req.method} ${url.pathname}${url.search ? `?${decodeURIComponent(url.search.slice(1))}` : ''}`);
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const name = /\/volumes\/([^/]+)$/.exec(url.pathname)?.[1];
      if (req.method === 'GET' && /\/volumes$/.test(url.pathname)) {
        const filters = JSON.parse(url.searchParams.get('filters') ?? '{}') as { label?: string[]; dangling?: string[] };
        const matches = this.volumes.filter(
          (v) =>
            (filters.label ?? []).every((l) => (l.includes('=') ? v.Labels[l.slice(0, l.indexOf('='))] === l.slice(l.indexOf('=') + 1) : l in v.Labels)) &&
            (filters.dangling?.[0] !== 'true' || !v.inUse),
        );
        return send(200, { Volumes: matches, Warnings: [] });
      }
      if (req.method === 'DELETE' && name) {
        const v = this.volumes.find((x) => x.Name === name);
        if (!v) return send(404, { message: `get ${name}: no such volume` });
        if (v.inUse) return send(409, { message: `remove ${name}: volume is in use` });
        this.volumes = this.volumes.filter((x) => x !== v);
        this.removedNames.push(name);
        return res.writeHead(204).end();
      }
      if (req.method === 'GET' && /\/containers\/json$/.test(url.pathname)) return send(200, []);
      send(404, { message: 'not faked' });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.socket, resolve));
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

describe('listEngineVolumes and removeEngineVolumes on one engine (fake engine API)', () => {
  const run = { 'test.run': 'r1' };
  const role = `${LABEL_PREFIX}.role`;
  let api: FakeEngineApi;

  beforeEach(async () => {
    const agent = `${LABEL_PREFIX}.agent`;
    const scope = `${LABEL_PREFIX}.scope`;
    api = new FakeEngineApi(
      [
        { Name: 'ad-claude.web', Labels: { ...run, [agent]: 'web', [scope]: 's1', [CONFIG_DIR_LABEL]: '/cfg' } },
        { Name: 'ad-gateway.web', Labels: { ...run, [agent]: 'web', [scope]: 's1', [CONFIG_DIR_LABEL]: '/cfg', [role]: 'gateway' } },
        { Name: 'other-run', Labels: { 'test.run': 'r2', [agent]: 'web', [scope]: 's1' } },
        { Name: 'settings-unused', Labels: { ...run, [role]: 'settings' } },
        { Name: 'settings-used', Labels: { ...run, [role]: 'settings' }, inUse: true },
        { Name: 'settings-other-run', Labels: { 'test.run': 'r2', [role]: 'settings' } },
        { Name: 'no-labels', Labels: {} },
      ],
      join(env.root, 'engine.sock'),
    );
    await api.start();
  });
  afterEach(() => api.stop());

  it('lists the agent volumes and the settings volumes no container uses, carrying the installation labels, on the engine named', async () => {
    const found = await listEngineVolumes(run, {}, `unix://${api.socket}`);
    expect(found).toEqual({
      agent: [
        { name: 'ad-claude.web', agent: 'web', scope: 's1', configDir: '/cfg' },
        { name: 'ad-gateway.web', agent: 'web', scope: 's1', configDir: '/cfg' },
      ],
      unusedSettings: ['settings-unused'],
    });
    expect(api.requests.filter((r) => r.includes('dangling'))).toEqual([
      `GET /volumes?filters={"label":["${role}=settings","test.run=r1"],"dangling":["true"]}`,
    ]);
  });

  it('removes them there; one in use meanwhile is kept with the engine\'s reason, one already gone is skipped', async () => {
    const volumes: AgentVolume[] = [
      { name: 'ad-claude.web', agent: 'web', scope: 's1' },
      { name: 'ad-gateway.web', agent: 'web', scope: 's1' },
    ];
    const result = await removeEngineVolumes(volumes, ['settings-unused', 'settings-used', 'settings-gone'], {}, `unix://${api.socket}`);
    expect(result.removed).toEqual(['ad-claude.web', 'ad-gateway.web', 'settings-unused']);
    expect(result.kept).toEqual([{ name: 'settings-used', reason: expect.stringContaining('volume is in use') }]);
    expect(result.unreachable).toBeUndefined();
    expect(api.removedNames).toEqual(['ad-claude.web', 'ad-gateway.web', 'settings-unused']);
  });

  it('an engine that accepts but never answers: listing gives up within its bound and closes the connection (the CLI can exit)', async () => {
    const socket = join(env.root, 'hung.sock');
    let open = 0;
    const hung = createServer(() => undefined);
    hung.on('connection', (c) => {
      open += 1;
      c.on('close', () => (open -= 1));
    });
    await new Promise<void>((resolve) => hung.listen(socket, resolve));
    try {
      const started = Date.now();
      await expect(listEngineVolumes(run, {}, `unix://${socket}`, 300)).rejects.toMatchObject({ code: 'DOCKER_UNAVAILABLE' });
      expect(Date.now() - started).toBeLessThan(3000);
      for (let i = 0; i < 20 && open > 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(open).toBe(0);
    } finally {
      hung.closeAllConnections();
      await new Promise((resolve) => hung.close(resolve));
    }
  });

  it('an engine that cannot be reached: listing throws DOCKER_UNAVAILABLE, removal reports it and never throws', async () => {
    const gone = `unix://${join(env.root, 'gone.sock')}`;
    await expect(listEngineVolumes(run, {}, gone)).rejects.toMatchObject({ code: 'DOCKER_UNAVAILABLE' });
    const result = await removeEngineVolumes([{ name: 'x', agent: 'web', scope: 's1' }], ['y'], {}, gone);
    expect(result.removed).toEqual([]);
    expect(result.unreachable).toContain('ENOENT');
  });
});
