#!/usr/bin/env bash
# Builds the JavaScript engine guest (engines/js) reproducibly and copies it to
# engines/js/dist/wws-js-engine.wasm, the file wws embeds.
#
#   scripts/build-js-engine.sh [--out FILE] [--target-dir DIR]
#
# Installs what it needs when missing: Debian's clang, llvm (llvm-ar) and wasi-libc (QuickJS'
# C code is compiled with them), patch, and the Rust wasm32-wasip1 target. The build is
# bit-reproducible: the C side maps the target dir away with -ffile-prefix-map and the Rust
# side remaps the source paths, so the same inputs give the same sha256 on any machine with
# the same toolchain versions (scripts/check-js-engine.sh relies on it): the committed engine
# was built with rustc 1.95.0 and Debian 12's clang 14 and wasi-libc 0.0~git20220510; another
# rustc or clang gives another (equally valid) binary.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
crate="$repo/engines/js"
out="$crate/dist/wws-js-engine.wasm"
target_dir="${CARGO_TARGET_DIR:-/root/.cache/wws/target-js}"

while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --target-dir) target_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-js-engine: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

need_apt=()
command -v clang >/dev/null 2>&1 || need_apt+=(clang)
command -v llvm-ar >/dev/null 2>&1 || need_apt+=(llvm)
command -v patch >/dev/null 2>&1 || need_apt+=(patch)
[ -f /usr/include/wasm32-wasi/stdlib.h ] || need_apt+=(wasi-libc)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "build-js-engine: installing ${need_apt[*]} with apt-get" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang llvm wasi-libc patch >/dev/null
fi
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
  echo "build-js-engine: adding the Rust target wasm32-wasip1" >&2
  rustup target add wasm32-wasip1
fi

mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"

# QuickJS with its stack check kept on WASI and immortal snapshot objects (engines/js/patches/):
# the registry's rquickjs-sys, checked against the checksum the lock file had, unpacked into
# engines/js/vendor/ and patched; engines/js/Cargo.toml points [patch.crates-io] at it. Redone
# when a patch changes.
vendor="$crate/vendor/rquickjs-sys"
# Applied in this order (each patch says why).
patches=("$crate/patches/rquickjs-sys-wasi-stack-limit.patch" "$crate/patches/quickjs-immortal-snapshot-objects.patch" "$crate/patches/quickjs-arena-bypass.patch" "$crate/patches/quickjs-instance-initial-size.patch" "$crate/patches/quickjs-keep-request-garbage.patch")
rquickjs_sys_sha256=cee271d0eeba64f0915b846cb7ae02e16faf3dfdffdca91731101d9d30fe3423
stamp="$(cat "${patches[@]}" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$vendor/.wws-patch" 2>/dev/null)" != "$stamp" ]; then
  echo "build-js-engine: unpacking rquickjs-sys 0.14.0 and applying engines/js/patches/" >&2
  fetch="$(mktemp -d)"
  mkdir -p "$fetch/src"
  : > "$fetch/src/lib.rs"
  printf '[package]\nname = "fetch-rquickjs-sys"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\nrquickjs-sys = "=0.14.0"\n' > "$fetch/Cargo.toml"
  cargo fetch --quiet --manifest-path "$fetch/Cargo.toml"
  archive="$(ls "$cargo_home"/registry/cache/*/rquickjs-sys-0.14.0.crate | head -1)"
  echo "$rquickjs_sys_sha256  $archive" | sha256sum --check --quiet
  rm -rf "$vendor" "$fetch"
  mkdir -p "$crate/vendor"
  tar -xzf "$archive" -C "$crate/vendor"
  mv "$crate/vendor/rquickjs-sys-0.14.0" "$vendor"
  for patch_file in "${patches[@]}"; do
    patch --quiet --directory="$vendor" -p1 < "$patch_file"
  done
  echo "$stamp" > "$vendor/.wws-patch"
fi
# rquickjs-sys' build script reruns only when its env vars change: a target dir that built
# other patches would keep their C code.
if [ "$(cat "$target_dir/.wws-patch" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$target_dir"/wasm32-wasip1/release/build/rquickjs-sys-* "$target_dir"/wasm32-wasip1/release/.fingerprint/rquickjs-sys-*
  echo "$stamp" > "$target_dir/.wws-patch"
fi

# Reproducibility: no absolute path of this machine may reach the binary.
export RQUICKJS_SYS_NO_WASI_SDK=1
export CC_wasm32_wasip1=clang
export AR_wasm32_wasip1=llvm-ar
export CFLAGS_wasm32_wasip1="-nostdlibinc -isystem /usr/include/wasm32-wasi -ffile-prefix-map=$target_dir=/target -ffile-prefix-map=$cargo_home=/cargo -ffile-prefix-map=$crate=/engine"

export RUSTFLAGS="--remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$crate=/engine --remap-path-prefix=$target_dir=/target"
export SOURCE_DATE_EPOCH=0

cd "$crate"
nice cargo build --release --locked --target wasm32-wasip1 --target-dir "$target_dir"

built="$target_dir/wasm32-wasip1/release/wws-js-engine.wasm"
mkdir -p "$(dirname "$out")"
cp "$built" "$out.tmp"
mv "$out.tmp" "$out"
echo "build-js-engine: built with $(rustc --version | cut -d' ' -f1-2), $(clang --version | head -1)" >&2
echo "build-js-engine: $(sha256sum "$out" | cut -d' ' -f1)  $out ($(stat -c %s "$out") bytes)"
