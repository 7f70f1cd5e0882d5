#!/usr/bin/env bash
# Rebuilds the JavaScript engine from source in a fresh target dir and fails when the result
# differs from the committed engines/js/dist/wws-js-engine.wasm. CI runs it, so the binary
# that wws embeds always matches engines/js/ and the build script.
#
#   scripts/check-js-engine.sh
#
# On a mismatch: run scripts/build-js-engine.sh and commit engines/js/dist/wws-js-engine.wasm.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
committed="$repo/engines/js/dist/wws-js-engine.wasm"
if [ ! -f "$committed" ]; then
  echo "check-js-engine: $committed is missing; run scripts/build-js-engine.sh and commit it" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/wws-js-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$repo/scripts/build-js-engine.sh" --target-dir "$work/target" --out "$work/wws-js-engine.wasm"

want="$(sha256sum "$committed" | cut -d' ' -f1)"
got="$(sha256sum "$work/wws-js-engine.wasm" | cut -d' ' -f1)"
if [ "$want" != "$got" ]; then
  echo "check-js-engine: MISMATCH: engines/js/dist/wws-js-engine.wasm has sha256 $want," >&2
  echo "check-js-engine: but building engines/js from source gives $got." >&2
  echo "check-js-engine: if engines/js changed, run scripts/build-js-engine.sh and commit engines/js/dist/wws-js-engine.wasm;" >&2
  echo "check-js-engine: if nothing changed, compare the toolchain (rustc 1.95.0, Debian clang 14) with the one named above" >&2
  exit 1
fi
echo "check-js-engine: OK, the committed engine matches its source (sha256 $got)"
