#!/usr/bin/env bash
# Prepares .device/ on this (networked) machine for scripts/gpu_check.sh on the lent
# GPU machine, which reaches no package index: the scipy-openblas32 wheel for its
# Python (3.12, x86-64) and GoogleTest's sources (it has no libgtest-dev). Carry
# .device with the call (it is git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .device
mkdir -p .device/wheels
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux2014_x86_64 -d .device/wheels "scipy-openblas32>=0.3.27"
[[ -d /usr/src/googletest ]] || { echo "gpu_bundle: needs /usr/src/googletest (libgtest-dev)" >&2; exit 1; }
cp -r /usr/src/googletest .device/googletest
du -sh .device
