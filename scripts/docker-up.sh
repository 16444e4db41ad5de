#!/usr/bin/env bash
# Make a Docker engine answer on this machine (Debian 12, root, no registry, no systemd). Idempotent.
#  - installs Debian's docker.io (and busybox-static, used by scripts/base-images.sh) if missing;
#  - starts dockerd in the background if the engine does not answer (the package does not start it:
#    policy-rc.d exits 101 and PID 1 is not systemd; cgroups are already mounted at boot);
#  - waits up to 30 s for it, and fails with the end of the daemon's log if it never answers.
# Nothing here pulls an image. Uses /usr/bin/docker (Debian's 20.10 client) explicitly.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd
LOG=${DOCKERD_LOG:-/var/log/dockerd.log}

now() { date +%s.%N; }
t0=$(now)
# busybox must be the static build: base-images.sh copies it alone into an image (Debian's dynamic
# busybox, often present through initramfs-tools, would not run there).
busybox_static() {
  [ -x /bin/busybox ] || return 1
  local out
  out=$(LC_ALL=C ldd /bin/busybox 2>&1 || true)   # ldd exits 1 for a static binary
  [[ $out == *"not a dynamic executable"* ]]
}
if [ ! -x "$DOCKERD" ] || [ ! -x "$DOCKER" ] || ! busybox_static; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "docker-up: docker.io/busybox-static are missing and installing them needs root" >&2
    exit 1
  fi
  echo "docker-up: installing docker.io busybox-static (apt)"
  apt-get update -qq
  apt-get install -y -qq docker.io busybox-static >/dev/null
fi
t1=$(now)

if ! "$DOCKER" version >/dev/null 2>&1; then
  echo "docker-up: starting dockerd (log: $LOG)"
  setsid nohup "$DOCKERD" >>"$LOG" 2>&1 </dev/null &
  for _ in $(seq 1 150); do
    "$DOCKER" version >/dev/null 2>&1 && break
    sleep 0.2
  done
  if ! "$DOCKER" version >/dev/null 2>&1; then
    echo "docker-up: ERROR: dockerd did not answer within 30 s. Last lines of $LOG:" >&2
    tail -n 50 "$LOG" >&2 || true
    exit 1
  fi
fi
t2=$(now)

# The default bridge must exist (a second dockerd started with --bridge=none deletes docker0).
if command -v ip >/dev/null 2>&1 && ! ip link show docker0 >/dev/null 2>&1; then
  echo "docker-up: WARNING: docker0 is missing; containers on the default bridge will fail" >&2
fi
server=$("$DOCKER" version --format '{{.Server.Version}}')
awk -v a="$t0" -v b="$t1" -v c="$t2" -v v="$server" \
  'BEGIN { printf "docker-up: install %.1fs, dockerd up %.2fs, server %s\n", b - a, c - b, v }'
