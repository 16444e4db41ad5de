#!/usr/bin/env bash
# Build the local base images the tests run, with `docker import` only (nothing is ever pulled):
#   agent-dispatch-base/busybox:1  busybox-static rootfs; users root, agent (1000, /home/agent), nobody
#   agent-dispatch-base/node:20    the same + the host's /usr/bin/node, /bin/bash and /usr/bin/git (with their
#                                  libraries, git's helpers in /usr/lib/git-core and its templates) and the
#                                  CA certificates in /etc/ssl/certs: a base images/agent/Dockerfile accepts
# An image that already exists is kept unless FORCE=1, or unless it predates this script's content revision
# (the import's commit message, `agent-dispatch-base rev=N`: docker image inspect --format '{{.Comment}}').
# Both are smoke-tested as uid 1000 with no network.
# The images carry no labels: every image built FROM them, and every container started from those, would
# inherit them (a test marker here made users' dispatch containers look like test leftovers). The commit
# message is not inherited.
# Needs /bin/busybox (busybox-static), /usr/bin/node, /usr/bin/git and /etc/ssl/certs (ca-certificates);
# scripts/docker-up.sh installs busybox-static.
set -euo pipefail
DOCKER=/usr/bin/docker
BUSYBOX_IMAGE=agent-dispatch-base/busybox:1
NODE_IMAGE=agent-dispatch-base/node:20
MARKER='agent-dispatch-base rev='
# Bump when an image's content changes: an existing image with another revision is rebuilt without FORCE=1.
BUSYBOX_REV=1
NODE_REV=2
FORCE=${FORCE:-0}
NODE_BIN=/usr/bin/node
GIT_BIN=/usr/bin/git
GIT_CORE=/usr/lib/git-core
CA_DIR=/etc/ssl/certs

die() { echo "base-images: ERROR: $*" >&2; exit 1; }
[ -x /bin/busybox ] || die "/bin/busybox is missing (apt-get install busybox-static, or run scripts/docker-up.sh)"
[ -x "$NODE_BIN" ] || die "$NODE_BIN is missing"
[ -x "$GIT_BIN" ] && [ -d "$GIT_CORE" ] || die "$GIT_BIN or $GIT_CORE is missing (apt-get install git)"
[ -s "$CA_DIR/ca-certificates.crt" ] || die "$CA_DIR/ca-certificates.crt is missing (apt-get install ca-certificates)"
"$DOCKER" version >/dev/null 2>&1 || die "the Docker engine does not answer (run scripts/docker-up.sh)"

node_major=$("$NODE_BIN" -p 'process.versions.node.split(".")[0]')
[ "$node_major" = 20 ] || echo "base-images: WARNING: host node is v$node_major, but the image is tagged $NODE_IMAGE" >&2

R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT

exists() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
# The revision in the image's commit message; empty for an image without one (e.g. from a revision of this
# script that marked its images with labels instead).
rev_of() {
  local comment
  comment=$("$DOCKER" image inspect --format '{{.Comment}}' "$1" 2>/dev/null || true)
  case "$comment" in "$MARKER"*) echo "${comment#"$MARKER"}" ;; esac
}
want() { # image rev
  [ "$FORCE" = 1 ] || ! exists "$1" && return 0
  local have
  have=$(rev_of "$1")
  [ "$have" = "$2" ] && return 1
  echo "base-images: $1 is from an older revision of this script (rev '${have:-none}', want '$2'): rebuilding" >&2
}

import_dir() { # dir image cmd rev
  local dir=$1 image=$2 cmd=$3 rev=$4 old new
  old=$("$DOCKER" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
  tar -C "$dir" -c . | "$DOCKER" import -m "$MARKER$rev" -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' -c "CMD $cmd" - "$image" >/dev/null
  # Drop the image this one replaced, unless something still uses it (an image built FROM it, a container).
  new=$("$DOCKER" image inspect --format '{{.Id}}' "$image")
  if [ -n "$old" ] && [ "$old" != "$new" ]; then "$DOCKER" rmi "$old" >/dev/null 2>&1 || true; fi
}

make_busybox_rootfs() { # dir
  local bb=$1
  mkdir -p "$bb/bin" "$bb/etc" "$bb/tmp" "$bb/root" "$bb/home/agent/.claude" "$bb/usr/bin" "$bb/usr/local/bin"
  cp /bin/busybox "$bb/bin/busybox"
  # NB: the applet list contains "busybox" itself; linking it would replace the binary with a self-loop.
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$bb/bin/$a"; done
  # Debian's busybox-static has no adduser/addgroup: write the files.
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'agent:x:1000:1000:agent:/home/agent:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$bb/etc/passwd"
  printf '%s\n' 'root:x:0:' 'agent:x:1000:' 'nogroup:x:65534:' >"$bb/etc/group"
  chmod 1777 "$bb/tmp"
  chmod 0700 "$bb/root"
  # .claude exists (owned by the agent) so a fresh named volume mounted there is copied up as 1000:1000.
  chown -R 1000:1000 "$bb/home/agent"
  chmod 0755 "$bb/home/agent"
}

# git: /usr/bin/git, and /usr/lib/git-core with `git` hard-linked to it (its builtins are symlinks to `git`),
# its shell/perl scripts and the i18n helper. The other ELF helpers are left out: the http(s) remote
# helpers need libcurl and ~30 more libraries, git-daemon/git-shell/scalar are not for an agent. So local
# repositories (init, status, diff, commit, log, ...) work; fetching over https does not.
add_git() { # rootfs
  local root=$1 f
  mkdir -p "$root/usr/lib" "$root/usr/share/git-core"
  cp "$GIT_BIN" "$root/usr/bin/git"
  cp -a "$GIT_CORE" "$root/usr/lib/git-core"
  for f in "$root/usr/lib/git-core"/*; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    [ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
    case "${f##*/}" in git-sh-i18n--envsubst) ;; *) rm -f "$f" ;; esac
  done
  ln "$root/usr/bin/git" "$root/usr/lib/git-core/git"
  find "$root/usr/lib/git-core" -xtype l -delete   # links to the helpers left out
  [ -d /usr/share/git-core/templates ] && cp -a /usr/share/git-core/templates "$root/usr/share/git-core/templates"
  return 0
}

