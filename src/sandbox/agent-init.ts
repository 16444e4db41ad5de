/**
 * The first process of every agent container (under the engine's tini), passed inline as `bash -c`, so it
 * needs no image rebuild: the image contract already requires bash (images/README.md).
 *
 * It starts the agent command at once with a pipe as its stdin, so `claude -p` initialises while no prompt
 * exists yet (a pre-started, pooled sandbox). The server then sends one frame on the container's stdin: a line
 * with a byte count, then that many bytes, which become the command's whole stdin (then closed). The
 * container's stdin stays open for as long as the server is attached; when it ends (the server died: the
 * engine closes a StdinOnce stdin when its attach connection goes), everything in the container is killed, so
 * no agent container, idle or running, outlives its server by more than the engine's own reaction time.
 * Its exit status is the command's (137 when the server went away first).
 *
 * `claude -p` gives up on a stdin that sends nothing for 3 s ("no stdin data received in 3s", then "Input must
 * be provided"); once any byte has come it waits for the end however long. So with `prime` the init writes
 * one newline at once: the runner primes every run a pre-started sandbox could serve, cold or pre-started
 * alike, so claude gets the same input on both paths (the prompt after one leading newline: claude does not
 * trim it). Other runs get their input byte for byte.
 */
/** Written to stderr once the command has gone quiet before its input (the runner strips it). */
export const INIT_READY_LINE = 'agent-dispatch-init: ready';

/**
 * Ready: the container's processes used at most 2 clock ticks of CPU in each of two 0.2 s windows (claude has
 * finished initialising), or 30 s passed. Only while no input came: the check ends when the frame arrives.
 */
export const AGENT_INIT_SCRIPT = [
  'prime=$1; shift',
  'exec 4<&0 0</dev/null',
  'exec 3> >(exec "$@" 4<&-)',
  'child=$!',
  // In a subshell that ignores SIGPIPE: a command that could not start must still report its own exit status.
  "if [ \"$prime\" = 1 ]; then (trap '' PIPE; printf '\\n') >&3 2>/dev/null; fi",
  'ticks() { local t=0 f l s; for f in /proc/[0-9]*/stat; do { read -r l <"$f"; } 2>/dev/null || continue; s=(${l##*) }); t=$((t + s[11] + s[12])); done; echo "$t"; }',
  `{ exec 3>&- 4<&-; last=$(ticks); quiet=0; for ((i = 0; i < 150 && quiet < 2; i++)); do sleep 0.2; now=$(ticks); if ((now - last <= 2)); then quiet=$((quiet + 1)); else quiet=0; fi; last=$now; done; echo '${INIT_READY_LINE}' >&2; } &`,
  'ready=$!',
  '{ if IFS= read -r size <&4; then kill "$ready" 2>/dev/null; head -c "$size" <&4 >&3 && exec 3>&- && cat <&4 >/dev/null; fi; kill -KILL -1; } &',
  'exec 3>&- 4<&-',
  'wait "$child"',
].join('\n');

/** `cmd` run behind the init; `prime`: its input starts with a newline written at once (see above). */
export function initCommand(cmd: string[], prime: boolean): string[] {
  return ['bash', '-c', AGENT_INIT_SCRIPT, 'agent-dispatch-init', prime ? '1' : '0', ...cmd];
}

/** The one frame the init reads: the input's byte count on a line of its own, then the input. */
export function initFrame(input: string): Buffer {
  const body = Buffer.from(input, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length}\n`), body]);
}
