#!/usr/bin/env bash
# The GPU check, as one call on a lent H100/H200 (prepare it here first:
# scripts/gpu_bundle.sh, then carry .device). On that machine python3 has NumPy,
# pybind11, CMake, Ninja, pytest and CuPy; nvcc and compute-sanitizer are on the PATH.
#   bash scripts/gpu_check.sh            (logs under $OUT when set, else gpu-check/)
# 1. builds kiln with CUDA for sm_90 (scripts/dev_build.sh into build-gpu);
# 2. first things first: the whole-step capture (forward, loss, backward and the
#    optimizer inside one CUDA graph) replayed against eager steps, errors found by
#    captured kernels, the graph's private memory (tests/test_cuda_runtime.py -k capture);
# 3. runs the CUDA C++ tests, then again under compute-sanitizer's memcheck;
# 4. runs the Python CUDA tests (tests/test_cuda*.py) against the CPU backend;
# 5. runs bench/gpu.py (kiln eager and captured against PyTorch eager, same GPU).
# Steps 2, 4 and 5 have time limits (100 s, 200 s, 100 s) so the whole check stays
# under 9 minutes.
# Each step's log is kept; the summary at the end says which failed.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu-check}"
mkdir -p "$out"
status=0
step() {  # step NAME COMMAND...: runs it, logs to $out/NAME.log, records a failure
  local name=$1; shift
  echo "== $name"
  if "$@" > "$out/$name.log" 2>&1; then echo "   ok"; else echo "   FAILED (rc $?)"; status=1; fi
  tail -n 15 "$out/$name.log"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
nvcc --version | tail -n 1
if [[ -d .device/wheels ]]; then
  python3 -m pip install -q --no-index --find-links .device/wheels scipy-openblas32
fi
gtest=()
[[ -d .device/googletest ]] && gtest=(-DKILN_GTEST_SOURCE_DIR="$PWD/.device/googletest")
export CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)"
step build bash scripts/dev_build.sh build-gpu -DKILN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DPython_EXECUTABLE="$(command -v python3)" "${gtest[@]}"
step capture env PYTHONPATH=build-gpu/stage timeout 100 python3 -m pytest -q \
  -p no:cacheprovider -rf tests/test_cuda_runtime.py -k "capture or graph"
step cuda_cpp_tests build-gpu/kiln_cuda_tests
step memcheck compute-sanitizer --tool memcheck --error-exitcode 1 build-gpu/kiln_cuda_tests
shopt -s nullglob
cuda_py_tests=(tests/test_cuda*.py)
xdist=()  # the op table's thousands of small cases, over 8 processes where xdist is there
python3 -c "import xdist" 2>/dev/null && xdist=(-n 8)
if (( ${#cuda_py_tests[@]} )); then
  step cuda_py_tests env PYTHONPATH=build-gpu/stage timeout 200 python3 -m pytest -q \
    -p no:cacheprovider -rf "${xdist[@]}" "${cuda_py_tests[@]}"
fi
step bench_gpu env PYTHONPATH=build-gpu/stage timeout 100 python3 bench/gpu.py --rounds 5 \
  --steps 20
echo "== gpu_check: $([[ $status == 0 ]] && echo passed || echo FAILED)"
exit $status
