#!/usr/bin/env bash
# Builds the example app's Rust workers (examples/rust) for wasm32-wasip1 and copies them into
# examples/app under their route names. Run it before `wws examples/app`.
#
# The target dir defaults to examples/rust/target; set CARGO_TARGET_DIR to share one.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
app="$here/app"
target_dir="${CARGO_TARGET_DIR:-$here/rust/target}"

if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed | grep -qx wasm32-wasip1; then
    rustup target add wasm32-wasip1
  fi
fi

# A 64 KiB shadow stack instead of Rust's 1 MiB, and 2 MiB of initial memory so a request never grows
# it (both make the per-request instance cheaper to reset; see sdk/rust/README.md).
env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="-C link-arg=-zstack-size=65536 -C link-arg=--initial-memory=2097152" \
  cargo build --release --target wasm32-wasip1 \
  --manifest-path "$here/rust/Cargo.toml" --target-dir "$target_dir"

out="$target_dir/wasm32-wasip1/release"
# crate name -> route file inside examples/app
routes=(
  "hello:index.wasm"
  "params:api/[id].wasm"
  "counter:counter.wasm"
)
for route in "${routes[@]}"; do
  crate="${route%%:*}"
  file="$app/${route#*:}"
  mkdir -p "$(dirname "$file")"
  cp "$out/$crate.wasm" "$file"
  echo "built $crate -> ${file#"$here"/}"
done
