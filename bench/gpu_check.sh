#!/usr/bin/env bash
# Torch-only timing of LGCD's reverse process, training step and encoder forward,
# on CUDA when present, else CPU. Runs from any directory; finishes in minutes.
# Needs only torch + numpy: PYTHON=python3 bash bench/gpu_check.sh [--device cuda]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
exec timeout 540 "$PYTHON" -m bench.gpu_check "$@"
