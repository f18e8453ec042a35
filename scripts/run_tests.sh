#!/usr/bin/env bash
# Installs kiln with its test dependencies into the active Python environment
# (use a fresh virtual environment: README, "The two commands") and runs every
# test: the C++ kernel tests (GoogleTest through CTest, then again under ASan and
# UBSan) and the Python suite (pytest, with the PyTorch parity tests).
# Needs: Python >= 3.9 with pip, a C++17 compiler, and GoogleTest (Debian's
# libgtest-dev; installed here when run as root, with Chromium for the report's
# browser test). CMake, Ninja and pybind11 come from the `test` extra. Under CI=true
# every optional dependency is required, so a missing install step fails instead
# of skipping tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: GoogleTest (required) and Chromium (the HTML report's browser
# test; it skips without it, except in CI). Installed with apt-get when root.
missing=()
[[ -f /usr/include/gtest/gtest.h ]] || missing+=(libgtest-dev)
command -v chromium > /dev/null || missing+=(chromium)
if (( ${#missing[@]} )); then
  if [[ "$(id -u)" == 0 ]]; then
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" > /dev/null
  elif [[ " ${missing[*]} " == *" libgtest-dev "* || "${CI:-}" == true ]]; then
    echo "run_tests: missing Debian packages ${missing[*]}; install them (or run as root)" >&2
    exit 1
  fi
fi

python -m pip install -q --upgrade pip > /dev/null
python -m pip install -q ".[test]"
# PyTorch (CPU build) for the parity tests: they skip without it, except in CI.
if ! python -m pip install -q "torch==2.13.0"; then
  if [[ "${CI:-}" == true ]]; then
    echo "run_tests: torch==2.13.0 could not be installed" >&2
    exit 1
  fi
  echo "run_tests: torch unavailable, parity tests will skip"
fi

echo "== C++ tests (CTest)"
cmake -S . -B build/ctest -G Ninja -DKILN_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build/ctest
ctest --test-dir build/ctest --output-on-failure -j 2

echo "== C++ tests under AddressSanitizer and UBSan"
bash scripts/asan_tests.sh

echo "== Python tests (pytest)"
# The package lives under python/, so `import kiln` finds the installed build.
python -m pytest -q -p no:cacheprovider "$@" tests
