#!/usr/bin/env bash
# RPC benchmark: `miner_balance` latency and throughput on the pool's JSON-RPC while the Stratum
# load generator runs against the same pool, and the Stratum side's ack rate and latency with and
# without the RPC load (so the RPC is seen not to slow the shares down).
#
# One pool (`obtc-pool run`, synthetic job source, durability on, every submit a valid share),
# then, REPEAT times, interleaved:
#   stratum      loadgen run (open loop, STRATUM_RATE submits/s over STRATUM_CONNECTIONS)
#   rpc          loadgen rpc (RPC_CLIENTS clients calling METHOD back to back)
#   both         the two at once
# each for DURATION seconds. Then one scrape of /metrics (the pool's own submit latency
# histogram and ledger commit figures) and the medians as a table.
#
# Environment: DURATION (s, default 10), REPEAT (default 1), STRATUM_RATE (default 5000),
# STRATUM_CONNECTIONS (default 100), RPC_CLIENTS (default 2), RPC_RATE (total calls/s, paced;
# default: back to back, as fast as the clients get answers), METHOD (default miner_balance),
# PARAMS (JSON, default ["ADDRESS"]), ADDRESS, PRESET (default bsv-regtest), BENCH_OUT (default
# target/bench-rpc), CARGO_TARGET_DIR, POOL_BIN / LOADGEN_BIN (binaries to measure instead of a
# fresh release build). Every process it starts is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
REPEAT=${REPEAT:-1}
STRATUM_RATE=${STRATUM_RATE:-5000}
STRATUM_CONNECTIONS=${STRATUM_CONNECTIONS:-100}
RPC_CLIENTS=${RPC_CLIENTS:-2}
RPC_RATE=${RPC_RATE:-}
METHOD=${METHOD:-miner_balance}
PRESET=${PRESET:-bsv-regtest}
ADDRESS=${ADDRESS:-mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX}
PARAMS=${PARAMS:-"[\"$ADDRESS\"]"}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BENCH_OUT=${BENCH_OUT:-target/bench-rpc}
LOADGEN_TIMEOUT=$(awk -v d="$DURATION" 'BEGIN { printf "%d", d + 60 }')

ulimit -Sn 4096 2>/dev/null || true

if [[ -z ${POOL_BIN:-} || -z ${LOADGEN_BIN:-} ]]; then
    echo "== building release binaries"
    cargo build --release --bin loadgen --bin obtc-pool
fi
LOADGEN=${LOADGEN_BIN:-$TARGET_DIR/release/loadgen}
POOL=${POOL_BIN:-$TARGET_DIR/release/obtc-pool}

mkdir -p "$BENCH_OUT"
RESULTS=$BENCH_OUT/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl
WORK=$(mktemp -d)
POOL_PID=
PIDS=()
FAILED=0
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

fail() {
    echo "FAIL: $*" >&2
    FAILED=1
}

# A number field of a one-line JSON object (no jq needed).
field() {
    sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p" <<<"$1"
}

# The median of numbers given as arguments, rounded.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) printf "%.0f\n", v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

source scripts/ports.sh

stratum_port=$(free_port)
rpc_port=$(free_port)
while [[ $rpc_port == "$stratum_port" ]]; do rpc_port=$(free_port); done
mkdir -p "$WORK/pool"
cat >"$WORK/pool/pool.toml" <<EOF
# Written by scripts/bench-rpc.sh: no node, a fixed share difficulty every submit meets,
# durability on (the default), the RPC on loopback.
[chain]
preset = "$PRESET"
[node]
kind = "synthetic"
[stratum]
listen = "127.0.0.1:$stratum_port"
extranonce2_size = 4
max_connections_per_ip = 5000
idle_timeout_secs = 600
[stratum.flood]
enabled = false
[stratum.vardiff]
target_share_secs = 10
min_difficulty = 1e-12
max_difficulty = 1e-12
start_difficulty = 1e-12
[pool]
payout_address = "$ADDRESS"
[ledger]
data_dir = "ledger"
[rpc]
listen = "127.0.0.1:$rpc_port"
EOF
"$POOL" run --config "$WORK/pool/pool.toml" >"$BENCH_OUT/pool.log" 2>&1 &
POOL_PID=$!
PIDS+=("$POOL_PID")
for _ in $(seq 1 300); do
    if port_open "$stratum_port" && port_open "$rpc_port"; then break; fi
    kill -0 "$POOL_PID" 2>/dev/null || break
    sleep 0.1
done
if ! port_open "$rpc_port"; then
    fail "the pool did not start: $(tail -n 5 "$BENCH_OUT/pool.log" | tr '\n' ' ')"
    exit 1
fi

stratum_load() {
    local label=$1 out rc=0
    out=$(timeout "$LOADGEN_TIMEOUT" "$LOADGEN" run --target "127.0.0.1:$stratum_port" \
        --connections "$STRATUM_CONNECTIONS" --rate "$STRATUM_RATE" --duration "$DURATION" \
        --username "$ADDRESS.bench" --json 2>"$BENCH_OUT/$label.stratum.log") || rc=$?
    [[ $rc -eq 0 ]] || fail "$label: loadgen run exited $rc ($(tail -n 2 "$BENCH_OUT/$label.stratum.log" | tr '\n' ' '))"
    [[ -n $out ]] || out='{"accepted_per_s":0,"p50_us":0,"p99_us":0}'
    echo "{\"label\":\"$label\",\"side\":\"stratum\",${out#\{}" >>"$RESULTS"
    echo "$out"
}

