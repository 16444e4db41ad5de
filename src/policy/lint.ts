import { homedir } from 'node:os';
import { expandHome } from '../config/paths.js';
import type { CompiledSandbox } from './compile.js';
import { parseAllowPattern } from './network-spec.js';
import type { Policy } from './schema.js';

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  severity: Severity;
  code: string;
  message: string;
  fix?: string;
}

const SOCKET = /(^|\/)(docker|containerd|podman|crio|buildkitd)\.sock$/;
const SOCKET_DIRS = ['/var/run', '/run', '/var/run/docker', '/run/docker', '/run/containerd', '/var/lib/docker'];
const SYSTEM_EXACT = ['/etc', '/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/opt', '/var', '/srv', '/home', '/root', '/mnt', '/media'];
const SYSTEM_SUBTREES = ['/proc', '/sys', '/dev', '/boot', '/run', '/var/run', '/var/lib/docker', '/var/lib/containerd'];
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
    finding: { severity: 'info', code: 'repo-rw', message: 'repo: rw — the agent writes straight into the host repo', fix: 'repo: overlay returns changes as a patch instead.' },
  },
];

export interface LintContext {
  /** The host user's home directory (mounts of it or above it are refused). */
  home?: string;
  /** The agent's repo directory, when linting an agent (not a standalone policy file). */
  repo?: string;
}

/** Risky or refused combinations in a policy alone. */
export function lintPolicy(policy: Policy, context: LintContext = {}): Finding[] {
  const home = normalize(context.home ?? homedir());
  const findings: Finding[] = [];
  for (const mount of policy.mounts) {
    findings.push(...lintPath(normalize(safeExpand(mount.source, home)), home, `mounts: ${mount.source}`));
    if (mount.target && SOCKET.test(mount.target)) findings.push(socketFinding(`mounts: target ${mount.target}`));
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
  if (context.repo) findings.push(...lintRepo(normalize(context.repo), home));
  return findings;
}

/** Findings that depend on the agent: its repo, its narrowed fields, its missing environment. */
export function lintCompiled(compiled: CompiledSandbox): Finding[] {
  const findings: Finding[] = compiled.notes.map((note) => ({ severity: 'info' as const, code: 'narrowed', message: note }));
  for (const name of compiled.missingEnv) {
    findings.push({ severity: 'info', code: 'env-missing', message: `env.pass: ${name} is not set in this environment, so it will not be passed` });
  }
  return findings;
}

function lintRepo(repo: string, home: string): Finding[] {
  const found = lintPath(repo, home, `agent directory ${repo}`);
  return found.map((f) => ({ ...f, code: `repo-${f.code}`, fix: 'Point the agent at a project directory, not a home or system directory.' }));
}

function lintPath(source: string, home: string, label: string): Finding[] {
  if (SOCKET.test(source) || SOCKET_DIRS.includes(source)) return [socketFinding(label)];
  if (source === '/') return [{ severity: 'error', code: 'mount-root', message: `${label} mounts the whole host filesystem`, fix: 'Mount only the directories the agent needs.' }];
  if (source === home || isAncestor(source, home)) {
    return [{ severity: 'error', code: 'mount-home', message: `${label} mounts your home directory (${home}) or a parent of it`, fix: 'Mount a specific project directory instead.' }];
  }
  const secret = HOME_SECRETS.find((s) => source === `${home}/${s}` || source.startsWith(`${home}/${s}/`));
  if (secret) {
    return [{ severity: 'error', code: 'mount-credentials', message: `${label} exposes ~/${secret}, which holds credentials`, fix: 'Never mount credential stores into a sandbox.' }];
  }
  if (SYSTEM_EXACT.includes(source) || SYSTEM_SUBTREES.some((d) => source === d || source.startsWith(`${d}/`))) {
    return [{ severity: 'error', code: 'mount-system', message: `${label} is a system directory`, fix: 'Mount only project directories.' }];
  }
  return [];
}

function socketFinding(label: string): Finding {
  return {
    severity: 'error',
    code: 'mount-docker-socket',
    message: `${label} exposes a container engine socket, which is root on the host`,
    fix: 'Remove the mount; never give a sandbox the Docker socket.',
  };
}

function lintAllowPattern(pattern: string): Finding[] {
  const rule = parseAllowPattern(pattern);
  if (rule.host === '*') {
    return [{ severity: 'error', code: 'network-wildcard', message: `network.allow: '${pattern}' allows every host, which defeats the allowlist`, fix: 'List the hosts the agent needs.' }];
  }
  if (rule.host.startsWith('*.') && !rule.host.slice(2).includes('.')) {
    return [{ severity: 'error', code: 'network-wildcard', message: `network.allow: '${pattern}' allows a whole top-level domain`, fix: 'Name the hosts, or a wildcard under a domain you trust.' }];
  }
  if (rule.port === '*') {
    return [{ severity: 'warning', code: 'network-any-port', message: `network.allow: '${pattern}' allows every port`, fix: 'Name the port (443 is the default).' }];
  }
  return [];
}

function isAncestor(dir: string, path: string): boolean {
  return path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

function normalize(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, '') : path;
}

/** `~` and `~/...` are the linted user's home (the context's, so a check run for another home is consistent). */
function safeExpand(path: string, home: string): string {
  if (path === '~' || path.startsWith('~/')) return home + path.slice(1);
  try {
    return expandHome(path);
  } catch {
    return path;
  }
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
