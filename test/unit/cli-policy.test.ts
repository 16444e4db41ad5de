import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { run, setupEnv, STACK_LINE, type Env } from './cli-harness.js';

const PRESETS = resolve(import.meta.dirname, '..', '..', 'policies');

let env: Env;

beforeEach(() => {
  env = setupEnv();
});

afterEach(() => {
  env.cleanup();
});

/** A user policy at `<config dir>/policies/<name>.yaml` (what `policy: <name>` resolves to first). */
function userPolicy(name: string, yaml: string): string {
  const dir = join(env.stateDir, 'policies');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, yaml);
  return path;
}

/** A policy file anywhere (for `policy check PATH`). */
function policyFile(name: string, yaml: string): string {
  const path = join(env.root, name);
  writeFileSync(path, yaml);
  return path;
}

async function addAgent(name: string, ...extra: string[]): Promise<string> {
  const dir = env.project(name);
  const r = await run('add', name, dir, '-d', `${name} agent`, ...extra);
  expect(r.code, r.all).toBe(0);
  return dir;
}

const RISKY = 'version: 1\nnetwork:\n  mode: open\ncredentials: env\n';
const SOCKET = 'version: 1\nmounts:\n  - source: /var/run/docker.sock\n    target: /var/run/docker.sock\n';

describe('policy check with agents in the config', () => {
  it('a clean config exits 0 and explains each agent’s sandbox', async () => {
    const dir = await addAgent('api');
    const r = await run('policy', 'check');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('agent api');
    expect(r.stdout).toContain(`  policy:      default (preset ${join(PRESETS, 'default.yaml')}, hash `);
    expect(r.stdout).toContain('  mounts:');
    expect(r.stdout).toContain(`    ro      bind   ${dir} -> ${dir}  (repo)`);
    expect(r.stdout).toMatch(/ {2}env names: {3}HOME, PATH, .*ANTHROPIC_API_KEY/);
    expect(r.stdout).toContain('  network:     gateway only — Anthropic API + nothing else');
    expect(r.stdout).toContain('  credentials: injected by the gateway; the container sees a placeholder');
    expect(r.stdout).toContain('  tools:       permission_mode default;');
    expect(r.stdout).toContain('  resources:   memory 2g, cpus 1, pids 512, nofile 4096, timeout 300s, image agent-dispatch/agent:latest');
    expect(r.stdout).toContain('Summary: 1 checked, 0 unusable, 0 error(s), 0 warning(s)');
  });

  it('--agent NAME checks only that agent', async () => {
    await addAgent('api');
    await addAgent('ro', '--policy', 'readonly-inspector');
    const r = await run('policy', 'check', '--agent', 'ro');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('agent ro');
    expect(r.stdout).not.toContain('agent api');
    expect(r.stdout).toContain('allowed Read, Glob, Grep, LS;');
    expect(r.stdout).toContain('denied Bash, Edit, Write, MultiEdit, NotebookEdit, WebFetch, WebSearch');
    expect(r.stdout).toContain('Summary: 1 checked');
  });

  it('an unknown agent exits 2', async () => {
    await addAgent('api');
    const r = await run('policy', 'check', '--agent', 'ghost');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("Error: Agent 'ghost' not found. Run 'agent-dispatch list' to see agents.");
  });

  it('an agent whose policy ref does not exist exits 2 (unusable)', async () => {
    env.writeConfig({ agents: { api: { directory: env.project('api'), policy: 'no-such-policy' } } });
    const r = await run('policy', 'check');
    expect(r.code).toBe(2);
    expect(r.stdout).toContain("UNUSABLE Policy 'no-such-policy' not found");
    expect(r.stdout).toContain('Summary: 1 checked, 1 unusable');
  });

  it('a broken config exits 2 with the config message, no stack', async () => {
    env.writeConfigText('agents: [unclosed\n');
    const r = await run('policy', 'check');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not valid YAML');
    expect(r.all).not.toMatch(STACK_LINE);
  });

  it('--json prints one JSON document with the effective sandbox and the findings', async () => {
    await addAgent('api');
    userPolicy('risky', RISKY);
    await addAgent('risky', '--policy', 'risky');
    const r = await run('policy', 'check', '--json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      results: { subject: string; valid: boolean; effective?: { network: { mode: string }; env_names: string[] }; findings: { code: string; severity: string }[] }[];
      summary: Record<string, number>;
    };
    expect(doc.summary).toEqual({ checked: 2, unusable: 0, errors: 0, warnings: 2 });
    expect(doc.results.map((x) => x.subject)).toEqual(['agent api', 'agent risky']);
    expect(doc.results[0]!.effective!.network.mode).toBe('gateway');
    expect(doc.results[1]!.findings.map((f) => f.code)).toEqual(expect.arrayContaining(['network-open', 'credentials-env']));
  });

  it('a user policy with an open network and env credentials: warnings listed, exit 0', async () => {
    userPolicy('risky', RISKY);
    await addAgent('api', '--policy', 'risky');
    const r = await run('policy', 'check');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`  policy:      risky (file ${join(env.stateDir, 'policies', 'risky.yaml')}, hash `);
    expect(r.stdout).toContain('  network:     OPEN (plain bridge, no allowlist)');
    expect(r.stdout).toContain('  credentials: passed INTO the container');
    expect(r.stdout).toContain('  warning network-open: network.mode is open');
    expect(r.stdout).toContain('  warning credentials-env: credentials: env puts the Anthropic credential inside the container');
    expect(r.stdout).toContain('0 error(s), 2 warning(s)');
  });

  it('a user policy that mounts the Docker socket exits 1', async () => {
    userPolicy('socket', SOCKET);
    // `add --policy socket` refuses it; a hand-edited agents.yaml can still point at it, and check must say so.
    const refused = await run('add', 'api', env.project('api'), '--policy', 'socket');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("Policy 'socket' cannot be used");
    env.writeConfig({ agents: { api: { directory: env.project('api'), policy: 'socket' } } });
    const r = await run('policy', 'check', '--agent', 'api');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('  ERROR   mount-docker-socket: mounts: /var/run/docker.sock exposes a container engine socket');
  });

  it('an agent pointed at your home directory is an error', async () => {
    const home = env.project('home');
    vi.stubEnv('HOME', home);
    env.writeConfig({ agents: { api: { directory: home } } });
    const r = await run('policy', 'check');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('repo-mount-home');
  });

  it('with no agents and no paths there is nothing to check (exit 0)', async () => {
    const r = await run('policy', 'check');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('No agents configured and no policy files given: nothing to check.');
  });
});

