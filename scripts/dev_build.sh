#!/usr/bin/env bash
# Builds kiln in place for development: the extension and the C++ tests into
# BUILD_DIR (default build-dev), and a package tree at BUILD_DIR/stage that
# links python/kiln's files beside the fresh kiln/_C. Then:
#   PYTHONPATH=BUILD_DIR/stage python -m pytest tests
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-dev}"
shift || true
cmake -S . -B "$build" -G Ninja -DKILN_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release "$@" > "$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
rm -f "$build.configure.log"
cmake --build "$build"
stage="$build/stage/kiln"
rm -rf "$build/stage"
mkdir -p "$stage"
for entry in python/kiln/*; do
  [[ "$(basename "$entry")" == __pycache__ ]] && continue
  ln -s "$(realpath "$entry")" "$stage/"
done
cp "$build"/_C*.so "$stage/"
echo "PYTHONPATH=$build/stage"
