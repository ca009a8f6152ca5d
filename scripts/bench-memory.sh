#!/usr/bin/env bash
# Resident memory of the pool over many shares at full load: `obtc-pool run` (durable acks, the
# default [ledger] settings (sled's cache 64 MiB unless CACHE_MB says otherwise), and the live projection that forgets
# shares), fed by the synthetic job source and `loadgen` in closed loop (CONNECTIONS x 1 in
# flight, valid shares) in segments of about a million accepted shares each, until TOTAL
# shares. After each segment it records the accepted count so far and the pool's VmRSS; a
# sampler records VmRSS every second, so each segment's peak is known too. At the end the pool
# is stopped (SIGINT) and `ledger verify` must pass.
#
# Output: a table (million, shares, RSS at the segment's end, peak RSS in the segment, MB) on
# stdout and in $BENCH_OUT/memory-*.txt. Environment: TOTAL (default 20000000), SEGMENT_S
# (loadgen seconds per segment, default 30; the table is per accepted million whatever it is),
# CONNECTIONS (default 100), CACHE_MB (sets [ledger] cache_mb; default: not set), WORK (data directory, default a fresh /tmp/memory-bench.XXXX,
# removed at the end), CARGO_TARGET_DIR, POOL_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

TOTAL=${TOTAL:-20000000}
SEGMENT_S=${SEGMENT_S:-30}
CONNECTIONS=${CONNECTIONS:-100}
ADDRESS=${ADDRESS:-mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BENCH_OUT=${BENCH_OUT:-target/bench-memory}
LOADGEN=$TARGET_DIR/release/loadgen
POOL=${POOL_BIN:-$TARGET_DIR/release/obtc-pool}
mkdir -p "$BENCH_OUT"
WORK=${WORK:-$(mktemp -d /tmp/memory-bench.XXXX)}
mkdir -p "$WORK"
ulimit -Sn 8192 2>/dev/null || true

source scripts/ports.sh
PORT=$(free_port)
cat >"$WORK/pool.toml" <<EOF
[chain]
preset = "bsv-regtest"

[node]
kind = "synthetic"

[stratum]
listen = "127.0.0.1:$PORT"
extranonce2_size = 4
max_connections_per_ip = 5000
idle_timeout_secs = 600

[stratum.vardiff]
target_share_secs = 10
min_difficulty = 1e-12
max_difficulty = 1e-12
start_difficulty = 1e-12

[pool]
payout_address = "$ADDRESS"

[ledger]
data_dir = "ledger"
EOF
if [[ -n ${CACHE_MB:-} ]]; then echo "cache_mb = $CACHE_MB" >>"$WORK/pool.toml"; fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$BENCH_OUT/memory-$STAMP.txt
SAMPLES=$BENCH_OUT/memory-$STAMP.samples
"$POOL" run --config "$WORK/pool.toml" >"$BENCH_OUT/memory-$STAMP.pool.log" 2>&1 &
POOL_PID=$!
SAMPLER_PID=
cleanup() {
    [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null || true
    kill -KILL "$POOL_PID" 2>/dev/null || true
    [[ ${KEEP_DATA:-0} == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
    port_open "$PORT" && break
    sleep 0.1
done
port_open "$PORT" || { echo "the pool did not start" >&2; exit 1; }

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$POOL_PID/status"; }
(
    while kill -0 "$POOL_PID" 2>/dev/null; do
        echo "$(date +%s) $(rss_kb)"
        sleep 1
    done
) >"$SAMPLES" &
SAMPLER_PID=$!

echo "start: VmRSS $(($(rss_kb) / 1024)) MB" | tee "$OUT"
printf '%-8s %-12s %-14s %-14s %s\n' million shares rss_end_mb peak_mb shares_per_s | tee -a "$OUT"
total=0
next=1000000
seg_start=$(date +%s)
while [[ $total -lt $TOTAL ]]; do
    out=$("$LOADGEN" run --target "127.0.0.1:$PORT" --connections "$CONNECTIONS" --in-flight 1 \
        --duration "$SEGMENT_S" --username "$ADDRESS.bench" --mode valid --json 2>>"$BENCH_OUT/memory-$STAMP.loadgen.log")
    accepted=$(sed -n 's/.*"accepted":\([0-9]*\).*/\1/p' <<<"$out")
    rate=$(sed -n 's/.*"accepted_per_s":\([0-9.]*\).*/\1/p' <<<"$out")
    total=$((total + accepted))
    now=$(date +%s)
    rss=$(rss_kb)
    peak=$(awk -v a="$seg_start" -v b="$now" '$1 >= a && $1 <= b && $2 > m { m = $2 } END { print m + 0 }' "$SAMPLES")
    while [[ $total -ge $next ]]; do
        printf '%-8s %-12s %-14s %-14s %s\n' "$((next / 1000000))" "$total" "$((rss / 1024))" \
            "$((peak / 1024))" "$rate" | tee -a "$OUT"
        next=$((next + 1000000))
        seg_start=$now
    done
done
grep -E "VmHWM|VmRSS" "/proc/$POOL_PID/status" | tee -a "$OUT"
kill -INT "$POOL_PID"
for _ in $(seq 1 600); do
    kill -0 "$POOL_PID" 2>/dev/null || break
    sleep 0.1
done
du -sb "$WORK/ledger" | tee -a "$OUT"
"$POOL" ledger verify --data "$WORK/ledger" 2>&1 | tail -n 2 | tee -a "$OUT"
grep -E "snapshot written|follower applied" "$BENCH_OUT/memory-$STAMP.pool.log" | tail -n 3 | tee -a "$OUT"