describe('policy check PATH...', () => {
  it('the shipped presets are clean', async () => {
    const r = await run('policy', 'check', ...['default', 'readonly-inspector', 'builder'].map((p) => join(PRESETS, `${p}.yaml`)));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Summary: 3 checked, 0 unusable, 0 error(s), 0 warning(s)');
  });

  it('a Docker socket mount exits 1 naming mount-docker-socket', async () => {
    const r = await run('policy', 'check', policyFile('socket.yaml', SOCKET));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('mount-docker-socket');
  });

  it('a ~ mount exits 1 naming mount-home', async () => {
    const r = await run('policy', 'check', policyFile('home.yaml', 'version: 1\nmounts:\n  - source: "~"\n    target: /data\n'));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('mount-home');
  });

  it('a path that does not exist exits 2', async () => {
    const missing = join(env.root, 'nope.yaml');
    const r = await run('policy', 'check', missing);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain(`UNUSABLE Policy '${missing}' not found`);
  });

  it('an invalid policy exits 2 and names the bad key', async () => {
    const r = await run('policy', 'check', policyFile('typo.yaml', 'version: 1\nnetwork:\n  mdoe: open\n'));
    expect(r.code).toBe(2);
    expect(r.stdout).toContain("network.mdoe: unknown key; did you mean 'mode'?");
  });

  it('unusable beats findings: one missing file and one socket mount exit 2', async () => {
    const r = await run('policy', 'check', policyFile('socket.yaml', SOCKET), join(env.root, 'nope.yaml'));
    expect(r.code).toBe(2);
  });

  it('PATH plus --agent checks both', async () => {
    await addAgent('api');
    const r = await run('policy', 'check', join(PRESETS, 'builder.yaml'), '--agent', 'api');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`policy ${join(PRESETS, 'builder.yaml')}`);
    expect(r.stdout).toContain('agent api');
    expect(r.stdout).toContain('Summary: 2 checked');
  });

  it('--json for files parses and carries the findings', async () => {
    const r = await run('policy', 'check', '--json', policyFile('socket.yaml', SOCKET));
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as { results: { valid: boolean; findings: { code: string; severity: string }[] }[]; summary: { errors: number } };
    expect(doc.results[0]!.valid).toBe(true);
    expect(doc.results[0]!.findings).toContainEqual(expect.objectContaining({ code: 'mount-docker-socket', severity: 'error' }));
    expect(doc.summary.errors).toBeGreaterThanOrEqual(1);
  });

  it('an unknown option exits 2', async () => {
    const r = await run('policy', 'check', '--strict');
    expect(r.code).toBe(2);
  });

  it('no subcommand exits 2 with the usage', async () => {
    const r = await run('policy');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('usage: agent-dispatch policy check');
  });
});

