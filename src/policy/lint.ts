import { lstatSync, opendirSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { jobsDir, stateDir } from '../config/paths.js';
import { withheldMessage, type CompiledSandbox } from './compile.js';
import { containerPath, hostPathForms, isUnder, overlaps, type HostPathForms, type HostPathOptions, type RealpathFn } from './host-path.js';
import * as layout from './layout.js';
import { parseAllowPattern } from './network-spec.js';
import { publicSuffixOf } from './public-suffixes.js';
import type { Policy } from './schema.js';

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  severity: Severity;
  code: string;
  message: string;
  fix?: string;
  /**
   * An error the policy asked for in so many words (`repo_git: writable`): `policy check` reports it and exits 1,
   * but it is the user's explicit choice, so `blockingFindings` leaves it out.
   */
  optIn?: true;
}

/** The error findings that make a policy unusable for a dispatch (every error but an explicit opt-in). */
export function blockingFindings(findings: Finding[]): Finding[] {
  return findings.filter((f) => f.severity === 'error' && !f.optIn);
}

const SOCKET = /(^|\/)(docker|containerd|podman|crio|buildkitd)\.sock$/;
const SOCKET_DIRS = ['/var/run', '/run', '/var/run/docker', '/run/docker', '/run/containerd', '/var/lib/docker'];
const SYSTEM_EXACT = ['/etc', '/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/opt', '/var', '/srv', '/home', '/root', '/mnt', '/media'];
const SYSTEM_SUBTREES = ['/proc', '/sys', '/dev', '/boot', '/run', '/var/run', '/var/lib/docker', '/var/lib/containerd'];
/**
 * Where other container engines keep their sockets (each is root on the host, or on the engine's VM, which
 * holds your files): Colima, Rancher Desktop, OrbStack, Lima, Docker Desktop, rootless Docker and Podman
 * (`/run/user/<uid>/…`), rootful Podman, and Podman's storage. `~/` is each user's home; `*` is one path part.
 */
const ENGINE_PATHS = [
  '~/.colima',
  '~/.rd',
  '~/.orbstack',
  '~/.lima',
  '~/.docker',
  '~/Library/Containers/com.docker.docker',
  '~/.local/share/containers',
  '~/.config/containers',
  '/run/user/*/docker.sock',
  '/run/user/*/docker',
  '/run/user/*/podman',
  '/run/user/*/containers',
  '/run/podman',
  '/var/run/podman',
  '/run/user/*/.docker',
];
/** A mounted directory is searched this deep and this wide for a socket. */
export const SOCKET_SCAN = { depth: 4, entries: 5000 } as const;
const HOME_SECRETS = ['.ssh', '.aws', '.gnupg', '.kube', '.docker', '.azure', '.config/gcloud', '.config/gh', '.netrc', '.npmrc', '.pypirc', '.git-credentials', '.claude', '.claude.json', '.config/agent-dispatch'];
const SECRET_NAME = /(KEY|TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE|COOKIE|SESSION|AUTH)|^AWS_|^GH_|^GITHUB_|^NPM_/i;