t0=$(date +%s.%N)
make_busybox_rootfs "$R/bb"

if want "$BUSYBOX_IMAGE" "$BUSYBOX_REV"; then
  import_dir "$R/bb" "$BUSYBOX_IMAGE" '["/bin/sh"]' "$BUSYBOX_REV"
  echo "base-images: built $BUSYBOX_IMAGE"
else
  echo "base-images: $BUSYBOX_IMAGE exists (FORCE=1 rebuilds it)"
fi

if want "$NODE_IMAGE" "$NODE_REV"; then
  cp -a "$R/bb" "$R/node"
  cp "$NODE_BIN" "$R/node/usr/bin/node"
  # Claude Code's Bash tool refuses busybox sh ("No suitable shell found"): it needs a real bash.
  rm -f "$R/node/bin/bash"
  cp /bin/bash "$R/node/bin/bash"
  add_git "$R/node"
  # CA certificates: the bundle and the hashed per-CA files, dereferenced (they link into /usr/share).
  mkdir -p "$R/node/etc/ssl"
  cp -rL "$CA_DIR" "$R/node/etc/ssl/certs"
  for lib in $(ldd "$NODE_BIN" /bin/bash "$GIT_BIN" ${EXTRA_LDD:-} | grep -o '/[^ :]*\.so[^ :]*' | sort -u); do
    mkdir -p "$R/node$(dirname "$lib")"
    cp -L "$lib" "$R/node$lib"
  done
  # librt is needed by the claude native binary; harmless otherwise.
  for librt in /lib/x86_64-linux-gnu/librt.so.1 /usr/lib/x86_64-linux-gnu/librt.so.1; do
    if [ -e "$librt" ]; then
      mkdir -p "$R/node$(dirname "$librt")"
      cp -L "$librt" "$R/node$librt"
      break
    fi
  done
  import_dir "$R/node" "$NODE_IMAGE" '["/usr/bin/node"]' "$NODE_REV"
  echo "base-images: built $NODE_IMAGE"
else
  echo "base-images: $NODE_IMAGE exists (FORCE=1 rebuilds it)"
fi

# Smoke tests: as uid 1000, no network, never pulling (both images are local by now).
out=$("$DOCKER" run --rm --network none -u 1000:1000 "$BUSYBOX_IMAGE" sh -c 'echo "uid=$(id -u) home=$(awk -F: "\$3==1000{print \$6}" /etc/passwd)"')
[ "$out" = "uid=1000 home=/home/agent" ] || die "$BUSYBOX_IMAGE smoke test printed: $out"
echo "base-images: $BUSYBOX_IMAGE ok ($out)"
out=$("$DOCKER" run --rm --network none -u 1000:1000 "$NODE_IMAGE" node -e 'console.log(process.version, process.getuid())')
case "$out" in v*" 1000") ;; *) die "$NODE_IMAGE smoke test printed: $out" ;; esac
out2=$("$DOCKER" run --rm --network none -u 1000:1000 "$NODE_IMAGE" bash -c 'echo "bash $BASH_VERSION"')
# git as the agent would use it, in a fresh repository: init, add, commit, diff, status; and the CA bundle.
out3=$("$DOCKER" run --rm --network none -u 1000:1000 -e HOME=/tmp "$NODE_IMAGE" bash -c '
  set -e; cd /tmp; git init -q r; cd r; echo a >f; git add f
  git -c user.name=t -c user.email=t@t commit -qm init; echo b >f
  [ "$(git diff --numstat)" = "$(printf "1\t1\tf")" ]; [ "$(git status --porcelain)" = " M f" ]
  [ -s /etc/ssl/certs/ca-certificates.crt ]; git --version')
case "$out3" in "git version "*) ;; *) die "$NODE_IMAGE git smoke test printed: $out3" ;; esac
echo "base-images: $NODE_IMAGE ok (node $out, $out2, $out3, CA bundle)"
awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "base-images: done in %.1fs\n", b - a }'