describe('policy check: the lint gaps of issue 14 each exit 1 naming the finding', () => {
  it.each([
    ['colima', 'version: 1\nmounts:\n  - source: "~/.colima"\n    target: /data\n', 'mount-docker-socket', '~/.colima'],
    ['rootless docker', 'version: 1\nmounts:\n  - source: /run/user/1000\n    target: /data\n', 'mount-docker-socket', '/run/user/*/docker.sock'],
    ['podman', 'version: 1\nmounts:\n  - source: /run/podman/podman.sock\n    target: /data/p.sock\n', 'mount-docker-socket', '/run/podman'],
    ['podman storage', 'version: 1\nmounts:\n  - source: "~/.local/share/containers"\n    target: /data\n', 'mount-docker-socket', '~/.local/share/containers'],
    ['a public-suffix wildcard', 'version: 1\nnetwork:\n  allow: ["*.co.uk"]\n', 'network-wildcard', 'co.uk, a public suffix'],
    ['*.github.io', 'version: 1\nnetwork:\n  allow: ["*.github.io"]\n', 'network-wildcard', 'github.io, a public suffix'],
    ['repo_git: writable', 'version: 1\nrepo: rw\nrepo_git: writable\n', 'repo-git-writable', 'core.fsmonitor'],
  ])('%s', async (_what, yaml, code, named) => {
    const r = await run('policy', 'check', policyFile('gap.yaml', yaml));
    expect(r.code, r.all).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`ERROR\\s+${code}: .*${named.replace(/[.*]/g, (c) => `\\${c}`)}`));
  });

  it('the config directory AGENT_DISPATCH_CONFIG moved elsewhere: mount-state-dir', async () => {
    const r = await run('policy', 'check', policyFile('state.yaml', `version: 1\nmounts:\n  - source: ${env.stateDir}\n    target: /data\n`));
    expect(r.code, r.all).toBe(1);
    expect(r.stdout).toContain(`mount-state-dir: mounts: ${env.stateDir} exposes agent-dispatch's own directory ${env.stateDir}`);
  });

  it('an agent whose repo holds the config directory: repo-mount-state-dir', async () => {
    await addAgent('api');
    env.writeConfig({ agents: { api: { directory: env.root, policy: 'default' } } });
    const r = await run('policy', 'check', '--agent', 'api');
    expect(r.code, r.all).toBe(1);
    expect(r.stdout).toContain('repo-mount-state-dir');
  });

  it('a directory holding a socket: mount-socket names the socket', async () => {
    const dir = env.project('sockets');
    mkdirSync(join(dir, 'run'));
    const server = createServer();
    await new Promise<void>((done) => server.listen(join(dir, 'run', 'db.sock'), done));
    try {
      const r = await run('policy', 'check', policyFile('sock.yaml', `version: 1\nmounts:\n  - source: ${dir}\n    target: /data\n`));
      expect(r.code, r.all).toBe(1);
      expect(r.stdout).toContain(`mount-socket: mounts: ${dir} holds a Unix socket (${join(dir, 'run', 'db.sock')})`);
    } finally {
      await new Promise<void>((done) => server.close(() => done()));
    }
  });

  it('a policy file inside a writable mount of its own: policy-in-writable-mount, for a file and for an agent', async () => {
    const shared = env.project('shared');
    const path = join(shared, 'policy.yaml');
    writeFileSync(path, `version: 1\nmounts:\n  - source: ${shared}\n    target: /shared\n    mode: rw\n`);
    const file = await run('policy', 'check', path);
    expect(file.code, file.all).toBe(1);
    expect(file.stdout).toContain(`policy-in-writable-mount: the policy file ${path} lies inside mounts: ${shared} (mode: rw)`);

    const dir = await addAgent('writer');
    const own = join(dir, 'agent-policy.yaml');
    writeFileSync(own, 'version: 1\nrepo: rw\n');
    env.writeConfig({ agents: { writer: { directory: dir, policy: own } } });
    const agent = await run('policy', 'check', '--agent', 'writer');
    expect(agent.code, agent.all).toBe(1);
    expect(agent.stdout).toContain(`policy-in-writable-mount: the policy file ${own} lies inside the agent's repo`);
  });

  it('mcp_servers and the .git protection are shown', async () => {
    const r = await run('policy', 'check', policyFile('rw.yaml', 'version: 1\nrepo: rw\ntools:\n  mcp_servers: [docs]\n'));
    expect(r.code, r.all).toBe(0);
    expect(r.stdout).toContain("mcp servers: only docs from the repo's .mcp.json");
    expect(r.stdout).toContain('repo:        rw at the agent\'s own path (.git read-only)');
  });
});

