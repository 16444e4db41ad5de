#!/usr/bin/env bash
# A second Docker engine on this machine, for the remote-engine tests (test/e2e/remote-engine.test.ts).
#
#   second-dockerd.sh start DIR   start it; DIR (new or empty, short path: socket paths are limited to 107
#                                 bytes) receives everything. Prints KEY=VALUE lines: SOCKET, HOST (tcp with
#                                 TLS on 127.0.0.1), CERTS (client ca.pem, cert.pem, key.pem), BRIDGE, SUBNET, PID.
#   second-dockerd.sh stop DIR    stop it (by its pidfile), remove its bridge and DIR.
#
# It has its own --data-root, --exec-root (its own containerd), --pidfile, Unix socket and bridge: a daemon with
# `--bridge none` would delete the first engine's docker0 (see /work/shared/reference/docker-on-the-node-machine.md
# §0), so it gets a bridge of its own on a subnet the machine does not route yet. It runs with --iptables=false:
# a second dockerd that manages iptables flushes the shared DOCKER and DOCKER-ISOLATION-STAGE-* chains at start,
# which drops the first engine's rules for docker0 and its networks (seen on Debian's 20.10). Its containers still
# reach this machine's own addresses (the scripted model, the first engine's bridge address): that traffic is
# delivered locally (INPUT), not forwarded; nothing else is needed by the tests. Its TCP endpoint takes only
# clients with a certificate from its own CA (made here with openssl; server certificate for IP 127.0.0.1).
# Root only. Nothing is pulled.
set -euo pipefail
DOCKERD=/usr/sbin/dockerd
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

bridge_of() { cat "$1/bridge" 2>/dev/null || true; }

stop() {
  local pid br
  pid=$(cat "$dir/dockerd.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  fi
  # Its containerd (a child in its own exec-root) goes with it; make sure.
  local cpid
  cpid=$(cat "$dir/exec/containerd/containerd.pid" 2>/dev/null || true)
  if [ -n "$cpid" ] && kill -0 "$cpid" 2>/dev/null; then
    kill -TERM "$cpid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$cpid" 2>/dev/null || break; sleep 0.1; done
  fi
  br=$(bridge_of "$dir")
  [ -n "$br" ] && ip link del "$br" 2>/dev/null || true
  # Mounts left under its roots (overlay layers, netns files of a killed daemon) would keep rm from working.
  { grep -o " $dir/[^ ]*" /proc/self/mounts 2>/dev/null || true; } | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$dir"
}

start() {
  [ "$(id -u)" -eq 0 ] || { echo "second-dockerd: needs root" >&2; exit 1; }
  mkdir -p "$dir"
  [ -z "$(ls -A "$dir")" ] || { echo "second-dockerd: $dir is not empty" >&2; exit 1; }
  chmod 0700 "$dir"
  mkdir -p "$dir/data" "$dir/exec" "$dir/tls" "$dir/client"
  # A bridge name of at most 15 bytes and a /24 in 10.213.0.0/16 that no route uses yet.
  local id br net i third
  id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
  br="ad2-$id"
  net=""
  for i in $(seq 1 40); do
    third=$(( $(od -An -N1 -tu1 /dev/urandom | tr -d ' ') % 250 + 1 ))
    if ! ip -4 route | grep -q "^10\.213\.$third\."; then net="10.213.$third.0/24"; break; fi
  done
  [ -n "$net" ] || { echo "second-dockerd: no free subnet in 10.213.0.0/16" >&2; exit 1; }
  echo "$br" >"$dir/bridge"; echo "$net" >"$dir/subnet"
  ip link add name "$br" type bridge
  ip addr add "${net%.0/24}.1/24" dev "$br"
  ip link set "$br" up

  # Certificates: a CA, a server certificate for 127.0.0.1, a client certificate (what tls_cert_dir holds).
  local t=$dir/tls c=$dir/client
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=agent-dispatch test CA" -keyout "$t/ca-key.pem" -out "$t/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$t/key.pem" -out "$t/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$t/server.ext"
  openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" -CAcreateserial -days 2 -extfile "$t/server.ext" -out "$t/cert.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=agent-dispatch test client" -keyout "$c/key.pem" -out "$c/client.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' >"$c/client.ext"
  openssl x509 -req -in "$c/client.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" -CAcreateserial -days 2 -extfile "$c/client.ext" -out "$c/cert.pem" 2>/dev/null
  cp "$t/ca.pem" "$c/ca.pem"
  rm -f "$t"/*.csr "$c"/*.csr "$t"/*.ext "$c"/*.ext

  # A free loopback port, then the daemon.
  local port
  port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  setsid "$DOCKERD" \
    --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
    -H "unix://$dir/docker.sock" -H "tcp://127.0.0.1:$port" \
    --tlsverify --tlscacert "$t/ca.pem" --tlscert "$t/cert.pem" --tlskey "$t/key.pem" \
    --bridge "$br" --fixed-cidr "$net" --iptables=false \
    >"$dir/dockerd.log" 2>&1 </dev/null &
  local ok=""
  for _ in $(seq 1 300); do
    if [ -S "$dir/docker.sock" ] && /usr/bin/docker -H "unix://$dir/docker.sock" version >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.05
  done
  if [ -z "$ok" ]; then
    echo "second-dockerd: the daemon did not answer within 15 s; its log:" >&2
    tail -n 30 "$dir/dockerd.log" >&2 || true
    stop
    exit 1
  fi
  echo "SOCKET=$dir/docker.sock"
  echo "HOST=tcp://127.0.0.1:$port"
  echo "CERTS=$c"
  echo "BRIDGE=$br"
  echo "SUBNET=$net"
  echo "PID=$(cat "$dir/dockerd.pid")"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