/** Whole-policy combinations, each a fixed finding. */
const POLICY_RULES: { applies: (p: Policy) => boolean; finding: Finding }[] = [
  {
    applies: (p) => p.network.mode === 'open',
    finding: {
      severity: 'warning',
      code: 'network-open',
      message: 'network.mode is open: the container has a plain bridge network, with no allowlist and no egress gateway',
      fix: 'Use network.mode: gateway with an explicit network.allow list.',
    },
  },
  {
    applies: (p) => p.network.mode === 'open' && p.network.allow.length > 0,
    finding: {
      severity: 'info',
      code: 'network-allow-unused',
      message: 'network.allow is ignored with network.mode: open: the container reaches every host, not just the listed ones',
      fix: 'Use network.mode: gateway to enforce the list, or remove network.allow.',
    },
  },
  {
    applies: (p) => p.network.mode === 'open' && p.credentials === 'inject',
    finding: {
      severity: 'error',
      code: 'inject-without-gateway',
      message: 'credentials: inject needs network.mode: gateway (the gateway is what adds the key); with mode open the agent could not authenticate',
      fix: "Use network.mode: gateway, or say 'credentials: env' explicitly.",
    },
  },
  {
    applies: (p) => p.network.mode === 'open' && p.repo === 'rw',
    finding: {
      severity: 'warning',
      code: 'rw-with-open-network',
      message: 'repo: rw with network.mode: open lets the agent change the repo and send anything anywhere',
      fix: 'Use repo: overlay, or network.mode: gateway.',
    },
  },
  {
    applies: (p) => p.credentials === 'env',
    finding: {
      severity: 'warning',
      code: 'credentials-env',
      message: 'credentials: env puts the Anthropic credential inside the container, where the agent can read it',
      fix: 'Use credentials: inject (the gateway adds the key on the way out).',
    },
  },
  {
    applies: (p) => p.tools.permission_mode === 'bypassPermissions' && p.tools.allow === null,
    finding: {
      severity: 'warning',
      code: 'bypass-without-allowlist',
      message: 'tools.permission_mode: bypassPermissions with no tools.allow list lets the agent run every tool unprompted',
      fix: 'Add a tools.allow list, or use permission_mode: default with explicit allowed tools.',
    },
  },
  {
    applies: (p) => p.repo === 'rw',
    finding: {
      severity: 'info',
      code: 'repo-rw',
      message: "repo: rw — the agent writes straight into the host repo (its .git stays read-only: repo_git: protected); anything it writes that you later run (scripts, build files, a nested .git) runs as you",
      fix: 'repo: overlay returns changes as a patch instead.',
    },
  },
  {
    applies: (p) => p.repo === 'rw' && p.repo_git === 'writable',
    finding: {
      severity: 'error',
      code: 'repo-git-writable',
      message:
        "repo_git: writable with repo: rw lets the agent write the repo's .git: a command it puts in .git/config (core.fsmonitor, core.hooksPath, an alias) or .git/hooks/ runs on the host, as you, at your next git status, commit or checkout",
      fix: "Remove repo_git (the default, protected, mounts .git read-only), or use repo: overlay and apply the returned patch.",
      optIn: true,
    },
  },
  {
    applies: (p) => p.repo !== 'rw' && p.repo_git === 'writable',
    finding: { severity: 'info', code: 'repo-git-unused', message: `repo_git: writable only applies to repo: rw; the host's .git is not writable under this repo mode`, fix: 'Remove repo_git.' },
  },
  {
    applies: (p) => p.tools.mcp_servers === 'repo',
    finding: {
      severity: 'warning',
      code: 'mcp-servers-repo',
      message: "tools.mcp_servers: repo starts every MCP server the repo's .mcp.json names: commands from the repo run in the container when claude starts, before any tool rule, even without Bash",
      fix: 'List only the servers the agent needs (tools.mcp_servers: [name]), or none.',
    },
  },
];

export interface LintContext {
  /** The host user's home directory (mounts of it or above it are refused); `~` means this. */
  home?: string;
  /** The agent's repo directory, when linting an agent (not a standalone policy file). */
  repo?: string;
  /** Symlink resolver for host paths (default: the real file system); tests inject a fake. */
  realpath?: RealpathFn;
  /**
   * The server's config/state and jobs directories (default: where AGENT_DISPATCH_CONFIG and
   * AGENT_DISPATCH_JOBS_DIR put them): agents.yaml, policies, audit records, job results.
   */
  stateDirs?: string[];
  /** The policy file being linted: it must not lie in a directory the agent can write. */
  policyPath?: string;
  /** Look for sockets inside mounted directories (default true; it reads the host file system). */
  scanSockets?: boolean;
}

/** What host paths are judged against. */
interface HostContext {
  homes: string[];
  stateDirs: string[];
  options: HostPathOptions;
}

/** Paths inside the container that the sandbox itself uses: an extra mount may not land on, in or above them. */
const SANDBOX_OWNED = [
  layout.CONTAINER_HOME,
  dirname(layout.MANAGED_SETTINGS_PATH),
  layout.GATEWAY_SOCKET_DIR,
  '/usr/local/bin',
  '/proc',
  '/sys',
  '/dev',
];

