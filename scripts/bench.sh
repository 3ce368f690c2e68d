#!/usr/bin/env bash
# Runs every benchmark (with the benchmark-only extra, e.g. litellm, at the versions uv.lock pins) and prints ratios.
# ./scripts/bench.sh [--quick] [pricing|capture|ledger|economics|serve|allocator ...]
set -euo pipefail
cd "$(dirname "$0")/.."
SYNC_EXTRAS="test bench"
source scripts/_venv.sh
LITELLM_LOCAL_MODEL_COST_MAP=True python benchmarks/run_all.py "$@"
