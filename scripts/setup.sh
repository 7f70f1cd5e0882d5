#!/usr/bin/env bash
# Installs what building and testing wws needs on a fresh Debian machine: the wasm Rust
# targets, and the C toolchain + wasi-libc used to rebuild the JS engine. Idempotent and quick
# when everything is present.
set -euo pipefail

if command -v rustup >/dev/null 2>&1; then
  for target in wasm32-wasip1 wasm32-wasip2; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target"
  done
fi

missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
command -v llvm-ar >/dev/null 2>&1 || missing+=(llvm)
[ -f /usr/include/wasm32-wasi/stdlib.h ] || missing+=(wasi-libc)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v git >/dev/null 2>&1 || missing+=(git)
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
