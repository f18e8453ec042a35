#!/usr/bin/env bash
# Builds the C++ kernel tests with AddressSanitizer and UBSan in their own build
# directory (default build/asan) and runs them once: out-of-bounds reads and
# writes, use-after-free, leaks and undefined behaviour in the kernels fail the
# run. Only the test binary is built (not the Python extension), to stay fast.
#   scripts/asan_tests.sh [BUILD_DIR] [extra gtest args, e.g. --gtest_filter='Augment*']
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build/asan}"
shift || true

cmake -S . -B "$build" -G Ninja -DKILN_SANITIZE=ON -DKILN_BUILD_TESTS=ON \
  -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -fno-math-errno" > "$build.configure.log" 2>&1 \
  || { cat "$build.configure.log"; exit 1; }
rm -f "$build.configure.log"
cmake --build "$build" --target kiln_tests

# UBSan reports are errors (halt_on_error); ASan also checks for leaks at exit.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
"$build/kiln_tests" --gtest_brief=1 "$@"
