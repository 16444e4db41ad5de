import type { AgentConfig, Settings } from '../config/schema.js';
import { AppError } from '../errors.js';
import { claudeFlags } from './claude-args.js';
import { parseSize, type ContainerSpec, type MountSpec } from './container-spec.js';
import { containerPath, hostPathForms, isUnder, type RealpathFn } from './host-path.js';
import * as layout from './layout.js';
import { compileNetwork, type NetworkSpec } from './network-spec.js';
import { effectiveTools, type EffectiveTools } from './permissions.js';
import { inspectRepoGit, type RepoGit } from './repo-git.js';
import { CREDENTIAL_ENV, serverCredentialName, type Policy, type SandboxEnvName } from './schema.js';

export interface CompileInput {
  agentName: string;
  agent: AgentConfig;
  settings: Settings;
  policy: Policy;
  policyRef: string;
  policyHash: string;
  /** The server's environment: the only source of `env.pass` values and (with `credentials: env`) the key. */
  hostEnv: Readonly<Record<string, string | undefined>>;
  /** The dispatch depth of the calling process; the container gets depth + 1. */
  depth: number;
  /** Host owner of the repo, used as the container user for `repo: rw` and `repo: overlay` (never root). */
  repoOwner?: { uid: number; gid: number };
  /** Symlink resolver for extra-mount sources (default: the real file system). */
  realpath?: RealpathFn;
  /** What `<directory>/.git` is, for `repo: rw` (default: looked up on the real file system). */
  repoGit?: RepoGit;
  /**
   * The config directory the agent belongs to (resolveAgentPolicy passes it). With the agent directory it
   * scopes the agent's volumes (`layout.volumeScope`), so two configs never share an agent's sessions.
   */
  scope?: string;
}

export interface EffectiveMount {
  kind: 'bind' | 'volume' | 'tmpfs';
  source: string;
  target: string;
  mode: 'ro' | 'rw' | 'overlay';
  what: string;
}

export interface CompiledSandbox {
  container: ContainerSpec;
  network: NetworkSpec;
  /** Flags for `claude` after the prompt and output format. */
  claudeArgs: string[];
  /** Written read-only to MANAGED_SETTINGS_PATH: what no other settings source can widen (see ManagedSettings). */
  managedSettings: ManagedSettings;
  tools: EffectiveTools;
  timeoutSeconds: number;
  mounts: EffectiveMount[];
  /** Environment variable names set in the container (values never leave this object). */
  envNames: string[];
  /** env.pass names that the server environment does not define. */
  missingEnv: string[];
  /** Host variables deliberately kept out of the container, and why (also in `notes`; lintCompiled warns). */
  withheldEnv: { name: string; reason: string }[];
  notes: string[];
}

/** Settings whose value is a shell command claude runs itself, outside the tool rules. */
export const COMMAND_SETTINGS = ['apiKeyHelper', 'awsAuthRefresh', 'awsCredentialExport', 'gcpAuthRefresh', 'otelHeadersHelper', 'proxyAuthHelper'] as const;

/**
 * Names a settings file's `env` could use to send the credential elsewhere or to run code in every process
 * claude starts (its own git calls, MCP servers, Bash). Pinned to empty in the managed `env` unless the
 * sandbox sets them (then they are pinned to the sandbox's value, ANTHROPIC_BASE_URL included when it is the
 * host's) or the policy passes them from the host.
 */
export const PINNED_UNSET_ENV = [
  'ANTHROPIC_BASE_URL',
  'HTTPS_PROXY',
  'HTTP_PROXY',
  'https_proxy',
  'http_proxy',
  'NODE_EXTRA_CA_CERTS',
  'NODE_OPTIONS',
  'LD_PRELOAD',
  'LD_LIBRARY_PATH',
  'LD_AUDIT',
  'BASH_ENV',
  'ENV',
  // Code a repo's settings `env` could make the programs claude itself starts run: git's config from the
  // environment (GIT_CONFIG_PARAMETERS; GIT_CONFIG_COUNT below) and ripgrep's config file, behind the
  // Grep and Glob tools, whose `--pre=COMMAND` runs a command on every file searched.
  'GIT_CONFIG_PARAMETERS',
  'RIPGREP_CONFIG_PATH',
  'CLAUDE_CODE_SHELL_PREFIX',
] as const;