const RESERVED_TARGETS = [
  ...SANDBOX_OWNED,
  '/etc',
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
  '/lib64',
  '/tmp',
  '/run',
  '/var/run',
  '/opt',
];

/** Risky or refused combinations in a policy alone (plus the agent's repo, when the context names one). */
export function lintPolicy(policy: Policy, context: LintContext = {}): Finding[] {
  const paths: HostPathOptions = { home: context.home ?? homedir(), ...(context.realpath ? { realpath: context.realpath } : {}) };
  const home = hostPathForms(paths.home!, paths);
  const homes = [...new Set([home.resolved, home.canonical])];
  const stateDirs = (context.stateDirs ?? [stateDir(), jobsDir()]).flatMap((d) => {
    const forms = safeForms(d, paths);
    return forms ? [forms.resolved, forms.canonical] : [];
  });
  const host: HostContext = { homes, stateDirs: [...new Set(stateDirs)], options: paths };
  const repo = context.repo ? safeForms(context.repo, paths) : undefined;
  const findings: Finding[] = [];
  const writable: { label: string; forms: HostPathForms }[] = repo && policy.repo === 'rw' ? [{ label: `the agent's repo (${context.repo}, repo: rw)`, forms: repo }] : [];
  for (const mount of policy.mounts) {
    const source = safeForms(mount.source, paths);
    if (!source) {
      findings.push({ severity: 'error', code: 'mount-unresolvable', message: `mounts: ${mount.source} cannot be resolved (unknown user?)`, fix: 'Use an absolute path or ~/...' });
      continue;
    }
    const sourceFindings = lintHostPath(source, host, `mounts: ${mount.source}`);
    if (sourceFindings.length === 0 && context.scanSockets !== false) sourceFindings.push(...socketInside(source.canonical, `mounts: ${mount.source}`));
    findings.push(...sourceFindings);
    if (mount.mode === 'rw') writable.push({ label: `mounts: ${mount.source} (mode: rw)`, forms: source });
    // With no target the mount lands at the source path, which the source findings have already judged.
    if (mount.target !== undefined || sourceFindings.length === 0) findings.push(...lintTarget(mount.target, source, repo));
    if (mount.mode === 'rw') {
      findings.push({ severity: 'warning', code: 'mount-rw', message: `mounts: ${mount.source} is writable from the sandbox`, fix: 'Use mode: ro unless the agent must write there.' });
    }
  }
  for (const rule of POLICY_RULES) if (rule.applies(policy)) findings.push(rule.finding);
  for (const pattern of policy.network.allow) findings.push(...lintAllowPattern(pattern));
  for (const name of policy.env.pass) {
    if (SECRET_NAME.test(name)) {
      findings.push({ severity: 'warning', code: 'secret-env-pass', message: `env.pass: ${name} looks like a secret and will be readable by the agent`, fix: 'Pass only what the task needs; keep secrets out of env.pass.' });
    }
  }
  if (context.repo) findings.push(...lintRepo(context.repo, repo, host, context.scanSockets !== false));
  if (context.policyPath) findings.push(...policyInWritable(context.policyPath, writable, paths));
  return findings;
}

/** The agent could rewrite its own policy (or swap it for a link) for the next dispatch. */
function policyInWritable(policyPath: string, writable: { label: string; forms: HostPathForms }[], options: HostPathOptions): Finding[] {
  const file = safeForms(policyPath, options);
  if (!file) return [];
  const hit = writable.find(({ forms }) =>
    [file.resolved, file.canonical].some((f) => [forms.resolved, forms.canonical].some((dir) => f === dir || isUnder(f, dir))),
  );
  if (!hit) return [];
  return [{
    severity: 'error',
    code: 'policy-in-writable-mount',
    message: `the policy file ${policyPath} lies inside ${hit.label}, which the agent can write: it could rewrite its own policy for the next dispatch`,
    fix: 'Keep policy files in the config directory (policies/<name>.yaml) or anywhere no agent can write.',
  }];
}

/**
 * The first socket in a mounted directory (or the source itself): a socket there lets the agent talk to a
 * host service, and an engine's is root on the host. Bounded (SOCKET_SCAN); links are not followed.
 */
