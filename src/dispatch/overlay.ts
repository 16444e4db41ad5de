/**
 * `repo: overlay`: the host repo is mounted read-only at the overlay lower dir and the repo path is a private
 * tmpfs. Before claude runs, the lower tree is copied in and recorded in a throwaway git index (outside the
 * repo, in /tmp, so the agent's own git sees only the repo's .git); afterwards the changes are printed on
 * stdout between two marker lines as a base64-encoded binary git patch (so any file encoding survives the
 * text stream). The host tree is never written.
 */

/** The stdout lines the wrapper prints around the patch. */
export const OVERLAY_PATCH_BEGIN = '{"type":"agent-dispatch-overlay","event":"patch-begin"}';
export const OVERLAY_PATCH_END = '{"type":"agent-dispatch-overlay","event":"patch-end"}';

/** Exit code of the wrapper when the copy or the baseline fails (claude never ran). */
export const OVERLAY_SETUP_FAILED = 125;

const SCRIPT = `
work="$PWD"
lower="\${AGENT_DISPATCH_OVERLAY_LOWER:?}"
g() { env GIT_DIR=/tmp/.agent-dispatch-overlay.git GIT_WORK_TREE="$work" git -c user.name=agent-dispatch -c user.email=agent-dispatch@localhost -c core.autocrlf=false -c commit.gpgsign=false -c core.hooksPath=/dev/null "$@"; }
fail() { echo "agent-dispatch overlay: $1: $(head -c 500 /tmp/.agent-dispatch-overlay.err 2>/dev/null)" >&2; exit ${OVERLAY_SETUP_FAILED}; }
cp -a "$lower/." "$work/" 2>/tmp/.agent-dispatch-overlay.err || fail "could not copy the repo into the container"
{ g init -q && g add -A && g commit -q --allow-empty -m base; } >/dev/null 2>/tmp/.agent-dispatch-overlay.err || fail "could not record the starting tree (is git in the image?)"
"$@"
rc=$?
echo '${OVERLAY_PATCH_BEGIN}'
g add -A >/dev/null 2>&1 && g diff --cached --binary HEAD | base64
echo '${OVERLAY_PATCH_END}'
exit $rc
`;

/** Wrap the claude command so it runs on a private copy of the repo and reports its changes. */
export function overlayCommand(command: string[]): string[] {
  return ['/bin/sh', '-c', SCRIPT, 'agent-dispatch-overlay', ...command];
}

/**
 * Split the wrapper's patch out of the output lines. `patch` is undefined when none was printed (claude was
 * killed first); `complete` is false when the output ended before the end marker.
 */
export function extractPatch(lines: string[]): { lines: string[]; patch?: Buffer; complete: boolean } {
  const begin = lines.lastIndexOf(OVERLAY_PATCH_BEGIN);
  if (begin === -1) return { lines, complete: false };
  const end = lines.indexOf(OVERLAY_PATCH_END, begin + 1);
  const body = lines.slice(begin + 1, end === -1 ? undefined : end);
  const rest = [...lines.slice(0, begin), ...(end === -1 ? [] : lines.slice(end + 1))];
  return { lines: rest, patch: Buffer.from(body.join(''), 'base64'), complete: end !== -1 };
}
