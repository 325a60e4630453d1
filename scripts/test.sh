#!/usr/bin/env bash
# Runs every kube-lite test on this machine, installing what they need first.
#   sudo scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export KUBECTL="$PWD/.tools/kubectl"
# Integration tests start the real binaries, so build them all first.
cargo build --workspace --bins
cargo test --workspace -- --test-threads=4
