#!/usr/bin/env bash
# Runs every kube-lite test on this machine, installing what they need first.
#   sudo scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export KUBECTL="$PWD/.tools/kubectl"
# Incremental compilation only pays off when editing; on a clean machine it
# doubles the target directory.
export CARGO_INCREMENTAL=0
# Integration tests start the real binaries (target/debug/apiserver, ...).
# `cargo test --no-run` builds them with the same features as the tests, so
# every dependency is compiled once; a separate `cargo build` would compile
# many of them twice (dev-dependencies change their features).
cargo test --workspace --no-run
for bin in apiserver controller nodeagent kubectl-lite e2e; do
    [ -x "target/debug/$bin" ] || { echo "test.sh: target/debug/$bin was not built" >&2; exit 1; }
done
# --no-fail-fast: one failure does not hide the other crates' results.
cargo test --workspace --no-fail-fast -- --test-threads=4
