/** The shell probe the scripted model has Claude run inside the sandbox, and the parser of what it prints. */

export interface ProbeFacts {
  [key: string]: string | undefined;
}

function quote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Prints one `key=value` line per fact; never fails itself (every probe has a fallback). */
export function probeScript(input: { repo: string; canary: string; hostPaths: string[] }): string {
  const repo = quote(input.repo);
  const hostPaths = input.hostPaths.map(quote).join(' ');
  return [
    'echo "uid=$(id -u)"',
    "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status | sed -E 's/:[[:space:]]+/=/'",
    `echo "repo_read=$(cat ${repo}/selftest.txt 2>/dev/null)"`,
    `if touch ${repo}/.selftest-write 2>/dev/null; then echo repo_write=allowed; else echo repo_write=refused; fi`,
    'if touch /.selftest-write 2>/dev/null; then echo root_write=allowed; else echo root_write=refused; fi',
    `echo "secret_env=$(env | grep -c ${quote(input.canary)})"`,
    `echo "secret_proc=$(cat /proc/1/environ /proc/self/environ 2>/dev/null | tr '\\0' '\\n' | grep -c ${quote(input.canary)})"`,
    `found=absent; for p in ${hostPaths}; do [ -e "$p" ] && found="present:$p"; done; echo "host_paths=$found"`,
    'if [ -e /var/run/docker.sock ] || [ -e /run/docker.sock ]; then echo docker_sock=present; else echo docker_sock=absent; fi',
  ].join('\n');
}

export function parseProbe(output: string): ProbeFacts {
  const facts: ProbeFacts = {};
  for (const line of output.split('\n')) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (match) facts[match[1]!] = match[2]!.trim();
  }
  return facts;
}

export interface NetworkProbeInput {
  /** Reachable through the gateway: the policy allows exactly this host:port. */
  allowed: { host: string; port: number; body: string };
  /** A service on the host bound to 0.0.0.0 that the policy does not allow. */
  hostService: { host: string; port: number };
  /** Looked for in the environment, /proc and every file under $HOME (the credential the gateway adds). */
  secret: string;
}

/**
 * Network facts from inside the agent container, with node (the agent image has it; curl it may not):
 * dns, allowed_via_proxy, denied_via_proxy (status and whether the body says it is policy), direct_allowed
 * (the allowed host without the proxy), host_service (a 0.0.0.0 host service, directly), interfaces, and
 * where the secret shows up (secret_in_env, secret_in_proc, secret_in_home).
 */
export function networkProbeScript(input: NetworkProbeInput): string {
  const { allowed, hostService } = input;
  const script = String.raw`
const http = require('http'), net = require('net'), dns = require('dns'), fs = require('fs');
const out = (k, v) => process.stdout.write(k + '=' + String(v).replace(/\s+/g, ' ').slice(0, 200) + '\n');
const proxied = (url) => new Promise((resolve) => {
  const req = http.get({ host: '127.0.0.1', port: 3128, path: url, timeout: 5000 }, (res) => {
    let body = ''; res.on('data', (c) => (body += c)); res.on('end', () => resolve({ status: res.statusCode, body, policy: res.headers['x-agent-dispatch-refusal'] }));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => resolve({ status: 'error:' + e.code }));
});
const direct = (host, port) => new Promise((resolve) => {
  const s = net.connect({ host, port, timeout: 3000 }, () => { s.destroy(); resolve('connected'); });
  s.on('timeout', () => { s.destroy(); resolve('timeout'); });
  s.on('error', (e) => resolve('failed:' + e.code));
});
(async () => {
  await new Promise((r) => dns.lookup('example.com', (e, a) => { out('dns', e ? 'failed:' + e.code : 'resolved:' + a); r(); }));
  const ok = await proxied('http://${allowed.host}:${allowed.port}/');
  out('allowed_via_proxy', ok.status === 200 && ok.body.includes(${JSON.stringify(allowed.body)}) ? 'reached' : 'failed:' + ok.status);
  const no = await proxied('http://${hostService.host}:${hostService.port}/');
  out('denied_via_proxy', no.status + (no.policy === 'policy' && /sandbox policy/.test(no.body || '') ? ':policy' : ':other'));
  out('direct_allowed', await direct(${JSON.stringify(allowed.host)}, ${allowed.port}));
  out('host_service', await direct(${JSON.stringify(hostService.host)}, ${hostService.port}));
  out('interfaces', fs.readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2).map((l) => l.split(':')[0].trim()).filter(Boolean).join(','));
  const inet6 = fs.existsSync('/proc/net/if_inet6') ? fs.readFileSync('/proc/net/if_inet6', 'utf8').trim() : '';
  out('ipv6', inet6 ? inet6.split('\n').map((l) => l.trim().split(/\s+/).pop()).join(',') : 'none');
})();
`;
  // The secret is joined from two halves at run time: the prompt (and so the session transcript under ~) must
  // not contain it, or the search of $HOME would find the probe itself.
  const half = Math.ceil(input.secret.length / 2);
  return [
    `s="$(printf '%s%s' ${quote(input.secret.slice(0, half))} ${quote(input.secret.slice(half))})"`,
    `echo "secret_in_env=$(env | grep -cF "$s")"`,
    `echo "secret_in_proc=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -cF "$s")"`,
    `echo "secret_in_home=$(grep -rlF "$s" "$HOME" 2>/dev/null | wc -l)"`,
    `node - <<'AGENT_DISPATCH_PROBE'\n${script}\nAGENT_DISPATCH_PROBE`,
  ].join('\n');
}