/**
 * Pinned to these values unless the sandbox or the policy sets them. GIT_CONFIG_COUNT=0 drops the
 * GIT_CONFIG_KEY_n/VALUE_n pairs (core.fsmonitor=<command> runs on every `git status`).
 * CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS=1 (with `includeGitInstructions: false`) stops claude running git in the
 * repo by itself: a repo's settings can point GIT_DIR at a git dir of its own whose config names a command,
 * and GIT_DIR cannot be pinned (git refuses an empty one); in the env it is read before the setting, so a repo
 * setting it to 0 would switch the git calls back on.
 */
export const PINNED_ENV: Readonly<Record<string, string>> = { GIT_CONFIG_COUNT: '0', CLAUDE_CODE_DISABLE_GIT_INSTRUCTIONS: '1' };

/**
 * The managed settings file: the highest-precedence settings source, which nothing in the container can
 * change. Besides the repo's `.claude/settings*.json`, claude reads `settings.json` and `.claude.json` in
 * CLAUDE_CONFIG_DIR, which the agent can write during its dispatch (a per-dispatch tmpfs; only `projects/` is
 * the persistent session volume). So, checked against
 * claude 2.1.197 (test/integration/settings-escape.test.ts):
 * - `allowManagedPermissionRulesOnly`: allow/ask/deny rules from user, project and local settings are ignored,
 *   also once a trust flag planted in `.claude.json` would make a repo's rules count. The command-line `--allowedTools` /
 *   `--disallowedTools` still count in 2.1.197; the managed lists repeat them, so the policy's rules hold
 *   whichever way a later version reads the flag.
 * - `allowManagedHooksOnly` and `disableAllHooks`: no hook from any other source runs.
 * - the command settings (`apiKeyHelper`, ...) pinned to empty: a repo's helper command never runs.
 * - `env`: the sandbox's own values (PATH, HOME, the depth counter, ...) pinned, so a settings file cannot
 *   reset them; PINNED_UNSET_ENV pinned empty. With `credentials: env` the host's ANTHROPIC_BASE_URL is pinned
 *   to its value (not a secret, and already in the container env), so a repo cannot send the key elsewhere;
 *   a base URL carrying credentials (user:pass@) is withheld from the container altogether and pinned empty.
 *   The credentials and `env.pass` values are never written here.
 * - MCP servers (`tools.mcp_servers`): `allowManagedMcpServersOnly` with `allowedMcpServers` (empty for
 *   `none`, the names for a list; absent for `repo`). Checked against 2.1.197 (test/integration/managed-settings.test.ts):
 *   `allowedMcpServers` alone is merged with a repo's own `.claude/settings.json`, which can then admit its
 *   servers; `enableAllProjectMcpServers: false` and `enabledMcpjsonServers` change nothing under `-p`.
 *   `none` also passes `--strict-mcp-config` (claudeFlags).
 * - `includeGitInstructions: false`: claude runs no git command of its own (see PINNED_ENV).
 * User settings (`~/.claude/settings.json`) and the MCP servers in `.claude.json` are dropped
 * by `--setting-sources project` (claudeFlags).
 */
export interface ManagedSettings {
  permissions: { allow: string[]; deny: string[]; disableBypassPermissionsMode?: 'disable' };
  allowManagedPermissionRulesOnly: true;
  allowManagedHooksOnly: true;
  disableAllHooks: true;
  env: Record<string, string>;
  apiKeyHelper: '';
  awsAuthRefresh: '';
  awsCredentialExport: '';
  gcpAuthRefresh: '';
  otelHeadersHelper: '';
  proxyAuthHelper: '';
  includeGitInstructions: false;
  allowManagedMcpServersOnly?: true;
  allowedMcpServers?: { serverName: string }[];
}

