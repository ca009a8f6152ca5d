#!/usr/bin/env bash
# Memory per idle connection: the pool (`obtc-pool run`, release build, synthetic job source so no
# node is needed, per-IP limit raised) against `loadgen idle`, which opens N connections from its
# own process, subscribes and authorizes each, waits for its first job and then holds them
# without a word. For each N the pool is started fresh; its resident memory (VmRSS in
# /proc/PID/status) is read once it listens and again 3 s after all N connections are ready, and
# the script prints (after - before) / N in bytes.
#
# Environment: COUNTS (default "10000 19000"; each side needs one descriptor per connection and
# `ulimit -n` is raised up to 20000 per process), REPEAT (default 1, rounds per count), PRESET
# (default bsv-regtest), ADDRESS (a payout address of that chain), CARGO_TARGET_DIR; POOL_BIN and
# LOADGEN_BIN run given binaries instead of building (e.g. an older build, to compare).
# Every process it starts is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

COUNTS=${COUNTS:-"10000 19000"}
REPEAT=${REPEAT:-1}
PRESET=${PRESET:-bsv-regtest}
ADDRESS=${ADDRESS:-mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

want_files=20000
hard=$(ulimit -Hn)
if [[ $hard != unlimited && $hard -lt $want_files ]]; then want_files=$hard; fi
ulimit -Sn "$want_files" || true
echo "== open files limit: $(ulimit -n)"

if [[ -z ${POOL_BIN:-} || -z ${LOADGEN_BIN:-} ]]; then
    echo "== building release binaries"
    cargo build --release --bin loadgen --bin obtc-pool
fi
LOADGEN=${LOADGEN_BIN:-$TARGET_DIR/release/loadgen}
POOL=${POOL_BIN:-$TARGET_DIR/release/obtc-pool}

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        case $(ps -o comm= -p "$pid" 2>/dev/null) in
        loadgen | obtc-pool) kill -KILL "$pid" 2>/dev/null || true ;;
        esac
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# port_open, free_port
source scripts/ports.sh

rss_bytes() {
    awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"
}

# measure N: prints bytes per connection.
measure() {
    local n=$1 dir port pool loadgen before after
    dir=$WORK/run-$n
    mkdir -p "$dir"
    port=$(free_port)
    cat >"$dir/pool.toml" <<EOF
# Written by scripts/bench-idle.sh: no node, connections that only subscribe and authorize.
[chain]
preset = "$PRESET"

[node]
kind = "synthetic"

[stratum]
listen = "127.0.0.1:$port"
max_connections_per_ip = 30000
idle_timeout_secs = 3600

[pool]
payout_address = "$ADDRESS"

[ledger]
data_dir = "ledger"
EOF
    "$POOL" run --config "$dir/pool.toml" >"$dir/pool.log" 2>&1 &
    pool=$!
    PIDS+=("$pool")
    for _ in $(seq 1 300); do
        port_open "$port" && break
        kill -0 "$pool" 2>/dev/null || break
        sleep 0.1
    done
    if ! port_open "$port"; then
        echo "pool did not start: $(tail -n 5 "$dir/pool.log")" >&2
        return 1
    fi
    sleep 1
    before=$(rss_bytes "$pool")
    "$LOADGEN" idle --target "127.0.0.1:$port" --connections "$n" --username "$ADDRESS.idle" \
        >"$dir/loadgen.out" 2>"$dir/loadgen.log" &
    loadgen=$!
    PIDS+=("$loadgen")
    for _ in $(seq 1 1800); do
        grep -q '^ready' "$dir/loadgen.out" && break
        kill -0 "$loadgen" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q "^ready $n\$" "$dir/loadgen.out"; then
        echo "loadgen did not get $n connections ready: $(tail -n 3 "$dir/loadgen.log")" >&2
        kill -KILL "$loadgen" "$pool" 2>/dev/null || true
        return 1
    fi
    sleep 3
    after=$(rss_bytes "$pool")
    kill -KILL "$loadgen" 2>/dev/null || true
    wait "$loadgen" 2>/dev/null || true
    kill -INT "$pool" 2>/dev/null || true
    for _ in $(seq 1 300); do
        kill -0 "$pool" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pool" 2>/dev/null || true
    wait "$pool" 2>/dev/null || true
    rm -rf "$dir"
    echo "   $n connections: RSS $((before / 1024)) KiB -> $((after / 1024)) KiB" >&2
    awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { printf "%.0f\n", (a - b) / n }'
}

for n in $COUNTS; do
    for round in $(seq 1 "$REPEAT"); do
        echo "== $n idle connections (round $round)"
        per=$(measure "$n")
        echo "   $n idle connections: $per bytes per connection"
    done
done
