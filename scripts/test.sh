#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, the committed JS engine against its source,
# the host workspace (unit + end-to-end tests against the real `wws` binary), and the guest SDK.
#
#   scripts/test.sh
#
# End-to-end tests build their guest fixtures from source (tests/fixtures), build a runtime
# repository from interpreters fetched from the package registries (runtimes/), and serve it
# on 127.0.0.1. Nothing reaches any other network.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
# Builds outside the clone so CI and later runs reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wws/target}"

"$repo/scripts/setup.sh"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (host workspace)"
cargo clippy --workspace --all-targets -- -D warnings

step "JS engine: committed binary matches its source"
"$repo/scripts/check-js-engine.sh"

step "Rust SDK: clippy and tests"
cargo clippy --manifest-path sdk/rust/Cargo.toml --workspace --all-targets --target-dir "$CARGO_TARGET_DIR/sdk" -- -D warnings
cargo test --manifest-path sdk/rust/Cargo.toml --workspace --target-dir "$CARGO_TARGET_DIR/sdk"

step "host workspace tests (unit + end-to-end)"
cargo test --workspace