function socketInside(source: string, label: string): Finding[] {
  const found = findSocket(source);
  if (found === undefined) return [];
  if (found === 'incomplete') {
    return [{ severity: 'info', code: 'mount-scan-incomplete', message: `${label} has more than ${SOCKET_SCAN.entries} entries within ${SOCKET_SCAN.depth} levels; it was not fully searched for sockets`, fix: 'Mount a narrower directory.' }];
  }
  return [{
    severity: 'error',
    code: 'mount-socket',
    message: `${label} ${found === source ? 'is' : `holds`} a Unix socket (${found}): the agent could talk to the host service behind it (a container engine's socket is root on the host)`,
    fix: 'Mount a directory without sockets in it, or only the files the agent needs.',
  }];
}

function findSocket(root: string): string | 'incomplete' | undefined {
  try {
    const st = lstatSync(root);
    if (st.isSocket()) return root;
    if (!st.isDirectory()) return undefined;
  } catch {
    return undefined;
  }
  let budget: number = SOCKET_SCAN.entries;
  const queue: { dir: string; depth: number }[] = [{ dir: root, depth: 1 }];
  for (let next = queue.shift(); next; next = queue.shift()) {
    let dir;
    try {
      dir = opendirSync(next.dir);
    } catch {
      continue;
    }
    try {
      for (let entry = dir.readSync(); entry; entry = dir.readSync()) {
        if (--budget < 0) return 'incomplete';
        const path = join(next.dir, entry.name);
        if (entry.isSocket()) return path;
        if (entry.isDirectory() && next.depth < SOCKET_SCAN.depth) queue.push({ dir: path, depth: next.depth + 1 });
      }
    } finally {
      dir.closeSync();
    }
  }
  return undefined;
}

/** Findings that depend on the agent: its repo, its narrowed fields, its missing environment. */
export function lintCompiled(compiled: CompiledSandbox): Finding[] {
  const withheld = compiled.withheldEnv.map(withheldMessage);
  const findings: Finding[] = compiled.notes.filter((note) => !withheld.includes(note)).map((note) => ({ severity: 'info' as const, code: 'narrowed', message: note }));
  for (const message of withheld) findings.push({ severity: 'warning', code: 'env-withheld', message });
  for (const name of compiled.missingEnv) {
    findings.push({ severity: 'info', code: 'env-missing', message: `env.pass: ${name} is not set in this environment, so it will not be passed` });
  }
  return findings;
}

function safeForms(path: string, options: HostPathOptions): HostPathForms | undefined {
  try {
    return hostPathForms(path, options);
  } catch {
    return undefined;
  }
}

function lintRepo(raw: string, repo: HostPathForms | undefined, host: HostContext, scanSockets: boolean): Finding[] {
  const fix = 'Point the agent at a project directory, not a home or system directory.';
  if (!repo) return [{ severity: 'error', code: 'repo-unresolvable', message: `agent directory ${raw} cannot be resolved`, fix }];
  const found: Finding[] = lintHostPath(repo, host, `agent directory ${raw}`).map((f) => ({ ...f, code: `repo-${f.code}`, fix }));
  // The repo is mounted at its host path inside the container: it must not land on what the sandbox uses.
  const owned = found.length > 0 ? undefined : SANDBOX_OWNED.find((r) => overlaps(repo.resolved, r));
  if (owned) {
    found.push({ severity: 'error', code: 'repo-target-reserved', message: `agent directory ${raw} would be mounted over ${owned}, which the sandbox itself uses`, fix: 'Move or copy the project elsewhere (the repo is mounted at its own path inside the container).' });
  }
  // Repos are often wider than the search: only a socket found counts, not an unfinished search.
  if (found.length === 0 && scanSockets) {
    found.push(...socketInside(repo.canonical, `agent directory ${raw}`).filter((f) => f.severity === 'error').map((f) => ({ ...f, code: `repo-${f.code}` })));
  }
  return found;
}

/**
 * The path as written (made absolute) is checked first; when that is clean, its canonical form (symlinks
 * resolved: what Docker really mounts) is checked too, and a finding then says what the path resolves to.
 */
