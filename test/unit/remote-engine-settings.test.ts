/**
 * The managed-settings volumes of tcp:// and ssh:// engines (src/sandbox/engine-settings.ts) against a Docker
 * double: their labels (what gc finds them by), one per config directory and content, and `held`, which keeps
 * an agent from ever starting over an empty volume the engine made after a gc removed the filled one.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ContainerSpec, MountSpec } from '../../src/policy/container-spec.js';
import { LABEL_PREFIX } from '../../src/policy/layout.js';
import { SettingsVolumes } from '../../src/sandbox/engine-settings.js';
import { CONFIG_DIR_LABEL } from '../../src/sandbox/volume-gc.js';

/** Records volumes made, containers made and removed; a volume's labels are what inspect answers. */
function fakeDocker() {
  const volumes = new Map<string, Record<string, string>>();
  const log: string[] = [];
  let seq = 0;
  const container = (id: string) => ({
    id,
    async putArchive(archive: NodeJS.ReadableStream) {
      for await (const _ of archive) void _; // read it all, as the engine does
      log.push(`fill ${id}`);
    },
    async remove() {
      log.push(`remove container ${id}`);
    },
  });
  const docker = {
    async createVolume({ Name, Labels }: { Name: string; Labels: Record<string, string> }) {
      log.push(`create volume ${Name}`);
      if (!volumes.has(Name)) volumes.set(Name, Labels);
    },
    async createContainer() {
      return container(`helper-${++seq}`);
    },
    getVolume(name: string) {
      return {
        async inspect() {
          const labels = volumes.get(name);
          if (!labels) throw Object.assign(new Error('no such volume'), { statusCode: 404 });
          return { Name: name, Labels: labels };
        },
        async remove() {
          log.push(`remove volume ${name}`);
          volumes.delete(name);
        },
      };
    },
  };
  return { docker: docker as unknown as Docker, volumes, log, container };
}

function spec(configDir: string): ContainerSpec {
  return { Image: 'agent:test', HostConfig: { Mounts: [{ Type: 'volume', Source: 's', Target: '/t', VolumeOptions: { Labels: { [CONFIG_DIR_LABEL]: configDir } } }] } } as unknown as ContainerSpec;
}

describe('SettingsVolumes', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ad-settings-'));
    writeFileSync(join(dir, 'managed-settings.json'), '{"permissions":{"deny":["WebFetch"]}}');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('labels each volume for gc (installation labels, role, content hash, config dir); one per config directory and content', async () => {
    const fake = fakeDocker();
    const volumes = new SettingsVolumes(fake.docker, { 'agent-dispatch.test': 'run1' });
    const a = await volumes.mount(dir, spec('/cfg/a'), 1000);
    const again = await volumes.mount(dir, spec('/cfg/a'), 1000);
    const b = await volumes.mount(dir, spec('/cfg/b'), 1000);
    expect(again.Source).toBe(a.Source);
    expect(b.Source).not.toBe(a.Source);
    expect(fake.log.filter((l) => l.startsWith('create volume'))).toHaveLength(2);
    const hash = a.Source!.slice(`${LABEL_PREFIX}-settings-`.length);
    expect(hash).toMatch(/^[0-9a-f]{32}$/);
    expect(fake.volumes.get(a.Source!)).toEqual({ 'agent-dispatch.test': 'run1', [`${LABEL_PREFIX}.role`]: 'settings', [`${LABEL_PREFIX}.settings-hash`]: hash, [CONFIG_DIR_LABEL]: '/cfg/a' });
    expect(a).toMatchObject({ Type: 'volume', ReadOnly: true, Target: '/etc/claude-code' });
  });

  it('held: the filled volume is kept; one a gc removed (the engine made an empty, unlabelled one) drops the container and is filled again', async () => {
    const fake = fakeDocker();
    const volumes = new SettingsVolumes(fake.docker, {});
    const mount: MountSpec = await volumes.mount(dir, spec('/cfg/a'), 1000);
    const dispatch = fake.container('dispatch-1') as unknown as Docker.Container;
    expect(await volumes.held(mount, dispatch, 1000)).toBe(true);
    expect(fake.log).not.toContain('remove container dispatch-1');

    // gc removed it after the fill; creating the dispatch container made an empty one without labels.
    fake.volumes.set(mount.Source!, {});
    const second = fake.container('dispatch-2') as unknown as Docker.Container;
    expect(await volumes.held(mount, second, 1000)).toBe(false);
    expect(fake.log).toContain('remove container dispatch-2');
    expect(fake.log).toContain(`remove volume ${mount.Source!}`);
    const fills = fake.log.filter((l) => l.startsWith('fill')).length;
    await volumes.mount(dir, spec('/cfg/a'), 1000);
    expect(fake.log.filter((l) => l.startsWith('fill')).length).toBe(fills + 1);
    expect(fake.volumes.get(mount.Source!)?.[`${LABEL_PREFIX}.role`]).toBe('settings');
  });

  it('held: an engine that cannot say drops the container and fails the dispatch (never runs it unchecked)', async () => {
    const fake = fakeDocker();
    const volumes = new SettingsVolumes(fake.docker, {});
    const mount = await volumes.mount(dir, spec('/cfg/a'), 1000);
    fake.volumes.delete(mount.Source!);
    const dispatch = fake.container('dispatch-3') as unknown as Docker.Container;
    await expect(volumes.held(mount, dispatch, 1000)).rejects.toMatchObject({ code: 'SANDBOX_FAILED', message: expect.stringContaining(`Could not check the managed-settings volume ${mount.Source!}`) });
    expect(fake.log).toContain('remove container dispatch-3');
  });
});
