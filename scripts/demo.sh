#!/usr/bin/env bash
# The regtest demo: two real regtest nodes (Bitcoin SV, SHA-256d), the pool, two CPU miners with
# their own payout addresses; blocks are found through the pool and land on the node's chain;
# 100 more blocks (mined by node2, outside the pool's wallet) mature them, the chain watcher
# records it, and the payout process pays both miners from the pool's wallet; the payments are
# checked on the node. Then the pool is stopped cleanly and its ledger is verified and replayed
# into per-block credits, balances and payments. Everything runs on this machine, on loopback,
# and is stopped at the end.
#
#   scripts/demo.sh [SECONDS]      mine for SECONDS (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
SECONDS_TO_MINE="${1:-60}"
DEMO="$REPO/demo-data"
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "building obtc-pool and obtc-miner (release)"
cargo build --release --bin obtc-pool --bin obtc-miner

say "installing the regtest node (Bitcoin SV 1.0.13 from PyPI)"
NODE_BIN="$(scripts/nodes.sh install)"
CLI=("$NODE_BIN/bitcoin-cli" -regtest -datadir="$DEMO/nodes/node1")
CLI2=("$NODE_BIN/bitcoin-cli" -regtest -datadir="$DEMO/nodes/node2")

POOL_PID=""
PAYOUT_PID=""
cleanup() {
  [[ -n "$PAYOUT_PID" ]] && kill "$PAYOUT_PID" 2>/dev/null || true
  [[ -n "$POOL_PID" ]] && kill "$POOL_PID" 2>/dev/null || true
  scripts/nodes.sh stop "$DEMO/nodes" >/dev/null 2>&1 || true
}
trap cleanup EXIT

say "starting two linked regtest nodes"
rm -rf "$DEMO"
mkdir -p "$DEMO"
STRATUM_PORT="${STRATUM_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}" \
  scripts/nodes.sh start "$DEMO/nodes" | tee "$DEMO/nodes.txt"
CONFIG="$DEMO/nodes/pool.toml"
# A share every ~1 s per miner and a harder regtest block threshold: many shares per block, so the
# replayed credits show the PPLNS split between the two miners.
sed -i -e 's/^target_share_secs = .*/target_share_secs = 1/' \
  -e 's/^pool_block_difficulty = .*/pool_block_difficulty = 0.02/' "$CONFIG"
STRATUM="$(sed -n 's/^listen = "\(127\.0\.0\.1:[0-9]*\)"$/\1/p' "$CONFIG" | head -n1)"
HEIGHT0="$("${CLI[@]}" getblockcount)"

say "starting the pool (ledger in $DEMO/nodes/pool-ledger)"
"$BIN/obtc-pool" run --config "$CONFIG" > "$DEMO/pool.log" 2>&1 &
POOL_PID=$!
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/${STRATUM%:*}/${STRATUM#*:}") 2>/dev/null; then break; fi
  sleep 0.1
done

RPC_URL="http://$(sed -n '/^\[rpc\]/,/^\[/s/^listen = "\(.*\)"$/\1/p' "$CONFIG")"
# One call to the pool's JSON-RPC (read methods need no token), printed as JSON.
pool_rpc() {
  python3 - "$RPC_URL" "$1" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], json.dumps({"jsonrpc": "2.0", "id": 1, "method": sys.argv[2], "params": []}).encode(), {"Content-Type": "application/json"})
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=10))["result"]))
PY
}
# Waits (at most $2 seconds) until the Python expression $3 holds for `payout_state` as `s`.
wait_state() {
  local what="$1" secs="$2" expr="$3"
  for _ in $(seq 1 "$((secs * 2))"); do
    if pool_rpc payout_state | python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($expr) else 1)"; then
      return 0
    fi
    sleep 0.5
  done
  echo "timed out waiting for $what" >&2
  return 1
}

# The miners' addresses are node2's: node1's wallet is the pool's and holds only its rewards.
ALICE="$("${CLI2[@]}" getnewaddress)"
BOB="$("${CLI2[@]}" getnewaddress)"
say "mining for ${SECONDS_TO_MINE}s: alice ($ALICE, 2 threads) and bob ($BOB, 1 thread)"
"$BIN/obtc-miner" --url "$STRATUM" --user "$ALICE.rig1" --threads 2 --duration "$SECONDS_TO_MINE" &
MINER_A=$!
"$BIN/obtc-miner" --url "$STRATUM" --user "$BOB.laptop" --threads 1 --duration "$SECONDS_TO_MINE"
wait "$MINER_A"

HEIGHT1="$("${CLI[@]}" getblockcount)"
say "the node's chain grew from height $HEIGHT0 to $HEIGHT1"

say "maturing: node2 mines 100 blocks to its own wallet (outside the pool's)"
"${CLI2[@]}" generate 100 >/dev/null
wait_state "the chain watcher to mature the pool's blocks" 60 'len(s["payable"]) > 0'
echo "  payable now (pool's RPC, payout_state):"
pool_rpc payout_state | python3 -c '
import json, sys
s = json.load(sys.stdin)
for b in s["payable"]:
    print("    %s  %d sat" % (b["address"], b["payable"]))
print("    (ledger seq %s)" % s["ledger"]["seq"])'
echo "  pool's wallet balance (node1): $("${CLI[@]}" getbalance) (matured coinbases only)"