function lintHostPath(path: HostPathForms, host: HostContext, label: string): Finding[] {
  const plain = lintPath(path.resolved, host, label);
  if (plain.length > 0 || path.canonical === path.resolved) return plain;
  return lintPath(path.canonical, host, `${label} (resolves to ${path.canonical})`);
}

/** `/root`, `/home/<name>` and `/Users/<name>`: some user's home, whoever runs the check. */
const USER_HOME = /^(\/root|\/home\/[^/]+|\/Users\/[^/]+)(\/|$)/;

function lintPath(source: string, host: HostContext, label: string): Finding[] {
  const { homes, options } = host;
  if (SOCKET.test(source) || SOCKET_DIRS.includes(source)) return [socketFinding(label)];
  if (source === '/') return [{ severity: 'error', code: 'mount-root', message: `${label} mounts the whole host filesystem`, fix: 'Mount only the directories the agent needs.' }];
  const homeFix = 'Mount a specific project directory instead.';
  const home = homes.find((h) => source === h || isUnder(h, source));
  if (home) {
    return [{ severity: 'error', code: 'mount-home', message: `${label} mounts your home directory (${homes[0]}) or a parent of it`, fix: homeFix }];
  }
  const userHome = USER_HOME.exec(source)?.[1];
  if (userHome === source) {
    return [{ severity: 'error', code: 'mount-home', message: `${label} mounts a user's home directory (${source})`, fix: homeFix }];
  }
  const state = host.stateDirs.find((d) => source === d || isUnder(source, d) || isUnder(d, source));
  if (state) {
    return [{
      severity: 'error',
      code: 'mount-state-dir',
      message: `${label} ${source === state || isUnder(source, state) ? 'exposes' : 'contains'} agent-dispatch's own directory ${state} (agents.yaml, policies, audit records, job results)`,
      fix: 'Mount a project directory that does not hold the agent-dispatch config (AGENT_DISPATCH_CONFIG) or jobs directory.',
    }];
  }
  const secret = secretOverlap(source, userHome && !homes.includes(userHome) ? [...homes, userHome] : homes, homes[0]!, options);
  if (secret) {
    const message = secret.inside
      ? `${label} exposes ${secret.name}, which holds credentials`
      : `${label} contains ${secret.name}, which holds credentials`;
    return [{ severity: 'error', code: 'mount-credentials', message, fix: 'Never mount credential stores into a sandbox, nor a directory that contains one.' }];
  }
  const engine = engineOverlap(source, userHome && !homes.includes(userHome) ? [...homes, userHome] : homes, homes[0]!);
  if (engine) return [socketFinding(label, `${engine.relation} ${engine.name}, where a container engine keeps its socket`)];
  if (
    SYSTEM_EXACT.includes(source) ||
    SYSTEM_SUBTREES.some((d) => source === d || isUnder(source, d) || isUnder(d, source)) ||
    SOCKET_DIRS.some((d) => isUnder(d, source))
  ) {
    return [{ severity: 'error', code: 'mount-system', message: `${label} is a system directory`, fix: 'Mount only project directories.' }];
  }
  return [];
}

/** An ENGINE_PATHS entry (under each home, `*` one path part) the source is, is inside, or contains. */
function engineOverlap(source: string, homes: string[], yourHome: string): { name: string; relation: 'is' | 'is inside' | 'contains' } | undefined {
  const parts = source.split('/').filter(Boolean);
  for (const pattern of ENGINE_PATHS) {
    const bases = pattern.startsWith('~/') ? homes.map((h) => ({ path: h + pattern.slice(1), name: h === yourHome ? pattern : h + pattern.slice(1) })) : [{ path: pattern, name: pattern }];
    for (const { path, name } of bases) {
      const want = path.split('/').filter(Boolean);
      const common = Math.min(parts.length, want.length);
      if (!want.slice(0, common).every((p, i) => p === '*' || p === parts[i])) continue;
      return { name, relation: parts.length === want.length ? 'is' : parts.length > want.length ? 'is inside' : 'contains' };
    }
  }
  return undefined;
}

