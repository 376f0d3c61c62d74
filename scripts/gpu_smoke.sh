#!/usr/bin/env bash
# One command for the GPU smoke test (scripts/gpu_smoke.py: every CUDA path once, one line per step).
#   scripts/gpu_smoke.sh              on a machine with CUDA
#   scripts/gpu_smoke.sh --dry-run    the same steps on the CPU, shrunk
# The whole run is capped at ATLAS_SMOKE_SECONDS (default 900 s): the script skips the steps it has no time for,
# and `timeout` ends it 60 s after the cap whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
SECONDS_CAP="${ATLAS_SMOKE_SECONDS:-900}"
if [[ ! -x "$PYTHON" ]]; then
  echo "gpu_smoke: $PYTHON not found: run 'make venv' first (or set PYTHON)" >&2
  exit 2
fi
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
exec timeout --kill-after=10 "$((SECONDS_CAP + 60))" "$PYTHON" scripts/gpu_smoke.py --seconds "$SECONDS_CAP" "$@"