export function compileSandbox(input: CompileInput): CompiledSandbox {
  const { agent, policy, agentName } = input;
  const tools = effectiveTools(agent, input.settings, policy);
  const user = containerUser(input);
  const scope = layout.volumeScope(input.scope, agent.directory);
  const mounts = effectiveMounts(input, user.uid, scope);
  const { env, missing, withheld } = containerEnv(input);
  const network = compileNetwork(policy);
  const memory = parseSize(policy.resources.memory);
  const requestedTimeout = agent.timeout || input.settings.default_timeout;
  const timeoutSeconds = Math.min(requestedTimeout, policy.resources.timeout);
  const notes = [...tools.notes];
  if (timeoutSeconds < requestedTimeout) notes.push(`timeout ${requestedTimeout}s capped at the policy's ${timeoutSeconds}s`);
  if (policy.repo === 'rw' && input.repoOwner?.uid === 0) {
    notes.push('the repo is owned by root; the container never runs as root, so writes to it may fail');
  }
  if (policy.repo === 'overlay' && input.repoOwner?.uid === 0) {
    notes.push('the repo is owned by root; the container never runs as root, so the agent cannot change what only root may write, even in its overlay');
  }
  for (const w of withheld) notes.push(withheldMessage(w));
  if (policy.repo === 'rw' && policy.repo_git === 'protected' && !mounts.some((m) => m.target === `${agent.directory}/.git`)) {
    notes.push(`${agent.directory} has no .git: nothing to protect, but a .git the agent creates there would be used by git on the host`);
  }

  const container: ContainerSpec = {
    Image: policy.image,
    User: `${user.uid}:${user.gid}`,
    WorkingDir: agent.directory,
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: {
      [`${layout.LABEL_PREFIX}.agent`]: agentName,
      [`${layout.LABEL_PREFIX}.policy`]: input.policyRef,
      [`${layout.LABEL_PREFIX}.policy-hash`]: input.policyHash,
    },
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    NetworkDisabled: network.mode === 'gateway',
    HostConfig: {
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      CapAdd: [],
      SecurityOpt: ['no-new-privileges'],
      Privileged: false,
      NetworkMode: network.mode === 'gateway' ? 'none' : 'bridge',
      IpcMode: 'private',
      PidMode: '',
      UTSMode: '',
      UsernsMode: '',
      CgroupParent: '',
      PidsLimit: policy.resources.pids,
      Memory: memory,
      MemorySwap: memory,
      NanoCpus: Math.round(policy.resources.cpus * 1e9),
      Ulimits: [
        { Name: 'nofile', Soft: policy.resources.nofile, Hard: policy.resources.nofile },
        { Name: 'fsize', Soft: parseSize(policy.resources.max_file_size), Hard: parseSize(policy.resources.max_file_size) },
      ],
      Tmpfs: tmpfs(input, user),
      // The overlay is per dispatch (its upper dir is the dispatch's): the dispatcher mounts it (src/dispatch/overlay.ts).
      Mounts: mounts.filter((m) => m.kind !== 'tmpfs' && m.mode !== 'overlay').map((m) => toMountSpec(m, input.agentName, scope, input.scope)),
      Devices: [],
      Init: true,
      AutoRemove: false,
    },
  };

  return {
    container,
    network,
    claudeArgs: claudeFlags(agent, input.settings, tools, policy.tools.mcp_servers),
    managedSettings: managedSettings(tools, policy, env),
    tools,
    timeoutSeconds,
    mounts,
    envNames: Object.keys(env),
    missingEnv: missing,
    withheldEnv: withheld,
    notes,
  };
}

/**
 * The repo owner for `rw` (its writes stay the owner's) and `overlay` (the agent must read and change every file
 * the owner can, 0600 ones included); never root. `ro` and an unknown or root owner: uid 1000.
 */
function containerUser(input: CompileInput): { uid: number; gid: number } {
  const owner = input.repoOwner;
  if (input.policy.repo !== 'ro' && owner && owner.uid !== 0) return owner;
  return { uid: layout.CONTAINER_UID, gid: layout.CONTAINER_GID };
}

function effectiveMounts(input: CompileInput, uid: number, scope: string): EffectiveMount[] {
  const dir = input.agent.directory;
  const mounts: EffectiveMount[] = [];
  if (input.policy.repo === 'overlay') {
    mounts.push({ kind: 'volume', source: dir, target: dir, mode: 'overlay', what: 'repo (copy-on-write overlay per dispatch; host untouched, changes returned as a patch)' });
  } else {
    mounts.push({ kind: 'bind', source: dir, target: dir, mode: input.policy.repo, what: 'repo' });
    if (input.policy.repo === 'rw' && input.policy.repo_git === 'protected') mounts.push(...gitMounts(dir, input.repoGit ?? inspectRepoGit(dir)));
  }
  for (const m of input.policy.mounts) {
    // Docker follows symlinks in a bind source; binding the canonical path makes the effective mount honest.
    // With no target the mount appears at the path as written (made absolute), as `policy check` lints it.
    const { resolved, canonical } = hostPathForms(m.source, input.realpath ? { realpath: input.realpath } : {});
    mounts.push({ kind: 'bind', source: canonical, target: m.target !== undefined ? containerPath(m.target) : resolved, mode: m.mode, what: 'extra mount' });
  }
  mounts.push({
    kind: 'volume',
    source: layout.claudeStateVolume(input.agentName, scope, uid),
    target: layout.CLAUDE_SESSIONS_DIR,
    mode: 'rw',
    what: 'Claude session state',
  });
  if (input.policy.network.mode === 'gateway') {
    mounts.push({
      kind: 'volume',
      source: layout.gatewayVolume(input.agentName, scope),
      target: layout.GATEWAY_SOCKET_DIR,
      mode: 'ro',
      what: 'egress gateway socket',
    });
  }
  return mounts;
}