/** A credential store the source is, is inside, or contains (as written under each home, and with symlinks resolved). */
function secretOverlap(source: string, homes: string[], yourHome: string, options: HostPathOptions): { name: string; inside: boolean } | undefined {
  for (const home of homes) {
    for (const s of HOME_SECRETS) {
      const written = `${home}/${s}`;
      const name = home === yourHome ? `~/${s}` : written;
      const candidates = new Set([written, safeForms(written, options)?.canonical ?? written]);
      for (const c of candidates) {
        if (source === c || isUnder(source, c)) return { name, inside: true };
        if (isUnder(c, source)) return { name, inside: false };
      }
    }
  }
  return undefined;
}

/** Where the mount lands in the container: never on, in or above what the sandbox uses, nor over the repo. */
function lintTarget(target: string | undefined, source: HostPathForms, repo: HostPathForms | undefined): Finding[] {
  const path = target === undefined ? source.resolved : containerPath(target);
  const label = target === undefined ? `mounts: ${source.resolved} (no target: mounted at the same path)` : `mounts: target ${target}`;
  if (SOCKET.test(path)) return [socketFinding(label)];
  const fix = 'Give the mount a target of its own, such as /data/<name> or /mnt/<name>.';
  const reserved = path === '/' ? '/' : RESERVED_TARGETS.find((r) => overlaps(path, r));
  if (reserved) {
    return [{ severity: 'error', code: 'mount-target-reserved', message: `${label} overlaps ${reserved}, which the sandbox itself uses`, fix }];
  }
  const repoPath = repo ? [repo.resolved, repo.canonical].find((r) => overlaps(path, r)) : undefined;
  if (repoPath) {
    return [{ severity: 'error', code: 'mount-target-repo', message: `${label} would shadow or re-mount the agent's repo (${repoPath})`, fix }];
  }
  return [];
}

function socketFinding(label: string, what = 'exposes a container engine socket'): Finding {
  return {
    severity: 'error',
    code: 'mount-docker-socket',
    message: `${label} ${what}, which is root on the host`,
    fix: 'Remove the mount; never give a sandbox the Docker socket.',
  };
}

function lintAllowPattern(pattern: string): Finding[] {
  const rule = parseAllowPattern(pattern);
  const wildcard = wildcardFinding(pattern, rule.host);
  if (wildcard) return [wildcard];
  const findings = hostFindings(pattern, rule.host);
  if (rule.port === '*') {
    findings.push({ severity: 'warning', code: 'network-any-port', message: `network.allow: '${pattern}' allows every port on ${rule.host}, not just its web port`, fix: 'Name the port (443 is the default).' });
  }
  return findings;
}

function wildcardFinding(pattern: string, host: string): Finding | undefined {
  if (host === '*') {
    return { severity: 'error', code: 'network-wildcard', message: `network.allow: '${pattern}' allows every host, which defeats the allowlist`, fix: 'List the hosts the agent needs.' };
  }
  if (host.startsWith('*.') && !host.slice(2).includes('.')) {
    return { severity: 'error', code: 'network-wildcard', message: `network.allow: '${pattern}' allows a whole top-level domain`, fix: 'Name the hosts, or a wildcard under a domain you trust.' };
  }
  const suffix = host.startsWith('*.') ? publicSuffixOf(host.slice(2)) : undefined;
  if (suffix) {
    return {
      severity: 'error',
      code: 'network-wildcard',
      message: `network.allow: '${pattern}' allows every site under ${suffix.suffix}, a public suffix (${suffix.what}) where anyone can register a name or publish a site`,
      fix: 'Name the hosts, or a wildcard under a domain you trust.',
    };
  }
  return undefined;
}

/** What the host part reaches: an internal address, or a channel anyone can upload to. */
function hostFindings(pattern: string, host: string): Finding[] {
  const address = ipv4Literal(host);
  if (address !== undefined) return addressFindings(pattern, address);
  const channel = exfilChannel(host);
  return channel ? [exfilFinding(pattern, channel)] : [];
}

function exfilFinding(pattern: string, channel: ExfilChannel): Finding {
  return {
    severity: 'warning',
    code: 'network-exfil-host',
    message: `network.allow: '${pattern}' reaches ${channel.host} (${channel.kind}): anyone can upload there, so the agent could send out the repo or anything else it reads`,
    fix: 'Allow only the narrowest host the task needs (one bucket or API host, not the whole domain), or keep it if you accept that risk.',
  };
}

