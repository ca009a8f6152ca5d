#!/usr/bin/env bash
# End-to-end Stratum benchmark: the pool (`obtc-pool run`, durability on, synthetic job source so
# no node is needed) against `loadgen`, each figure read as a ratio of `loadgen null-server` (a
# responder that answers at once and checks nothing) measured in the same run on the same machine.
#
# For each closed-loop shape (connections x in flight, default 10x4 100x1 1000x1):
#   null server, then the pool in valid mode (every submit meets the share target: accepted,
#   acknowledged once durable), then the pool in invalid mode (every submit above target:
#   rejected with error 23). Then the open loop: 25,000 valid submits/s over 1,000 connections,
#   against the null server and the pool, with p99 latency.
# After every pool run the pool is stopped (SIGINT, which flushes the ledger) and
# `obtc-pool ledger dump --json` must hold exactly as many share events (ShareWithWork, or
# ShareAccepted from builds before the work was recorded) as the generator counted accepted shares, and `obtc-pool ledger verify` must find the hash chain intact.
#
# Targets (printed as PASS/MISS): valid >= 50% and invalid >= 70% of the null server's rate;
# open loop p99 < 10 ms. Exits non-zero on a correctness failure (a ledger count that differs,
# a failed connection, a pool that would not start or stop); a missed speed target is reported,
# not fatal.
#
# The machine is shared and noisy: REPEAT=3 runs every measurement three times, interleaved
# (null, valid, invalid, null, ...), and reports medians.
#
# Environment: DURATION (s, default 10), REPEAT (default 1), SHAPES (default "10x4 100x1
# 1000x1"), OPEN_RATE (default 25000), OPEN_CONNECTIONS (default 1000), NULL_ONLY=1 (skip the
# pool), PRESET (chain preset, default bsv-regtest: SHA-256d), ADDRESS (a payout address of that
# chain), BENCH_OUT (where result JSON lines and logs go, default target/bench-e2e),
# CARGO_TARGET_DIR, POOL_BIN (another obtc-pool binary to measure, e.g. an older build for an
# A/B run; FLOOD_KEY=0 leaves out the [stratum.flood] section builds before it do not know).
# Every process it starts is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
SHAPES=${SHAPES:-"10x4 100x1 1000x1"}
OPEN_RATE=${OPEN_RATE:-25000}
OPEN_CONNECTIONS=${OPEN_CONNECTIONS:-1000}
NULL_ONLY=${NULL_ONLY:-0}
REPEAT=${REPEAT:-1}
PRESET=${PRESET:-bsv-regtest}
ADDRESS=${ADDRESS:-mzzjtApVXzrNFNeEfje8zyg5Djt115u2zX}
VALID_DIFFICULTY=1e-12
INVALID_DIFFICULTY=1e12
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BENCH_OUT=${BENCH_OUT:-target/bench-e2e}
LOADGEN_TIMEOUT=$(awk -v d="$DURATION" 'BEGIN { printf "%d", d + 90 }')

# 1,000 connections need 1,000 descriptors in the generator and as many in the server.
want_files=8192
hard=$(ulimit -Hn)
if [[ $hard != unlimited && $hard -lt $want_files ]]; then want_files=$hard; fi
ulimit -Sn "$want_files" || true
echo "== open files limit: $(ulimit -n)"
if [[ $(ulimit -n) != unlimited && $(ulimit -n) -lt 2200 ]]; then
    echo "warning: ulimit -n $(ulimit -n) is too low for 1,000 connections (each side needs one per connection)" >&2
fi

echo "== building release binaries"
if [[ $NULL_ONLY == 1 ]]; then
    cargo build --release --bin loadgen
else
    cargo build --release --bin loadgen --bin obtc-pool
fi
LOADGEN=$TARGET_DIR/release/loadgen
POOL=${POOL_BIN:-$TARGET_DIR/release/obtc-pool}
FLOOD_KEY=${FLOOD_KEY:-1}
if [[ $FLOOD_KEY == 1 ]]; then
    FLOOD_SECTION=$'# The invalid mode is a flood of invalid shares on purpose: measure it, do not cut it.\n[stratum.flood]\nenabled = false'
