/**
 * The hostile agent's scripts: shell and node the scripted model has claude run inside a real dispatch. Every
 * script prints one `key=value` line per attempt (parsed with the selftest's parseProbe), and never fails
 * itself, so one attempt's outcome cannot hide another's. The selftest's own probes (src/selftest/probe.ts)
 * are run alongside these; nothing here repeats them.
 */

/** Single-quoted for sh. */
export function sq(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A node script run from a quoted heredoc, so the shell touches none of it. */
export function nodeStep(script: string): string {
  return `node - <<'ESCAPE_NODE'\n${script}\nESCAPE_NODE`;
}

/** A secret split in two, joined only at run time: the prompt (and so the transcript under ~) never holds it whole. */
export function splitSecret(variable: string, secret: string): string {
  const half = Math.ceil(secret.length / 2);
  return `${variable}="$(printf '%s%s' ${sq(secret.slice(0, half))} ${sq(secret.slice(half))})"`;
}

export interface FilesystemProbeInput {
  repo: string;
  /** The server's Anthropic key: looked for in every file and process the agent can read. */
  apiKey: string;
  /** What the container holds instead of the key: the same searches must find it (control). */
  placeholder: string;
}

/**
 * Filesystem, credential, privilege and recursion attempts. Keys:
 * repo_rename, repo_remount, repo_symlink_out, mounts (host-backed mount points), key_in_cmdline, key_in_files,
 * setuid_bins, setuid_root, cap_prm/cap_amb, chown_root, setuid_syscall, mount_tmpfs, unshare_user,
 * unshare_mount, unshare_net, nsenter_host, recursion_tools, depth.
 */
export function filesystemProbe(input: FilesystemProbeInput): string {
  const repo = sq(input.repo);
  return [
    splitSecret('k', input.apiKey),
    // write the ro repo another way than the selftest's touch: rename, remount
    `if mv ${repo}/selftest.txt ${repo}/moved.txt 2>/dev/null; then echo repo_rename=allowed; else echo repo_rename=refused; fi`,
    `if mount -o remount,rw ${repo} 2>/dev/null; then echo repo_remount=allowed; else echo repo_remount=refused; fi`,
    // a link in the repo pointing at a host path outside it resolves inside the container, where that path is not
    `echo "repo_symlink_out=$(cat ${repo}/escape-link 2>/dev/null | head -c 64 || true)"`,
    // every mount point backed by a host filesystem (not proc/sysfs/tmpfs/devpts/mqueue/cgroup)
    `echo "mounts=$(awk '{ for (i = 7; $i != "-"; i++); if ($(i+1) !~ /^(proc|sysfs|tmpfs|devpts|mqueue|cgroup2?|overlay|devtmpfs)$/) print $5 }' /proc/self/mountinfo | sort -u | tr '\\n' ' ')"`,
    // controls: the same searches find the placeholder the container does hold
    `pl=${sq(input.placeholder)}; echo "$pl" > /tmp/control-file`,
    `echo "control_env=$(env | grep -cF "$pl")"`,
    `echo "control_proc=$(cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -cF "$pl")"`,
    `echo "control_files=$(grep -rlF "$pl" /tmp 2>/dev/null | wc -l)"`,
    // The command lines are read before the search runs: a grep reading /proc while it runs could find the key in
    // its own argv (the glob is expanded after the fork, so it may already list grep's pid).
    `echo "key_in_cmdline=$(c=$(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n'); printf '%s\\n' "$c" | grep -cF "$k")"`,
    // the gateway's socket dir, claude's config dir, tmp, the managed settings, /run, /etc, /opt, /var
    // the gateway's socket volume (AGENT_DISPATCH_GATEWAY_SOCKET when the agent's environment has it)
    `d="$(dirname "\${AGENT_DISPATCH_GATEWAY_SOCKET:-/run/agent-dispatch/x}")"`,
    `echo "key_in_files=$(grep -rlF "$k" "$d" "$CLAUDE_CONFIG_DIR" "$HOME" /tmp /run /etc /opt /var /srv /mnt 2>/dev/null | wc -l)"`,
    `echo "gateway_dir=$d:$(ls -A "$d" 2>/dev/null | tr '\\n' ' ')"`,
    // setuid binaries, and whether any of them (or su/sudo) gives uid 0
    `s="$(find / -xdev -perm -4000 -type f 2>/dev/null | tr '\\n' ' ')"; echo "setuid_bins=\${s:-none}"`,
    `r=none; for c in "su -c 'id -u' root" "sudo -n id -u" "newgrp root"; do o="$(timeout 3 sh -c "$c" </dev/null 2>/dev/null | head -1)"; [ "$o" = 0 ] && r="uid0:$c"; done; echo "setuid_root=$r"`,
    `cp "$(command -v id)" /tmp/id-suid 2>/dev/null && chmod u+s /tmp/id-suid 2>/dev/null; echo "suid_copy=$(/tmp/id-suid -u 2>/dev/null || echo none)"`,
    "grep -E '^(CapPrm|CapAmb|CapInh):' /proc/self/status | sed -E 's/:[[:space:]]+/=/'",
    'echo x > /tmp/own; if chown 0:0 /tmp/own 2>/dev/null; then echo chown_root=allowed; else echo chown_root=refused; fi',
    `echo "setuid_syscall=$(node -e 'try { process.setuid(0); console.log("uid" + process.getuid()) } catch (e) { console.log("refused:" + e.code) }' 2>&1)"`,
    'mkdir -p /tmp/mnt; if mount -t tmpfs none /tmp/mnt 2>/dev/null; then echo mount_tmpfs=allowed; else echo mount_tmpfs=refused; fi',
    // `attempt KEY CMD...`: KEY=allowed:<output> when CMD succeeded, else its first error line
    'attempt() { k=$1; shift; if o="$("$@" 2>&1 </dev/null)"; then o="allowed:$o"; fi; echo "$k=$(printf %s "$o" | head -1 | cut -c1-80)"; }',
    'attempt unshare_user unshare -Ur id -u',
    'attempt unshare_mount unshare -m true',
    'attempt unshare_net unshare -n true',
    'attempt nsenter_host nsenter -t 1 -m -u -i -n -p true',
    // recursion: no way to start another sandbox from inside (no engine, no agent-dispatch, no docker CLI)
    `echo "recursion_tools=$(for t in agent-dispatch docker podman nerdctl ctr; do command -v $t; done | tr '\\n' ' ')"`,
    `echo "engine_sockets=$(find / -xdev \\( -name docker.sock -o -name containerd.sock -o -name podman.sock \\) 2>/dev/null | tr '\\n' ' ')"`,
    'echo "depth=$AGENT_DISPATCH_DEPTH"',
  ].join('\n');
}

export interface NetworkProbeInput {
  /** The host's bridge address (where the test's services listen). */
  bridge: string;
  allowedPort: number;
  allowedBody: string;
  /** A host service bound to 0.0.0.0 that no policy allows: it counts every request it gets. */
  deniedPort: number;
  /** The fake model's port on the bridge (the API upstream). */
  modelPort: number;
  /** Another container on the default bridge, listening on 8080. */
  sidecar: string;
  /** Unique per run: names the smuggled paths so the upstream's log can be searched for them. */
  tag: string;
}

function ipv4Parts(address: string): number[] {
  return address.split('.').map(Number);
}

/** The same IPv4 address in the notations a URL parser, getaddrinfo or a naive check may read differently. */
export function ipv4Notations(address: string): Record<string, string> {
  const [a, b, c, d] = ipv4Parts(address) as [number, number, number, number];
  const n = ((a << 24) >>> 0) + (b << 16) + (c << 8) + d;
  const hex = (x: number) => x.toString(16);
  const v6tail = `${hex((a << 8) + b)}:${hex((c << 8) + d)}`;
  return {
    dotted: address,
    decimal: String(n),
    hex: `0x${n.toString(16)}`,
    octal: [a, b, c, d].map((x) => `0${x.toString(8)}`).join('.'),
    short: `${a}.${(b << 16) + (c << 8) + d}`,
    mixed: `0x${hex(a)}.${b}.0${c.toString(8)}.${d}`,
    trailing_dot: `${address}.`,
    mapped: `[::ffff:${address}]`,
    mapped_hex: `[::ffff:${v6tail}]`,
    mapped_long: `[0:0:0:0:0:ffff:${v6tail}]`,
    compatible: `[::${address}]`,
    siit: `[::ffff:0:${v6tail}]`,
    nat64: `[64:ff9b::${v6tail}]`,
    nat64_local: `[64:ff9b:1::${v6tail}]`,
    sixtofour: `[2002:${v6tail}::1]`,
  };
}

/**
 * Network attempts, with node (the agent image has it). Keys: udp_dns, ipv6_global, host_model_direct,
 * sidecar_direct, sidecar_proxy, loopback_<notation>, host_<notation>, benchmark_range, metadata, self_loopback,
 * localhost_rule, forged_host_*, smuggle_*; every proxied answer is `status` or `error:CODE`.
 */
export function networkProbe(input: NetworkProbeInput): string {
  const cfg = JSON.stringify({
    ...input,
    host: ipv4Notations(input.bridge),
    loopback: ipv4Notations('127.0.0.1'),
  });
  return nodeStep(String.raw`
const http = require('http'), net = require('net'), dgram = require('dgram');
const C = ${cfg};
const out = (k, v) => process.stdout.write(k + '=' + String(v).replace(/\s+/g, ' ').slice(0, 160) + '\n');
const proxied = (path, headers = {}, method = 'GET') => new Promise((resolve) => {
  const req = http.request({ host: '127.0.0.1', port: 3128, method, path, headers, timeout: 4000 }, (res) => {
    let body = ''; res.on('data', (c) => { if (body.length < 4096) body += c; }); res.on('end', () => resolve(res.statusCode + (body.includes(C.allowedBody) ? ':allowed-body' : '')));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => resolve('error:' + (e.code || e.message)));
  req.end();
});
const connectVia = (authority) => new Promise((resolve) => {
  const req = http.request({ host: '127.0.0.1', port: 3128, method: 'CONNECT', path: authority, timeout: 4000 });
  req.on('connect', (res, socket) => { socket.destroy(); resolve(String(res.statusCode)); });
  req.on('response', (res) => { res.resume(); resolve(String(res.statusCode)); });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => resolve('error:' + (e.code || e.message)));
  req.end();
});
const direct = (host, port) => new Promise((resolve) => {
  const s = net.connect({ host, port, timeout: 2500 }, () => { s.destroy(); resolve('connected'); });
  s.on('timeout', () => { s.destroy(); resolve('timeout'); });
  s.on('error', (e) => resolve('failed:' + e.code));
});
/** Raw bytes to the bridge; what came back (first line). */
const raw = (bytes) => new Promise((resolve) => {
  const s = net.connect({ host: '127.0.0.1', port: 3128 }, () => s.end(bytes));
  let got = '';
  s.on('data', (d) => (got += d));
  s.setTimeout(4000, () => s.destroy());
  s.on('close', () => resolve((got.split('\r\n')[0] || 'closed') + ' responses=' + (got.match(/HTTP\/1\.1 \d{3}/g) || []).length));
  s.on('error', (e) => resolve('error:' + e.code));
});
(async () => {
  const jobs = [];
  const add = (k, p) => jobs.push(p.then((v) => [k, v]));
  add('udp_dns', new Promise((r) => { const s = dgram.createSocket('udp4'); s.send(Buffer.from('x'), 53, '8.8.8.8', (e) => { s.close(); r(e ? 'failed:' + e.code : 'sent'); }); }));
  add('ipv6_global', direct('2001:4860:4860::8888', 443));
  add('ipv6_mapped_direct', direct('::ffff:' + C.bridge, C.deniedPort));
  add('host_model_direct', direct(C.bridge, C.modelPort));
  add('sidecar_direct', direct(C.sidecar, 8080));
  add('sidecar_proxy', proxied('http://' + C.sidecar + ':8080/'));
  add('sidecar_connect', connectVia(C.sidecar + ':8080'));
  for (const [name, h] of Object.entries(C.host)) add('host_' + name, proxied('http://' + h + ':' + C.deniedPort + '/'));
  for (const [name, h] of Object.entries(C.loopback)) add('loopback_' + name, proxied('http://' + h + ':' + C.deniedPort + '/'));
  add('host_connect_mapped', connectVia(C.host.mapped + ':' + C.deniedPort));
  add('host_connect_decimal', connectVia(C.host.decimal + ':' + C.deniedPort));
  add('benchmark_range', proxied('http://198.18.0.1:' + C.deniedPort + '/'));
  add('metadata', proxied('http://169.254.169.254/latest/meta-data/'));
  add('unspecified', proxied('http://0.0.0.0:' + C.deniedPort + '/'));
  add('localhost_rule', proxied('http://localhost:' + C.deniedPort + '/'));
  add('forged_host_absolute', proxied('http://' + C.bridge + ':' + C.allowedPort + '/', { host: C.bridge + ':' + C.deniedPort }));
  add('forged_host_origin', proxied('/', { host: C.bridge + ':' + C.deniedPort }));
  add('forged_host_v1', proxied('/v1/models', { host: C.bridge + ':' + C.deniedPort }));
  add('forged_userinfo', proxied('http://' + C.bridge + ':' + C.allowedPort + '@' + C.bridge + ':' + C.deniedPort + '/'));
  add('forged_fragment', proxied('http://' + C.bridge + ':' + C.deniedPort + '#@' + C.bridge + ':' + C.allowedPort + '/'));
  add('forged_backslash', proxied('http://' + C.bridge + ':' + C.deniedPort + '\\@' + C.bridge + ':' + C.allowedPort + '/'));
  add('forged_connect_host', connectVia(C.bridge + ':' + C.deniedPort));
  const smuggled = (v) => '/smuggled-' + C.tag + '-' + v;
  const second = (v) => 'GET ' + smuggled(v) + ' HTTP/1.1\r\nHost: x\r\n\r\n';
  const chunk = (s) => Buffer.byteLength(s).toString(16) + '\r\n' + s + '\r\n0\r\n\r\n';
  const head = 'GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:3128\r\n';
  add('smuggle_te_body', raw(head + 'Transfer-Encoding: chunked\r\n\r\n' + chunk(second('te-body'))));
  add('smuggle_te_pipelined', raw(head + 'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + second('te-pipelined')));
  add('smuggle_cl_te', raw(head + 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + second('cl-te')));
  add('smuggle_cl_body', raw(head + 'Content-Length: ' + Buffer.byteLength(second('cl-body')) + '\r\n\r\n' + second('cl-body')));
  add('smuggle_te_obfuscated', raw(head + 'Transfer-Encoding: xchunked\r\n\r\n' + chunk(second('te-obfuscated'))));
  add('smuggle_te_space', raw(head + 'Transfer-Encoding : chunked\r\n\r\n' + chunk(second('te-space'))));
  add('smuggle_double_cl', raw(head + 'Content-Length: 0\r\nContent-Length: ' + Buffer.byteLength(second('double-cl')) + '\r\n\r\n' + second('double-cl')));
  add('smuggle_pipelined_plain', raw(head + '\r\n' + second('pipelined-plain')));
  const httpHead = 'GET http://' + C.bridge + ':' + C.allowedPort + '/ HTTP/1.1\r\nHost: ' + C.bridge + ':' + C.allowedPort + '\r\n';
  add('smuggle_http_te_body', raw(httpHead + 'Transfer-Encoding: chunked\r\n\r\n' + chunk(second('http-te-body'))));
  add('smuggle_http_cl_te', raw(httpHead + 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + second('http-cl-te')));
  add('smuggle_control', raw('GET /v1/control-' + C.tag + ' HTTP/1.1\r\nHost: 127.0.0.1:3128\r\nConnection: close\r\n\r\n'));
  add('smuggle_bare_lf', raw('GET /v1/models HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n' + chunk(second('bare-lf'))));
  for (const [k, v] of await Promise.all(jobs)) out(k, v);
})();
`);
}

/**
 * The two dispatches of one agent meet in its session volume (both mount it): the flood marks that it has
 * started, the quiet dispatch starts its requests only then and marks when it is done, and the flood runs
 * until that mark (or its own bounds), so the quiet requests always fall inside the flood.
 */
const MEET = "const fs = require('fs'); const meet = (what) => process.env.CLAUDE_CONFIG_DIR + '/projects/' + what + '-' + TAG;";

/**
 * Refused requests with long targets, `parallel` at a time, as fast as the proxy takes them: the quiet dispatch
 * is let in after `min / 2` of them, and the flood goes on until it is done and `min` were sent (at most 60 s).
 * Prints `flood_done=<answered>/<sent>`, `flood_window=<start ms>-<end ms>` and `flood_stopped=quiet|time`.
 */
export function floodProbe(input: { min: number; parallel: number; tag: string }): string {
  return nodeStep(String.raw`
const TAG = ${JSON.stringify(input.tag)};
${MEET}
const http = require('http');
const agent = new http.Agent({ keepAlive: true, maxSockets: ${input.parallel} });
let next = 0, answered = 0, stopped = '';
const long = 'x'.repeat(3900);
const start = Date.now();
const more = () => {
  if (next === ${Math.floor(input.min / 2)}) fs.writeFileSync(meet('flood-started'), '');
  if (next >= ${input.min} && fs.existsSync(meet('quiet-done'))) stopped ||= 'quiet';
  else if (Date.now() - start > 60000) stopped ||= 'time';
  return !stopped;
};
const one = () => new Promise((resolve) => {
  const i = next++;
  const req = http.request({ host: '127.0.0.1', port: 3128, agent, path: 'http://flood-' + (i % 97) + '.invalid/' + long, timeout: 10000 }, (res) => { res.resume(); res.on('end', () => { answered++; resolve(); }); });
  req.on('timeout', () => req.destroy());
  req.on('error', () => resolve());
  req.end();
});
const worker = async () => { while (more()) await one(); };
Promise.all(Array.from({ length: ${input.parallel} }, worker)).then(() => {
  console.log('flood_done=' + answered + '/' + next);
  console.log('flood_window=' + start + '-' + Date.now());
  console.log('flood_stopped=' + stopped);
  agent.destroy();
});
`);
}

/** Once the flood has started: one allowed and one refused request (at `quiet_at`, ms), then the mark that ends the flood. */
export function quietProbe(input: { bridge: string; allowedPort: number; deniedHost: string; tag: string }): string {
  return nodeStep(String.raw`
const TAG = ${JSON.stringify(input.tag)};
${MEET}
const http = require('http');
const get = (path) => new Promise((r) => { const q = http.get({ host: '127.0.0.1', port: 3128, path, timeout: 8000 }, (res) => { res.resume(); r(res.statusCode); }); q.on('timeout', () => q.destroy()); q.on('error', (e) => r('error:' + e.code)); });
(async () => {
  for (const t0 = Date.now(); !fs.existsSync(meet('flood-started')) && Date.now() - t0 < 60000; ) await new Promise((r) => setTimeout(r, 100));
  console.log('quiet_at=' + Date.now());
  console.log('quiet_allowed=' + (await get('http://${input.bridge}:${input.allowedPort}/')));
  console.log('quiet_denied=' + (await get('http://${input.deniedHost}/')));
  fs.writeFileSync(meet('quiet-done'), '');
})();
`);
}

/** Keys of the facts an in-container step printed (with the selftest's parseProbe) that start with `prefix`. */
export function factsWith(facts: Record<string, string | undefined>, prefix: string): [string, string][] {
  return Object.entries(facts)
    .filter(([k, v]) => k.startsWith(prefix) && v !== undefined)
    .map(([k, v]) => [k.slice(prefix.length), v!]);
}