function addressFindings(pattern: string, address: number): Finding[] {
  const dotted = formatIPv4(address);
  const label = dotted === pattern.split(':')[0] ? `'${pattern}'` : `'${pattern}' (${dotted})`;
  const metadata = METADATA_ADDRESSES[dotted];
  if (metadata) {
    return [{ severity: 'error', code: 'network-metadata', message: `network.allow: ${label} is ${metadata}, which hands out the machine's cloud credentials`, fix: 'Remove it: no agent needs the metadata service.' }];
  }
  const range = PRIVATE_RANGES.find((r) => inRange(address, r));
  if (!range) return [];
  return [{
    severity: 'warning',
    code: 'network-private-address',
    message: `network.allow: ${label} is in the ${range.what} range ${range.cidr}; an explicit IP rule is the only way the gateway reaches such addresses, so this opens a service on the host or the internal network to the agent`,
    fix: 'Remove it unless the agent must reach that service; if it must, name its one port and make sure the service trusts nothing the agent should not have.',
  }];
}

/**
 * Broad exfiltration channels: services where anyone (with an account or keys a prompt injection can supply)
 * can upload, so an allowlist entry for them lets the agent send the repo out. Each entry means that name and
 * every name under it; `*` inside an entry label matches any run of characters in that one label. A rule
 * fires when its host is covered, or (for `*.suffix`) when it covers any such host. Package registries are
 * deliberately absent: presets allow them for installs.
 */
export const EXFIL_HOSTS: readonly { kind: string; hosts: readonly string[] }[] = [
  { kind: 'code hosting', hosts: ['github.com', 'githubusercontent.com', 'gitlab.com', 'bitbucket.org', 'codeberg.org', 'huggingface.co'] },
  {
    kind: 'object storage',
    hosts: [
      's3*.amazonaws.com', // s3, s3-accelerate, s3-<region> and buckets under them
      's3*.*.amazonaws.com', // s3.<region>, s3-website.<region>, and buckets under them
      's3*.dualstack.*.amazonaws.com', // s3.dualstack.<region>
      'storage.googleapis.com',
      'www.googleapis.com', // the GCS JSON and Drive upload APIs
      'firebasestorage.googleapis.com',
      'storage.cloud.google.com',
      'blob.core.windows.net',
      'dfs.core.windows.net',
      'r2.cloudflarestorage.com',
      'digitaloceanspaces.com',
      'backblazeb2.com',
      'wasabisys.com',
    ],
  },
  {
    kind: 'paste and file sharing',
    hosts: ['pastebin.com', 'hastebin.com', 'paste.ee', 'dpaste.com', 'dpaste.org', 'rentry.co', 'transfer.sh', 'file.io', '0x0.st', 'termbin.com', 'temp.sh', 'catbox.moe', 'gofile.io', 'wetransfer.com', 'dropbox.com', 'dropboxapi.com', 'mega.nz'],
  },
  {
    kind: 'tunnels, webhooks and request catchers',
    hosts: [
      'ngrok.io', 'ngrok.app', 'ngrok-free.app', 'ngrok.dev', 'ngrok-free.dev', 'trycloudflare.com', 'loca.lt', 'localtunnel.me', 'serveo.net',
      'webhook.site', 'requestbin.com', 'requestbin.net', 'pipedream.net', 'requestcatcher.com', 'beeceptor.com', 'hookbin.com',
      'interact.sh', 'oast.fun', 'oast.pro', 'oast.live', 'oast.site', 'oast.online', 'oast.me', 'oastify.com', 'burpcollaborator.net',
      'discord.com', 'discordapp.com', 'slack.com', 'api.telegram.org',
    ],
  },
];

export interface ExfilChannel {
  /** The EXFIL_HOSTS entry the rule reaches. */
  host: string;
  kind: string;
}

/** The exfiltration channel an allow host (`name`, `*.suffix` or `*`) reaches, if any. Pure. */
export function exfilChannel(host: string): ExfilChannel | undefined {
  for (const { kind, hosts } of EXFIL_HOSTS) {
    const entry = hosts.find((h) => reaches(host.toLowerCase(), h));
    if (entry) return { host: entry, kind };
  }
  return undefined;
}