say "starting the payout process (obtc-pool payout: a process of its own, same config)"
"$BIN/obtc-pool" payout --config "$CONFIG" > "$DEMO/payout.log" 2>&1 &
PAYOUT_PID=$!
wait_state "the payments to be broadcast" 60 'len(s["open_payments"]) > 0 and all(p["status"] == "sent" or p["status"] == "Sent" for p in s["open_payments"])'
# node2 mines the confirmations, once the transactions reached its mempool (relay takes a moment).
TXIDS="$(pool_rpc payout_state | python3 -c 'import json,sys; print(" ".join(p["txid"] for p in json.load(sys.stdin)["open_payments"]))')"
for _ in $(seq 1 60); do
  MEMPOOL="$("${CLI2[@]}" getrawmempool)"
  missing=0
  for t in $TXIDS; do [[ "$MEMPOOL" == *"$t"* ]] || missing=1; done
  [[ $missing == 0 ]] && break
  sleep 0.5
done
echo "  sent ($TXIDS); node2 mines 2 blocks for the configured depth (confirmations = 2)"
"${CLI2[@]}" generate 2 >/dev/null
POOL_ADDRESS="$(sed -n 's/^payout_address = "\(.*\)"$/\1/p' "$CONFIG")"
wait_state "the payments to be confirmed" 60 'not s["open_payments"] and not [b for b in s["payable"] if b["payable"] >= 100000 and b["address"] != "'"$POOL_ADDRESS"'"]'
echo "  confirmed; the pool fee stays in the pool's wallet (its address is the wallet's: never paid out)"
kill -INT "$PAYOUT_PID"; wait "$PAYOUT_PID" || true; PAYOUT_PID=""
tail -n 4 "$DEMO/payout.log"

say "stopping the pool cleanly (SIGINT flushes the ledger)"
kill -INT "$POOL_PID"
wait "$POOL_PID" || true
POOL_PID=""
tail -n 5 "$DEMO/pool.log"

LEDGER="$DEMO/nodes/pool-ledger"
say "auditor: obtc-pool ledger verify"
"$BIN/obtc-pool" ledger verify --data "$LEDGER"
say "auditor: obtc-pool ledger head"
"$BIN/obtc-pool" ledger head --data "$LEDGER"
say "blocks the pool found (BlockCandidate, then the node's verdict BlockFound), checked against the node"
"$BIN/obtc-pool" ledger dump --data "$LEDGER" --json | python3 -c '
import json, subprocess, sys
cli = sys.argv[1:]
found = 0
for line in sys.stdin:
    rec = json.loads(line)
    ev = rec["event"]
    if "BlockFound" in ev:
        b = ev["BlockFound"]
        on_chain = subprocess.run(cli + ["getblockhash", str(b["height"])], capture_output=True, text=True).stdout.strip()
        mark = "on chain" if on_chain == b["block_id"] else "off the best chain: lost the race at its height (the chain watcher orphans it)"
        print("  height %-4d %s  finder %s.%s  reward %s sat  %s" % (b["height"], b["block_id"], b["finder"], b["worker"], b["reward"], mark))
        found += 1
print("  %d blocks found through the pool" % found)
' "${CLI[@]}"
say "auditor: replayed credits and balances (obtc-pool ledger balances)"
"$BIN/obtc-pool" ledger balances --data "$LEDGER"
say "payments in the ledger, checked on the node: each miner received exactly what the ledger says"
"$BIN/obtc-pool" ledger dump --data "$LEDGER" --json | python3 -c '
import json, subprocess, sys
cli1, cli2 = sys.argv[1].split("|"), sys.argv[2].split("|")
paid, txids, rewards, matured, fees = {}, {}, {}, set(), 0
for line in sys.stdin:
    ev = json.loads(line)["event"]
    if "BlockFound" in ev:
        rewards[ev["BlockFound"]["block_id"]] = ev["BlockFound"]["reward"]
    elif "BlockMatured" in ev:
        matured.add(ev["BlockMatured"]["block_id"])
    elif "BlockOrphaned" in ev:
        matured.discard(ev["BlockOrphaned"]["block_id"])
    elif "PaymentSent" in ev:
        fees += ev["PaymentSent"]["network_fee"]
    elif "PaymentPrepared" in ev:
        p = ev["PaymentPrepared"]
        txids[p["payment_id"]] = (None, p["outputs"])
    elif "PaymentConfirmed" in ev:
        c = ev["PaymentConfirmed"]
        _, outputs = txids[c["payment_id"]]
        txids[c["payment_id"]] = (c["txid"], outputs)
        tx = json.loads(subprocess.run(cli1 + ["gettransaction", c["txid"]], capture_output=True, text=True).stdout)
        print("  payment %d  txid %s  %d confirmations on node1, fee %s" % (c["payment_id"], c["txid"], tx["confirmations"], tx["fee"]))
        for o in outputs:
            paid[o["address"]] = paid.get(o["address"], 0) + o["amount"]
bad = 0
for address, amount in sorted(paid.items()):
    got = round(float(subprocess.run(cli2 + ["getreceivedbyaddress", address, "1"], capture_output=True, text=True).stdout) * 1e8)
    mark = "ok" if got == amount else "MISMATCH"
    bad += got != amount
    print("  %s  ledger paid %d sat, node2 received %d sat  %s" % (address, amount, got, mark))
expected = sum(rewards[b] for b in matured) - sum(paid.values()) - fees
wallet = round(float(subprocess.run(cli1 + ["getbalance"], capture_output=True, text=True).stdout) * 1e8)
mark = "ok" if wallet == expected else "MISMATCH"
bad += wallet != expected
print("  pool wallet (node1) %d sat == matured rewards - payments - network fees = %d sat  %s" % (wallet, expected, mark))
if not paid:
    print("  no payment confirmed"); sys.exit(1)
sys.exit(1 if bad else 0)
' "$(IFS='|'; echo "${CLI[*]}")" "$(IFS='|'; echo "${CLI2[*]}")"
echo
echo "Demo data kept in $DEMO (nodes stopped); logs: $DEMO/pool.log, $DEMO/payout.log."