rpc_load() {
    local label=$1 out rc=0
    out=$(timeout "$LOADGEN_TIMEOUT" "$LOADGEN" rpc --target "127.0.0.1:$rpc_port" \
        --clients "$RPC_CLIENTS" --method "$METHOD" --params "$PARAMS" --duration "$DURATION" \
        ${RPC_RATE:+--rate "$RPC_RATE"} --json 2>"$BENCH_OUT/$label.rpc.log") || rc=$?
    [[ $rc -eq 0 ]] || fail "$label: loadgen rpc exited $rc ($(tail -n 2 "$BENCH_OUT/$label.rpc.log" | tr '\n' ' '))"
    [[ -n $out ]] || out='{"calls_per_s":0,"errors":0,"p50_us":0,"p99_us":0,"max_us":0}'
    echo "{\"label\":\"$label\",\"side\":\"rpc\",${out#\{}" >>"$RESULTS"
    echo "$out"
}

echo "== warm-up: the miner's address gets shares (so $METHOD knows it)"
DURATION=2 stratum_load warmup >/dev/null
first=$("$LOADGEN" rpc --target "127.0.0.1:$rpc_port" --clients 1 --method "$METHOD" \
    --params "$PARAMS" --duration 0.2 --json 2>/dev/null || true)
if [[ $(field "$first" errors) != 0 ]]; then
    fail "$METHOD $PARAMS answers with an error: $(tail -n 1 "$BENCH_OUT/pool.log")"
fi

declare -a s_rate s_p50 s_p99 b_rate b_p50 b_p99 r_rate r_p50 r_p99 r_max rb_rate rb_p50 rb_p99 rb_max
for i in $(seq 1 "$REPEAT"); do
    echo "== round $i of $REPEAT"
    out=$(stratum_load "stratum-$i")
    s_rate+=("$(field "$out" accepted_per_s)") s_p50+=("$(field "$out" p50_us)") s_p99+=("$(field "$out" p99_us)")
    echo "   stratum alone: $(field "$out" accepted_per_s) acks/s, p50 $(field "$out" p50_us) us, p99 $(field "$out" p99_us) us"
    out=$(rpc_load "rpc-$i")
    r_rate+=("$(field "$out" calls_per_s)") r_p50+=("$(field "$out" p50_us)") r_p99+=("$(field "$out" p99_us)") r_max+=("$(field "$out" max_us)")
    echo "   rpc alone: $(field "$out" calls_per_s) calls/s, p50 $(field "$out" p50_us) us, p99 $(field "$out" p99_us) us, max $(field "$out" max_us) us, errors $(field "$out" errors)"
    stratum_load "both-$i" >"$WORK/both-stratum" &
    sp=$!
    PIDS+=("$sp")
    rpc_load "both-$i" >"$WORK/both-rpc" &
    rp=$!
    PIDS+=("$rp")
    wait "$sp" "$rp" || true
    out=$(cat "$WORK/both-stratum")
    b_rate+=("$(field "$out" accepted_per_s)") b_p50+=("$(field "$out" p50_us)") b_p99+=("$(field "$out" p99_us)")
    echo "   stratum with rpc: $(field "$out" accepted_per_s) acks/s, p50 $(field "$out" p50_us) us, p99 $(field "$out" p99_us) us"
    out=$(cat "$WORK/both-rpc")
    rb_rate+=("$(field "$out" calls_per_s)") rb_p50+=("$(field "$out" p50_us)") rb_p99+=("$(field "$out" p99_us)") rb_max+=("$(field "$out" max_us)")
    echo "   rpc with stratum: $(field "$out" calls_per_s) calls/s, p50 $(field "$out" p50_us) us, p99 $(field "$out" p99_us) us, max $(field "$out" max_us) us, errors $(field "$out" errors)"
done

echo "== the pool's own view (/metrics)"
exec 3<>"/dev/tcp/127.0.0.1/$rpc_port"
printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
cat <&3 >"$BENCH_OUT/metrics.txt"
exec 3<&-
grep -E '^obtc_(stratum_shares_accepted_total|stratum_submit_latency_seconds_(count|sum)|ledger_commits_total|ledger_appended_records_total|ledger_commit_batch_records_(count|sum)) ' \
    "$BENCH_OUT/metrics.txt" | sed 's/^/   /'

kill -INT "$POOL_PID" 2>/dev/null || true
for _ in $(seq 1 300); do kill -0 "$POOL_PID" 2>/dev/null || break; sleep 0.1; done

PACING=${RPC_RATE:+at $RPC_RATE calls/s}
PACING=${PACING:-back to back}
echo
echo "== medians of $REPEAT round(s), ${DURATION} s each: Stratum open loop $STRATUM_RATE/s over $STRATUM_CONNECTIONS connections, $RPC_CLIENTS RPC clients calling $METHOD $PACING"
printf '%-28s %12s %10s %10s %10s\n' "run" "per s" "p50 us" "p99 us" "max us"
printf '%-28s %12s %10s %10s %10s\n' "stratum acks, alone" "$(median "${s_rate[@]}")" "$(median "${s_p50[@]}")" "$(median "${s_p99[@]}")" "-"
printf '%-28s %12s %10s %10s %10s\n' "stratum acks, with rpc" "$(median "${b_rate[@]}")" "$(median "${b_p50[@]}")" "$(median "${b_p99[@]}")" "-"
printf '%-28s %12s %10s %10s %10s\n' "$METHOD, alone" "$(median "${r_rate[@]}")" "$(median "${r_p50[@]}")" "$(median "${r_p99[@]}")" "$(median "${r_max[@]}")"
printf '%-28s %12s %10s %10s %10s\n' "$METHOD, with stratum" "$(median "${rb_rate[@]}")" "$(median "${rb_p50[@]}")" "$(median "${rb_p99[@]}")" "$(median "${rb_max[@]}")"
echo "results: $RESULTS"
exit "$FAILED"