/** Whether some name matches both the allow host and the entry (the entry's name or one under it). */
function reaches(host: string, entry: string): boolean {
  const wild = host === '*' || host.startsWith('*.');
  const rule = host === '*' ? [] : (wild ? host.slice(2) : host).split('.').reverse();
  const labels = entry.split('.').reverse();
  if (!wild && rule.length < labels.length) return false;
  return labels.slice(0, rule.length).every((label, i) => labelGlob(label).test(rule[i]!));
}

/** An entry label as a pattern: entries hold only [a-z0-9-] and `*`, so nothing needs escaping. */
function labelGlob(label: string): RegExp {
  return new RegExp(`^${label.replaceAll('*', '[^.]*')}$`);
}

/** Addresses that serve cloud credentials (the gateway would fetch them for the agent). */
const METADATA_ADDRESSES: Record<string, string> = {
  '169.254.169.254': 'the cloud instance metadata service (AWS, GCP, Azure, OCI, DigitalOcean)',
  '169.254.170.2': 'the AWS ECS task metadata and credentials endpoint',
  '100.100.100.200': 'the Alibaba Cloud metadata service',
};

interface AddressRange {
  cidr: string;
  what: string;
}

/** Loopback, link-local, private and similar ranges: addresses on the host or behind it, never the internet. */
const PRIVATE_RANGES: readonly AddressRange[] = [
  { cidr: '0.0.0.0/8', what: 'unspecified ("this host")' },
  { cidr: '127.0.0.0/8', what: 'loopback' },
  { cidr: '10.0.0.0/8', what: 'private' },
  { cidr: '172.16.0.0/12', what: 'private (Docker bridge)' },
  { cidr: '192.168.0.0/16', what: 'private' },
  { cidr: '100.64.0.0/10', what: 'shared (carrier-grade NAT, Tailscale)' },
  { cidr: '169.254.0.0/16', what: 'link-local' },
];

function inRange(address: number, range: AddressRange): boolean {
  const [base = '', bits = '32'] = range.cidr.split('/');
  const shift = 32 - Number(bits);
  return shift === 32 || address >>> shift === ipv4Literal(base)! >>> shift;
}

/**
 * The address a host names when it is an IPv4 literal, as the resolver reads it (inet_aton): 1 to 4 parts,
 * each decimal, octal (leading 0) or hex (0x), the last filling the remaining bytes — so `2852039166`,
 * `0xa9fea9fe` and `169.254.43518` are all 169.254.169.254. Undefined for a name.
 */
export function ipv4Literal(host: string): number | undefined {
  const parts = host.toLowerCase().split('.');
  if (parts.length > 4) return undefined;
  const values = parts.map(ipv4Part);
  if (values.some((v) => v === undefined)) return undefined;
  const bytes = values.slice(0, -1) as number[];
  const last = values.at(-1)!;
  if (bytes.some((v) => v > 255) || last >= 2 ** (8 * (4 - bytes.length))) return undefined;
  return bytes.reduce((sum, v, i) => sum + v * 2 ** (8 * (3 - i)), last);
}

function ipv4Part(part: string): number | undefined {
  if (/^0x[0-9a-f]+$/.test(part)) return parseInt(part.slice(2), 16);
  if (/^0[0-7]*$/.test(part)) return parseInt(part, 8);
  if (/^[1-9][0-9]*$/.test(part)) return Number(part);
  return undefined;
}

function formatIPv4(address: number): string {
  return [24, 16, 8, 0].map((shift) => (address >>> shift) & 255).join('.');
}

export function worstSeverity(findings: Finding[]): Severity | undefined {
  if (findings.some((f) => f.severity === 'error')) return 'error';
  if (findings.some((f) => f.severity === 'warning')) return 'warning';
  return findings.length > 0 ? 'info' : undefined;
}

const SEVERITY_ORDER: Record<Severity, number> = { error: 0, warning: 1, info: 2 };

/** Most severe first; the order within a severity is kept. */
export function bySeverity(findings: Finding[]): Finding[] {
  return [...findings].sort((a, b) => SEVERITY_ORDER[a.severity] - SEVERITY_ORDER[b.severity]);
}
