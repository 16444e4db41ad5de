import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { engineLabel, parseEngineSpec, type EngineSpec, type ParsedEngine } from '../config/engine-spec.js';
import { AppError, describeError } from '../errors.js';
import { dockerOptions } from './engine-calls.js';

export const TLS_FILES = ['ca.pem', 'cert.pem', 'key.pem'] as const;

/**
 * Every connection field set (undefined where unused): docker-modem fills absent fields from the process's
 * DOCKER_HOST / DOCKER_CERT_PATH, which must not leak into a configured engine (a socket path with the
 * environment's TLS host, say).
 */
const BLANK: Docker.DockerOptions = { socketPath: undefined, host: undefined, port: undefined, protocol: undefined, ca: undefined, cert: undefined, key: undefined, username: undefined } as unknown as Docker.DockerOptions;

/**
 * dockerode options of a checked engine. A TLS engine's ca.pem, cert.pem and key.pem are read here; one that is
 * missing or unreadable is a CONFIG_INVALID error naming the file. An ssh:// engine runs `docker system
 * dial-stdio` on the host through ssh2, authenticating with the ssh-agent at SSH_AUTH_SOCK.
 */
export function parsedEngineOptions(engine: ParsedEngine, env: NodeJS.ProcessEnv): Docker.DockerOptions {
  if (engine.kind === 'unix') return { ...BLANK, socketPath: engine.socketPath };
  if (engine.kind === 'ssh') {
    const agent = env['SSH_AUTH_SOCK'];
    const known = knownHostKeys(engine.host, engine.port, env);
    // ssh2 accepts any host key unless told otherwise: only a key known_hosts records for this host is trusted.
    const hostVerifier = (key: Buffer) => known.includes(key.toString('base64'));
    return { ...BLANK, protocol: 'ssh', host: engine.host, port: engine.port, username: engine.username, sshOptions: { ...(agent ? { agent } : {}), hostVerifier } } as Docker.DockerOptions;
  }
  if (!engine.tlsCertDir) return { ...BLANK, protocol: 'http', host: engine.host, port: engine.port };
  const dir = engine.tlsCertDir;
  const read = (name: string): Buffer => {
    try {
      return readFileSync(join(dir, name));
    } catch (error) {
      throw new AppError('CONFIG_INVALID', `The TLS certificate file ${join(dir, name)} of engine ${engineLabel(engine)} could not be read (${describeError(error)}).`, {
        hint: `tls_cert_dir must hold ${TLS_FILES.join(', ')}: the engine's CA and a client certificate and key it trusts (as docker --tlsverify uses them).`,
        cause: error,
      });
    }
  };
  const [ca, cert, key] = TLS_FILES.map(read);
  return { ...BLANK, protocol: 'https', host: engine.host, port: engine.port, ca: ca!, cert: cert!, key: key! };
}

/**
 * The host keys (base64 key blobs) recorded for host[:port] in the user's ~/.ssh/known_hosts and the system's
 * /etc/ssh/ssh_known_hosts, looked up by ssh-keygen -F (which also matches hashed entries). None is a
 * CONFIG_INVALID error: agent-dispatch never trusts an ssh engine on first use.
 */
export function knownHostKeys(host: string, port: number, env: NodeJS.ProcessEnv): string[] {
  const pattern = port === 22 ? host : `[${host}]:${port}`;
  const files = [join(env['HOME'] ?? homedir(), '.ssh', 'known_hosts'), '/etc/ssh/ssh_known_hosts'].filter((f) => existsSync(f));
  const keys: string[] = [];
  for (const file of files) {
    const found = spawnSync('ssh-keygen', ['-F', pattern, '-f', file], { encoding: 'utf8', timeout: 10_000 });
    if (found.error) {
      throw new AppError('CONFIG_INVALID', `Could not check the host key of ssh engine ${pattern}: ssh-keygen did not run (${describeError(found.error)}).`, { hint: 'Install the OpenSSH client (ssh-keygen), which ssh:// engines need.' });
    }
    for (const line of found.stdout.split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 3 || fields[0]!.startsWith('#') || fields[0]!.startsWith('@')) continue;
      keys.push(fields[2]!);
    }
  }
  if (keys.length === 0) {
    throw new AppError('CONFIG_INVALID', `The host key of ssh engine ${pattern} is not in known_hosts (${files.join(', ') || '~/.ssh/known_hosts: missing'}); agent-dispatch does not trust a host on first use.`, {
      hint: `Connect once with ssh${port === 22 ? '' : ` -p ${port}`} ${host} as the user the server runs as, check the fingerprint, and let ssh record it; then retry.`,
    });
  }
  return keys;
}

/** dockerode options of a spec from agents.yaml; undefined = the environment's engine (DOCKER_HOST, else the local socket). */
export function engineDockerOptions(spec: EngineSpec | undefined, env: NodeJS.ProcessEnv): Docker.DockerOptions {
  return spec === undefined ? dockerOptions(env) : parsedEngineOptions(requireEngine(spec).engine, env);
}

/** A spec that must be valid (the config schema checked it when the config loaded). */
export function requireEngine(spec: EngineSpec): { engine: ParsedEngine; key: string } {
  const parsed = parseEngineSpec(spec);
  if (!parsed.ok) throw new AppError('CONFIG_INVALID', parsed.message, { hint: 'Fix the engine in agents.yaml (agent-dispatch doctor checks it).' });
  return parsed;
}

/**
 * Does the engine see this machine's files (bind mounts of server-written files work)? The environment's engine
 * and a unix:// socket: yes (a socket is on this machine); tcp:// and ssh:// engines: no, even on loopback.
 */
export function engineSharesFiles(spec: EngineSpec | undefined): boolean {
  return spec === undefined || requireEngine(spec).engine.kind === 'unix';
}
