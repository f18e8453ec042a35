#!/usr/bin/env bash
# Installs kiln with its test dependencies and runs every test: the C++ kernel
# tests (GoogleTest through CTest) and the Python suite (pytest, with the
# PyTorch parity tests). Works on a fresh machine; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -f /usr/include/gtest/gtest.h ]]; then
  if [[ "$(id -u)" == 0 ]]; then
    apt-get update -qq && apt-get install -y -qq libgtest-dev > /dev/null
  else
    echo "run_tests: GoogleTest missing; install Debian's libgtest-dev (or run as root)" >&2
    exit 1
  fi
fi

python -m pip install -q --upgrade pip > /dev/null
python -m pip install -q ".[test]"
# PyTorch (CPU build) for the parity tests; they skip if it cannot be installed.
python -m pip install -q "torch==2.13.0" || echo "run_tests: torch unavailable, parity tests will skip"

echo "== C++ tests (CTest)"
cmake -S . -B build/ctest -G Ninja -DKILN_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/ctest
ctest --test-dir build/ctest --output-on-failure -j 2

echo "== C++ tests under AddressSanitizer and UBSan"
bash scripts/asan_tests.sh

echo "== Python tests (pytest)"
# The package lives under python/, so `import kiln` finds the installed build.
python -m pytest -q -p no:cacheprovider "$@" tests