else
    FLOOD_SECTION=
fi

mkdir -p "$BENCH_OUT"
RESULTS=$BENCH_OUT/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl
WORK=$(mktemp -d)
SERVER_PID=
# Failures are lines in a file: most steps run in command substitutions (subshells).
FAILURES_FILE=$WORK/failures
: >"$FAILURES_FILE"

# Every server started is listed here (they are started in subshells, whose variables the
# exit trap cannot see); on exit each one still running as ours is killed.
PIDS_FILE=$WORK/pids
: >"$PIDS_FILE"
cleanup() {
    local pid
    while read -r pid; do
        case $(ps -o comm= -p "$pid" 2>/dev/null) in
        loadgen | obtc-pool) kill -KILL "$pid" 2>/dev/null || true ;;
        esac
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

at_least() {
    awk -v r="$1" -v min="$2" 'BEGIN { exit !(r != "n/a" && r >= min) }'
}

# port_open, free_port
source scripts/ports.sh

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# run_loadgen TARGET LABEL MODE ARGS... : prints the JSON result line; records it in $RESULTS.
run_loadgen() {
    local target=$1 label=$2 mode=$3
    shift 3
    local out rc=0
    out=$(timeout "$LOADGEN_TIMEOUT" "$LOADGEN" run --target "$target" --duration "$DURATION" \
        --username "$ADDRESS.bench" --mode "$mode" --json "$@" 2>"$BENCH_OUT/$label.log") || rc=$?
    if [[ $rc -ne 0 ]]; then
        fail "$label: loadgen exited $rc ($(tail -n 3 "$BENCH_OUT/$label.log" | tr '\n' ' '))"
    fi
    if [[ -z $out ]]; then
        out='{"accepted":0,"rejected":0,"accepted_per_s":0,"rejected_per_s":0,"answers_per_s":0,"p99_us":0}'
    fi
    echo "{\"label\":\"$label\",${out#\{}" >>"$RESULTS"
    echo "$out"
}

# start_null: starts the null server on a port it picks; sets SERVER_PID and NULL_ADDR.
start_null() {
    local log=$WORK/null.log
    "$LOADGEN" null-server --listen 127.0.0.1:0 2>"$log" &
    SERVER_PID=$!
    echo "$SERVER_PID" >>"$PIDS_FILE"
    NULL_ADDR=
    for _ in $(seq 1 100); do
        NULL_ADDR=$(sed -n 's/^null-server listening on //p' "$log")
        [[ -n $NULL_ADDR ]] && return 0
        sleep 0.1
    done
    fail "null server did not start: $(cat "$log")"
    return 1
}

# null_run LABEL ARGS...: a fresh null server for one measurement.
null_run() {
    local label=$1
    shift
    start_null || return 1
    run_loadgen "$NULL_ADDR" "$label" valid "$@"
    stop_server
}

write_pool_config() {
    local dir=$1 port=$2 difficulty=$3
    cat >"$dir/pool.toml" <<EOF
# Written by scripts/bench-e2e.sh: no node (synthetic job whose network target no share meets),
# a fixed share difficulty (vardiff min = max = start), durability on (the default).
[chain]
preset = "$PRESET"

[node]
kind = "synthetic"

[stratum]
listen = "127.0.0.1:$port"
extranonce2_size = 4
max_connections_per_ip = 5000
idle_timeout_secs = 600

$FLOOD_SECTION

[stratum.vardiff]
target_share_secs = 10
min_difficulty = $difficulty
max_difficulty = $difficulty
start_difficulty = $difficulty

[pool]
payout_address = "$ADDRESS"

[ledger]
data_dir = "ledger"
EOF
}

