#!/usr/bin/env bash
# The regtest demo: everything the pool does, on this machine, on loopback.
#
# Two linked regtest nodes (Bitcoin SV, SHA-256d; scripts/nodes.sh), the pool, three CPU miners
# (obtc-miner) under their own payout addresses. Blocks are found through the pool; node2 mines
# 100 blocks to its own wallet (outside the pool's) so they mature; the payout process pays the
# miners from the pool's wallet (node1's) and node2 mines the confirmations. The pool's live
# JSON-RPC answers are saved, the pool is stopped cleanly, and the ledger is audited: verified,
# replayed, every block and payment checked on the nodes, and `obtc-pool audit` run on a copy
# (work, money, anchors). A summary ends it, its last line the audit's verdict; every check says
# ok or FAILED and the exit status is non-zero if any failed. Everything it started is stopped in
# every case (trap, and a watchdog should the script itself be killed).
#
#   scripts/demo.sh [SECONDS]          release build, mine for SECONDS (default 60)
#   scripts/demo.sh --short [SECONDS]  the test command's short form (tests/demo.rs runs it with
#                                      cargo test's binaries): debug build, mine SECONDS (default
#                                      15), an easier block threshold, 1 confirmation
#   options:  --bin-dir DIR   obtc-pool and obtc-miner from DIR (build nothing)
#             --data DIR      data directory (default: demo-data in the repository; emptied first)
#   env:      DEMO_BIN_DIR, DEMO_DIR (same as the options), OBTC_NODE_BIN (node binaries),
#             STRATUM_PORT (default: a free port)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"

SHORT=0
SECONDS_TO_MINE=""
BIN="${DEMO_BIN_DIR:-}"
DEMO="${DEMO_DIR:-$REPO/demo-data}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --short) SHORT=1 ;;
    --bin-dir) BIN="${2:?--bin-dir needs a directory}"; shift ;;
    --data) DEMO="${2:?--data needs a directory}"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) SECONDS_TO_MINE="$1" ;;
    *) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ $SHORT == 1 ]]; then
  SECONDS_TO_MINE="${SECONDS_TO_MINE:-15}"
  # The debug miner hashes ~100x slower than the release one (~20 kH/s a thread on a loaded
  # machine): 0.00004 (172 k hashes) is a block every few seconds.
  BLOCK_DIFFICULTY=0.00004
  MIN_BLOCKS=3            # mine on past SECONDS until this many blocks are found...
  MAX_BLOCKS=20           # ...or stop early at this many (a fast machine)...
  MINE_CAP=$((SECONDS_TO_MINE * 3))   # ...but never longer than this
  CONFIRMATIONS=1
  PAYOUT_INTERVAL=1
  WAIT_SECS=60            # the longest any one wait may take
else
  SECONDS_TO_MINE="${SECONDS_TO_MINE:-60}"
  BLOCK_DIFFICULTY=0.02
  MIN_BLOCKS=3
  MAX_BLOCKS=40
  MINE_CAP=$((SECONDS_TO_MINE * 3))
  CONFIRMATIONS=2
  PAYOUT_INTERVAL=2
  WAIT_SECS=120
fi
mkdir -p "$DEMO"
DEMO="$(cd "$DEMO" && pwd)"
START_TIME=$(date +%s)
PY_PID=""
STAGE=0
STAGES=$([[ -z "$BIN" ]] && echo 8 || echo 7)

say() { printf '\n\033[1m== [%d/%d] %s\033[0m  (%d s)\n' "$((++STAGE))" "$STAGES" "$*" "$(($(date +%s) - START_TIME))"; }
die() { echo "demo.sh: $*" >&2; exit 1; }

if [[ -z "$BIN" && $SHORT == 1 ]]; then
  say "building obtc-pool and obtc-miner (debug, as cargo test does)"
  cargo build --bin obtc-pool --bin obtc-miner
  BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug"