const GIT_WHAT = 'read-only: git on the host runs commands its config and hooks name';

/**
 * `repo: rw`: the repo's `.git` bound read-only over the writable repo. A `.git` file (worktree, submodule) is
 * bound read-only too, so the agent cannot point it at a git dir of its own; the git dir it names is bound
 * read-only when it lies inside the repo (outside, it is not in the container at all).
 */
function gitMounts(dir: string, git: RepoGit): EffectiveMount[] {
  const bind = (path: string, what: string): EffectiveMount => ({ kind: 'bind', source: path, target: path, mode: 'ro', what });
  const path = `${dir}/.git`;
  switch (git.kind) {
    case 'dir':
      return [bind(path, `repo .git (${GIT_WHAT})`)];
    case 'file':
      if (git.missing && git.gitdir !== undefined && isUnder(git.gitdir, dir)) {
        throw new AppError('POLICY_INVALID', `Refusing to mount ${dir} read-write: its .git file names ${git.gitdir}, inside the repo, which does not exist; the agent could create it, and git on the host would run the config it finds there.`, {
          hint: "Fix or remove the .git file, use 'repo: overlay', or set 'repo_git: writable' if you accept the risk.",
        });
      }
      return [
        bind(path, `repo .git file (${GIT_WHAT})`),
        ...(git.gitdir !== undefined && isUnder(git.gitdir, dir) ? [bind(git.gitdir, `the git dir ${path} names (${GIT_WHAT})`)] : []),
      ];
    case 'absent':
      return [];
    default:
      throw new AppError('POLICY_INVALID', `Refusing to mount ${dir} read-write: its .git is a ${git.kind === 'symlink' ? 'symbolic link' : 'special file'}, which a read-only mount cannot protect (the agent could replace it, and git on the host would run the config it then finds).`, {
        hint: "Use 'repo: overlay' (changes come back as a patch), make .git a plain directory, or set 'repo_git: writable' if you accept the risk.",
      });
  }
}

function toMountSpec(m: EffectiveMount, agentName: string, scope: string, configDir: string | undefined): MountSpec {
  if (m.kind === 'volume') {
    // config-dir: the scope is a one-way hash; `gc` needs the directory to tell when the config it came from is gone.
    const Labels = {
      [`${layout.LABEL_PREFIX}.agent`]: agentName,
      [`${layout.LABEL_PREFIX}.scope`]: scope,
      ...(configDir !== undefined ? { [layout.CONFIG_DIR_LABEL]: configDir } : {}),
    };
    // NoCopy: the image's directory must not be copied into (and re-own) the volume on every mount.
    return { Type: 'volume', Source: m.source, Target: m.target, ReadOnly: m.mode === 'ro', VolumeOptions: { NoCopy: true, Labels } };
  }
  return { Type: 'bind', Source: m.source, Target: m.target, ReadOnly: m.mode === 'ro', BindOptions: { Propagation: 'rprivate' } };
}

/** /tmp and $HOME are small private tmpfs. */
function tmpfs(input: CompileInput, user: { uid: number; gid: number }): Record<string, string> {
  const size = input.policy.resources.tmp_size;
  const owned = `uid=${user.uid},gid=${user.gid}`;
  const mounts: Record<string, string> = {
    '/tmp': `rw,nosuid,nodev,size=${size},mode=1777`,
    [layout.CONTAINER_HOME]: `rw,nosuid,nodev,size=${size},${owned},mode=0700`,
    [layout.CLAUDE_CONFIG_DIR]: `rw,nosuid,nodev,size=${size},${owned},mode=0700`,
  };
  return mounts;
}

/** The message for a withheld variable: a compile note and (lintCompiled) a warning. */
export function withheldMessage(w: { name: string; reason: string }): string {
  return `${w.name} is not passed into the container: ${w.reason}`;
}

/**
 * The container environment. Only `SandboxEnvName`s (RESERVED_ENV and the credential names) can be set here
 * before the policy's `env.pass` and `env.set`, which the schema keeps off those names.
 */