# pool_run LABEL MODE ARGS...: a fresh pool and ledger for one measurement, then the ledger check.
pool_run() {
    local label=$1 mode=$2
    shift 2
    local dir=$WORK/$label port difficulty out accepted events
    mkdir -p "$dir"
    port=$(free_port)
    difficulty=$VALID_DIFFICULTY
    [[ $mode == invalid ]] && difficulty=$INVALID_DIFFICULTY
    write_pool_config "$dir" "$port" "$difficulty"
    "$POOL" run --config "$dir/pool.toml" >"$BENCH_OUT/$label.pool.log" 2>&1 &
    SERVER_PID=$!
    echo "$SERVER_PID" >>"$PIDS_FILE"
    local up=0
    for _ in $(seq 1 300); do
        if port_open "$port"; then
            up=1
            break
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
        sleep 0.1
    done
    if [[ $up -ne 1 ]]; then
        fail "$label: pool did not start listening on $port ($(tail -n 5 "$BENCH_OUT/$label.pool.log" | tr '\n' ' '))"
        stop_server
        echo '{"accepted":0,"rejected":0,"accepted_per_s":0,"rejected_per_s":0,"answers_per_s":0,"p99_us":0}'
        return 0
    fi
    out=$(run_loadgen "127.0.0.1:$port" "$label" "$mode" "$@")
    # Ctrl-C flushes the ledger and exits 0; give it 30 s.
    kill -INT "$SERVER_PID" 2>/dev/null || true
    local stopped=0
    for _ in $(seq 1 300); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            stopped=1
            break
        fi
        sleep 0.1
    done
    if [[ $stopped -ne 1 ]]; then
        fail "$label: pool did not stop within 30 s of SIGINT; killed"
    fi
    stop_server
    accepted=$(field "$out" accepted)
    if events=$(timeout 120 "$POOL" ledger dump --data "$dir/ledger" --json 2>"$BENCH_OUT/$label.dump.log" |
        grep -cE '"kind": *"(ShareAccepted|ShareWithWork)"'); then :; else events=${events:-0}; fi
    if [[ $events == "$accepted" ]]; then
        echo "   $label: ledger holds $events share events = $accepted accepted (ok)" >&2
    else
        fail "$label: ledger holds $events share events but the generator counted $accepted accepted"
    fi
    if ! timeout 120 "$POOL" ledger verify --data "$dir/ledger" >"$BENCH_OUT/$label.verify.log" 2>&1; then
        fail "$label: ledger verify failed ($(tail -n 2 "$BENCH_OUT/$label.verify.log" | tr '\n' ' '))"
    fi
    rm -rf "$dir"
    echo "$out"
}

# The median of numbers given as arguments.
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

SUMMARY=()
TARGETS=()
if [[ $REPEAT -gt 1 ]]; then
    echo "== $REPEAT rounds per figure, interleaved (null, valid, invalid); medians reported"
fi

