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
    const match = /^([A-Za-z_]+)=(.*)$/.exec(line.trim());
    if (match) facts[match[1]!] = match[2]!.trim();
  }
  return facts;
}
