#!/usr/bin/env bash
# Set up agent-dispatch on this machine, from a clone: Docker engine (installed and started if needed), the
# local base images (docker import of local files: nothing is ever pulled), npm ci, the build, and the agent
# image with the claude binary npm installed (no registry needed at image-build time).
# Idempotent: an engine that answers, images that exist and an up-to-date node_modules are kept.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false

step() { echo "=== [setup] $*"; }

if docker version >/dev/null 2>&1; then step "Docker engine answers"; else step "Docker engine"; bash scripts/docker-up.sh; fi
step "base images"; bash scripts/base-images.sh
step "npm ci"; npm ci
step "build"; npm run build
CLAUDE_BINARY=node_modules/@anthropic-ai/claude-code-linux-x64/claude
step "agent image"
if [ -x "$CLAUDE_BINARY" ]; then
  node dist/cli.js image build --claude-binary "$CLAUDE_BINARY" "$@"
else
  node dist/cli.js image build "$@"   # installs Claude Code with npm inside the build
fi
step "done: run 'node dist/cli.js selftest' to prove the sandbox, 'node dist/cli.js init' to register with Claude Code"