for shape in $SHAPES; do
    conns=${shape%x*}
    inflight=${shape#*x}
    echo "== closed loop $conns connections x $inflight in flight, $DURATION s"
    null_rates=() null_p99=() valid_rates=() valid_p99=() invalid_rates=() invalid_p99=()
    for round in $(seq 1 "$REPEAT"); do
        tag=$shape
        [[ $REPEAT -gt 1 ]] && tag=$shape-r$round
        null=$(null_run "null-$tag" --connections "$conns" --in-flight "$inflight")
        null_rates+=("$(field "$null" answers_per_s)")
        null_p99+=("$(field "$null" p99_us)")
        echo "   null server: $(printf '%.0f' "${null_rates[-1]}") answers/s, p99 ${null_p99[-1]} us"
        [[ $NULL_ONLY == 1 ]] && continue
        valid=$(pool_run "pool-valid-$tag" valid --connections "$conns" --in-flight "$inflight")
        valid_rates+=("$(field "$valid" accepted_per_s)")
        valid_p99+=("$(field "$valid" p99_us)")
        echo "   pool, valid: $(printf '%.0f' "${valid_rates[-1]}") accepted/s (durable), p99 ${valid_p99[-1]} us"
        invalid=$(pool_run "pool-invalid-$tag" invalid --connections "$conns" --in-flight "$inflight")
        invalid_rates+=("$(field "$invalid" rejected_per_s)")
        invalid_p99+=("$(field "$invalid" p99_us)")
        echo "   pool, invalid: $(printf '%.0f' "${invalid_rates[-1]}") rejected/s, p99 ${invalid_p99[-1]} us"
    done
    null_rate=$(median "${null_rates[@]}")
    if [[ $NULL_ONLY == 1 ]]; then
        SUMMARY+=("$(printf '%-8s null %8.0f/s  p99 %6s us' "$shape" "$null_rate" "$(median "${null_p99[@]}")")")
        continue
    fi
    valid_rate=$(median "${valid_rates[@]}")
    invalid_rate=$(median "${invalid_rates[@]}")
    valid_ratio=$(ratio "$valid_rate" "$null_rate")
    invalid_ratio=$(ratio "$invalid_rate" "$null_rate")
    SUMMARY+=("$(printf '%-8s null %8.0f/s | valid %8.0f/s (%s) p99 %6s us | invalid %8.0f/s (%s) p99 %6s us' \
        "$shape" "$null_rate" "$valid_rate" "$valid_ratio" "$(median "${valid_p99[@]}")" \
        "$invalid_rate" "$invalid_ratio" "$(median "${invalid_p99[@]}")")")
    if at_least "$valid_ratio" 0.5; then v=PASS; else v=MISS; fi
    if at_least "$invalid_ratio" 0.7; then i=PASS; else i=MISS; fi
    TARGETS+=("$v valid $shape: $valid_ratio of null (target >= 0.50)")
    TARGETS+=("$i invalid $shape: $invalid_ratio of null (target >= 0.70)")
done

echo "== open loop $OPEN_RATE submits/s over $OPEN_CONNECTIONS connections, $DURATION s"
null_p99=() null_kept=() open_rates=() open_p99=() open_p999=() open_kept=()
for round in $(seq 1 "$REPEAT"); do
    tag=open
    [[ $REPEAT -gt 1 ]] && tag=open-r$round
    null=$(null_run "null-$tag" --connections "$OPEN_CONNECTIONS" --rate "$OPEN_RATE")
    null_p99+=("$(field "$null" p99_us)")
    null_kept+=("$(field "$null" kept_rate)")
    echo "   null server: $(printf '%.0f' "$(field "$null" answers_per_s)") answers/s, p99 ${null_p99[-1]} us, kept rate: ${null_kept[-1]}"
    [[ $NULL_ONLY == 1 ]] && continue
    open=$(pool_run "pool-valid-$tag" valid --connections "$OPEN_CONNECTIONS" --rate "$OPEN_RATE")
    open_rates+=("$(field "$open" accepted_per_s)")
    open_p99+=("$(field "$open" p99_us)")
    open_p999+=("$(field "$open" p999_us)")
    open_kept+=("$(field "$open" kept_rate)")
    echo "   pool, valid: $(printf '%.0f' "${open_rates[-1]}") accepted/s, p99 ${open_p99[-1]} us, kept rate: ${open_kept[-1]}"
done
SUMMARY+=("$(printf 'open %s/s x %s: null p99 %s us (kept rate: %s)' "$OPEN_RATE" "$OPEN_CONNECTIONS" \
    "$(median "${null_p99[@]}")" "${null_kept[*]}")")
if [[ $NULL_ONLY != 1 ]]; then
    p99=$(median "${open_p99[@]}")
    SUMMARY+=("$(printf 'open %s/s x %s: pool valid %.0f accepted/s, p99 %s us, p999 %s us (kept rate: %s)' \
        "$OPEN_RATE" "$OPEN_CONNECTIONS" "$(median "${open_rates[@]}")" "$p99" \
        "$(median "${open_p999[@]}")" "${open_kept[*]}")")
    if awk -v p="$p99" 'BEGIN { exit !(p > 0 && p < 10000) }'; then t=PASS; else t=MISS; fi
    TARGETS+=("$t open loop $OPEN_RATE/s x $OPEN_CONNECTIONS: p99 $p99 us (target < 10000)")
fi

echo
echo "== summary (results: $RESULTS)"
printf '%s\n' "${SUMMARY[@]}"
if [[ ${#TARGETS[@]} -gt 0 ]]; then
    printf '%s\n' "${TARGETS[@]}"
fi
if [[ $NULL_ONLY == 1 ]]; then
    echo "(null server only: NULL_ONLY=1)"
fi
failures=$(wc -l <"$FAILURES_FILE")
if [[ $failures -gt 0 ]]; then
    echo "$failures correctness failure(s):" >&2
    cat "$FAILURES_FILE" >&2
    exit 1
fi