function containerEnv(input: CompileInput): { env: Record<string, string>; missing: string[]; withheld: { name: string; reason: string }[] } {
  const { policy, hostEnv } = input;
  const own: Partial<Record<SandboxEnvName, string>> = {
    HOME: layout.CONTAINER_HOME,
    PATH: layout.CONTAINER_PATH,
    USER: 'agent',
    CLAUDE_CONFIG_DIR: layout.CLAUDE_CONFIG_DIR,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    AGENT_DISPATCH_DEPTH: String(input.depth + 1),
  };
  const withheld: { name: string; reason: string }[] = [];
  if (policy.network.mode === 'gateway') {
    const proxy = `http://127.0.0.1:${layout.GATEWAY_BRIDGE_PORT}`;
    // Both spellings: curl reads only the lower-case http_proxy. The API goes straight to the bridge.
    own.HTTPS_PROXY = own.https_proxy = proxy;
    own.HTTP_PROXY = own.http_proxy = proxy;
    own.NO_PROXY = own.no_proxy = '127.0.0.1,localhost';
    own.ANTHROPIC_BASE_URL = proxy;
  }
  if (policy.credentials === 'inject') {
    own[serverCredentialName(hostEnv) ?? 'ANTHROPIC_API_KEY'] = layout.CREDENTIAL_PLACEHOLDER;
  } else {
    for (const name of CREDENTIAL_ENV) {
      const value = hostEnv[name];
      if (value !== undefined && value !== '') own[name] = value;
    }
    const baseUrl = hostEnv['ANTHROPIC_BASE_URL'];
    if (baseUrl !== undefined && baseUrl !== '' && policy.network.mode !== 'gateway') {
      // Pinned in the managed settings (see ManagedSettings); a URL with credentials in it is never written there.
      if (hasUserinfo(baseUrl)) {
        withheld.push({
          name: 'ANTHROPIC_BASE_URL',
          reason:
            "the server's value has credentials in it (user:password@), which would be written to the managed settings file; claude will use the default Anthropic API. Put the proxy's credential in ANTHROPIC_AUTH_TOKEN or ANTHROPIC_API_KEY and drop the userinfo from the URL",
        });
      } else {
        own.ANTHROPIC_BASE_URL = baseUrl;
      }
    }
  }
  const env: Record<string, string> = { ...own };
  const missing: string[] = [];
  for (const name of policy.env.pass) {
    const value = hostEnv[name];
    if (value === undefined) missing.push(name);
    else env[name] = value;
  }
  Object.assign(env, policy.env.set);
  return { env, missing, withheld };
}

/** True when a URL carries userinfo (`user@`, `user:pass@`), also when it does not parse as a URL. */
export function hasUserinfo(url: string): boolean {
  const authority = url.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').split(/[/?#]/, 1)[0] ?? '';
  if (authority.includes('@')) return true;
  try {
    const parsed = new URL(url);
    return parsed.username !== '' || parsed.password !== '';
  } catch {
    return false;
  }
}

function managedSettings(tools: EffectiveTools, policy: Policy, env: Record<string, string>): ManagedSettings {
  const permissions: ManagedSettings['permissions'] = { allow: [...tools.allowedTools], deny: [...tools.disallowedTools] };
  if (policy.tools.permission_mode !== 'bypassPermissions') permissions.disableBypassPermissionsMode = 'disable';
  // Secrets and the policy's own host values stay out of the file; every other container value is pinned,
  // the host's ANTHROPIC_BASE_URL included (containerEnv keeps one with credentials in it out of the container).
  const fromHost = new Set<string>([...CREDENTIAL_ENV, ...policy.env.pass]);
  const pinned: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (!fromHost.has(name)) pinned[name] = value;
  const unset = Object.fromEntries(PINNED_UNSET_ENV.map((name) => [name, '']));
  for (const [name, value] of Object.entries({ ...unset, ...PINNED_ENV })) if (!(name in env) && !policy.env.pass.includes(name)) pinned[name] = value;
  const servers = policy.tools.mcp_servers;
  return {
    permissions,
    allowManagedPermissionRulesOnly: true,
    allowManagedHooksOnly: true,
    disableAllHooks: true,
    env: pinned,
    ...(Object.fromEntries(COMMAND_SETTINGS.map((name) => [name, ''])) as Record<(typeof COMMAND_SETTINGS)[number], ''>),
    includeGitInstructions: false,
    ...(servers === 'repo'
      ? {}
      : { allowManagedMcpServersOnly: true, allowedMcpServers: (servers === 'none' ? [] : servers).map((serverName) => ({ serverName })) }),
  };
}