describe('policy show', () => {
  it('prints an agent’s container spec as JSON: read-only rootfs, no capabilities, no network', async () => {
    const dir = await addAgent('api');
    const r = await run('policy', 'show', 'api');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      subject: string;
      policy: { ref: string };
      container: { Image: string; WorkingDir: string; HostConfig: Record<string, unknown> };
    };
    expect(doc.subject).toBe('agent api');
    expect(doc.policy.ref).toBe('default');
    expect(doc.container.WorkingDir).toBe(dir);
    expect(doc.container.HostConfig).toMatchObject({
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      Privileged: false,
      NetworkMode: 'none',
      SecurityOpt: ['no-new-privileges'],
    });
  });

  it('never prints a secret from the server environment', async () => {
    vi.stubEnv('ANTHROPIC_API_KEY', 'sk-test-secret');
    vi.stubEnv('MY_TOKEN', 'tok-secret');
    const policy = userPolicy('creds', 'version: 1\ncredentials: env\nenv:\n  pass: [MY_TOKEN]\n');
    await addAgent('api', '--policy', 'creds');
    for (const argv of [
      ['policy', 'show', 'api'],
      ['policy', 'show', policy],
      ['policy', 'check', '--json'],
      ['policy', 'check'],
      ['policy', 'check', '--agent', 'api', '--json', policy],
    ]) {
      const r = await run(...argv);
      expect(r.code, argv.join(' ')).toBe(0);
      expect(r.all, argv.join(' ')).not.toContain('sk-test-secret');
      expect(r.all, argv.join(' ')).not.toContain('tok-secret');
    }
    const shown = JSON.parse((await run('policy', 'show', 'api')).stdout) as { container: { Env: string[] } };
    expect(shown.container.Env).toContain('ANTHROPIC_API_KEY=<passed from the server environment>');
    expect(shown.container.Env).toContain('MY_TOKEN=<passed from the server environment>');
  });

  it('a preset name that is not an agent is compiled for an example agent', async () => {
    const r = await run('policy', 'show', 'builder');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { subject: string; note: string; container: { HostConfig: { ReadonlyRootfs: boolean } } };
    expect(doc.subject).toBe('policy builder');
    expect(doc.note).toContain('compiled for an example agent');
    expect(doc.container.HostConfig.ReadonlyRootfs).toBe(true);
  });

  it('neither an agent nor a policy: exit 1 naming the presets', async () => {
    const r = await run('policy', 'show', 'ghost');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("'ghost' is neither a configured agent nor a usable policy.");
    expect(r.stderr).toContain('builder, default, readonly-inspector');
  });

  it('an agent whose policy is unusable: exit 1 with the reason', async () => {
    env.writeConfig({ agents: { api: { directory: env.project('api'), policy: 'no-such-policy' } } });
    const r = await run('policy', 'show', 'api');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Policy 'no-such-policy' not found");
  });
});