elif [[ -z "$BIN" ]]; then
  say "building obtc-pool and obtc-miner (release)"
  cargo build --release --bin obtc-pool --bin obtc-miner
  BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"
fi
BIN="$(cd "$BIN" && pwd)"
START_TIME=$(date +%s)   # the demo's own time, after any build
for b in obtc-pool obtc-miner; do
  [[ -x "$BIN/$b" ]] || die "no $b in $BIN"
done

# Everything started is recorded here, so the trap (and the watchdog, if this script is killed
# outright) can stop it.
PIDS_FILE="$DEMO/pids"
NODES="$DEMO/nodes"
started() { echo "$1" >> "$PIDS_FILE"; }
# A process waited for is forgotten, so that its pid, once reused, is never signalled.
forget() {
  local pid
  for pid in "$@"; do sed -i "/^$pid\$/d" "$PIDS_FILE"; done
}
stop_all() {
  if [[ -f "$PIDS_FILE" ]]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$PIDS_FILE"
    # Give the pool and the payout process their clean stop (bounded), then the nodes.
    for _ in $(seq 1 50); do
      alive=0
      while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$PIDS_FILE"
      [[ $alive == 0 ]] && break
      sleep 0.2
    done
    while read -r pid; do kill -9 "$pid" 2>/dev/null || true; done < "$PIDS_FILE"
    rm -f "$PIDS_FILE"
  fi
  scripts/nodes.sh stop "$NODES" >/dev/null 2>&1 || true
}
on_exit() {
  status=$?
  trap - EXIT INT TERM HUP
  if [[ $status -ge 128 ]]; then
    echo "demo.sh: interrupted (exit $status): stopping everything it started" >&2
  fi
  [[ -n "$PY_PID" ]] && kill "$PY_PID" 2>/dev/null
  stop_all
  [[ -n "${WATCHDOG:-}" ]] && kill -9 "$WATCHDOG" 2>/dev/null
  exit "$status"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

say "starting two linked regtest nodes (scripts/nodes.sh; Bitcoin SV 1.0.13 from PyPI)"
NODE_BIN="$(scripts/nodes.sh install)"
# Emptied first, but only a demo's own directory (or the default one).
if [[ -n "$(ls -A "$DEMO")" && ! -f "$DEMO/.obtc-demo" && "$DEMO" != "$REPO/demo-data" ]]; then
  die "$DEMO is not empty and not a demo's data directory: give an empty or new one"
fi
rm -rf "${DEMO:?}/"* "$DEMO/.obtc-demo"
touch "$DEMO/.obtc-demo"
: > "$PIDS_FILE"
# The watchdog: should this script die without its trap (SIGKILL), or the process named by
# DEMO_WATCH_PID (the test running it) die first, it stops what the script started.
(
  trap '' INT TERM HUP
  while kill -0 $$ && { [[ -z "${DEMO_WATCH_PID:-}" ]] || kill -0 "$DEMO_WATCH_PID"; }; do
    sleep 1
  done
  kill -0 $$ && kill -TERM $$
  [[ -f "$PIDS_FILE" ]] || exit 0
  while read -r pid; do kill "$pid" || true; done < "$PIDS_FILE"
  scripts/nodes.sh stop "$NODES"
) >/dev/null 2>&1 &
WATCHDOG=$!
STRATUM_PORT="${STRATUM_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}" \
  scripts/nodes.sh start "$NODES" > "$DEMO/nodes.txt"
sed 's/^/  /' "$DEMO/nodes.txt"
CONFIG="$NODES/pool.toml"
# A share every ~1 s per miner, the regtest block threshold of this form, the chain watcher and
# the payout process on a short period, the confirmations of this form, and the spending guard
# opened to the whole coin supply (a fast machine finds 25 blocks of 50 coins each in the short
# form's 15 s: above nodes.sh's max_per_run of 1000 coins, the guard would pause the payouts).
sed -i -e 's/^target_share_secs = .*/target_share_secs = 1/' \
  -e "s/^pool_block_difficulty = .*/pool_block_difficulty = $BLOCK_DIFFICULTY/" \
  -e 's/^refresh_secs = \(.*\)$/refresh_secs = \1\nwatch_interval_secs = 1/' \
  -e "s/^interval_secs = .*/interval_secs = $PAYOUT_INTERVAL/" \
  -e "s/^confirmations = .*/confirmations = $CONFIRMATIONS/" \
  -e 's/^max_per_run = .*/max_per_run = 2100000000000000/' \
  -e 's/^max_per_day = .*/max_per_day = 2100000000000000/' "$CONFIG"
STRATUM="$(sed -n 's/^listen = "\(127\.0\.0\.1:[0-9]*\)"$/\1/p' "$CONFIG" | head -n1)"
export DEMO_RPC_URL="http://$(sed -n '/^\[rpc\]/,/^\[/s/^listen = "\(.*\)"$/\1/p' "$CONFIG")"
export DEMO_NODE_BIN="$NODE_BIN" DEMO_NODES="$NODES" DEMO_CONFIRMATIONS="$CONFIRMATIONS"
export DEMO_POOL_ADDRESS="$(sed -n 's/^payout_address = "\(.*\)"$/\1/p' "$CONFIG")"
export DEMO_MIN_PAYMENT="$(sed -n 's/^min_payment = \([0-9]*\)$/\1/p' "$CONFIG")"
export DEMO_HEIGHT0="$("$NODE_BIN/bitcoin-cli" -regtest -datadir="$NODES/node1" getblockcount)"
# demo.py's steps (waits, progress, the summary) run in the background and are waited for, so
# that a signal reaches the trap at once, not after the step.
demo_py() {
  python3 -u "$REPO/scripts/demo.py" "$@" &
  PY_PID=$!
  local status=0
  wait "$PY_PID" || status=$?
  PY_PID=""
  return "$status"
}
CLI2=("$NODE_BIN/bitcoin-cli" -regtest -datadir="$NODES/node2")

say "starting the pool (ledger in $NODES/pool-ledger, JSON-RPC on $DEMO_RPC_URL)"
"$BIN/obtc-pool" run --config "$CONFIG" > "$DEMO/pool.log" 2>&1 &
POOL_PID=$!
started "$POOL_PID"
demo_py up "$POOL_PID" "$STRATUM" 60 || { tail -n 20 "$DEMO/pool.log"; die "the pool did not start"; }

# The miners' addresses are node2's: node1's wallet is the pool's and holds only its rewards.
MINERS="$DEMO/miners.txt"
: > "$MINERS"
MINER_PIDS=()
miner() { # miner NAME WORKER THREADS
  local address
  address="$(grep "^$1 " "$MINERS" | cut -d' ' -f2 || true)"
  if [[ -z "$address" ]]; then
    address="$("${CLI2[@]}" getnewaddress)"
    echo "$1 $address" >> "$MINERS"
  fi
  "$BIN/obtc-miner" --url "$STRATUM" --user "$address.$2" --threads "$3" \
    --duration "$((MINE_CAP + 30))" > "$DEMO/miner-$1-$2.log" 2>&1 &
  MINER_PIDS+=($!)
  started "$!"
  echo "  $1 ($address), worker $2, $3 thread(s)"
}
say "mining for ${SECONDS_TO_MINE} s ($MIN_BLOCKS to $MAX_BLOCKS blocks, at most $MINE_CAP s): three miners"
if [[ $SHORT == 1 ]]; then
  miner alice rig1 1; miner bob laptop 1; miner carol rig1 1
else
  miner alice rig1 2; miner bob laptop 1; miner carol rig1 1; miner carol rig2 1
fi
demo_py mine "$SECONDS_TO_MINE" "$MIN_BLOCKS" "$MAX_BLOCKS" "$MINE_CAP" || true
kill -TERM "${MINER_PIDS[@]}" 2>/dev/null || true
wait "${MINER_PIDS[@]}" 2>/dev/null || true
forget "${MINER_PIDS[@]}"
demo_py settle "$WAIT_SECS"

say "maturing: node2 mines 100 blocks to its own wallet (outside the pool's)"
"${CLI2[@]}" generate 100 >/dev/null
demo_py wait "the chain watcher to record every found block as matured" "$WAIT_SECS" matured

say "paying: the payout process (obtc-pool payout, a process of its own, same config)"
"$BIN/obtc-pool" payout --config "$CONFIG" > "$DEMO/payout.log" 2>&1 &
PAYOUT_PID=$!
started "$PAYOUT_PID"
demo_py wait "the payments to be broadcast" "$WAIT_SECS" sent
demo_py wait "node2 to see the payments in its mempool" "$WAIT_SECS" in_mempool
echo "  node2 mines $CONFIRMATIONS block(s) for the configured depth (confirmations = $CONFIRMATIONS)"
"${CLI2[@]}" generate "$CONFIRMATIONS" >/dev/null
demo_py wait "the payments to be confirmed" "$WAIT_SECS" confirmed
kill -TERM "$PAYOUT_PID"
PAYOUT_STATUS=0
wait "$PAYOUT_PID" || PAYOUT_STATUS=$?
forget "$PAYOUT_PID"
demo_py snapshot "$DEMO/rpc-live.json"

say "stopping the pool cleanly (SIGTERM: stops Stratum, flushes the ledger)"
kill -TERM "$POOL_PID"
POOL_STATUS=0
wait "$POOL_PID" || POOL_STATUS=$?
forget "$POOL_PID"
tail -n 3 "$DEMO/pool.log" | sed 's/^/  /'

say "auditing the stopped pool's ledger (obtc-pool ledger verify / balances / dump, obtc-pool audit on a copy)"
LEDGER="$NODES/pool-ledger"
VERIFY_STATUS=0
"$BIN/obtc-pool" ledger verify --data "$LEDGER" > "$DEMO/verify.txt" 2>&1 || VERIFY_STATUS=$?
sed 's/^/  /' "$DEMO/verify.txt"
"$BIN/obtc-pool" ledger balances --data "$LEDGER" --json > "$DEMO/balances.json" || true
"$BIN/obtc-pool" ledger balances --data "$LEDGER" > "$DEMO/balances.txt" 2>&1 || true
"$BIN/obtc-pool" ledger dump --data "$LEDGER" --json > "$DEMO/dump.jsonl" || true
echo "  replay: $DEMO/balances.txt (text), $DEMO/balances.json"
# The auditor's own check, on a copy (the pool is stopped): the chain, the replay, every share's
# work, every block reward and payment on node1, and the anchors of the pool's blocks.
AUDIT_COPY="$DEMO/ledger-copy"
rm -rf "$AUDIT_COPY"
cp -r "$LEDGER" "$AUDIT_COPY"
# node1, with the credentials of the config's [node] section.
NODE_URL="$(sed -n '/^\[node\]/,/^\[/s/^url = "\(.*\)"$/\1/p' "$CONFIG")"
AUDIT_STATUS=0
"$BIN/obtc-pool" audit --data "$AUDIT_COPY" --config "$CONFIG" --node "$NODE_URL" --check-anchors \
  > "$DEMO/audit.txt" 2>&1 || AUDIT_STATUS=$?
echo "  audit: $DEMO/audit.txt (exit $AUDIT_STATUS): $(tail -n 1 "$DEMO/audit.txt")"

demo_py summary "$DEMO" "$VERIFY_STATUS" "$POOL_STATUS" "$PAYOUT_STATUS" "$(($(date +%s) - START_TIME))" "$AUDIT_STATUS"
