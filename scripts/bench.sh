#!/usr/bin/env bash
# Runs every benchmark (installs the benchmark-only extra, e.g. litellm, on first use) and prints ratios.
# ./scripts/bench.sh [--quick] [pricing|capture|ledger|economics|serve ...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
if ! .venv/bin/python -c "import litellm" 2>/dev/null; then
  .venv/bin/python -m pip install -q -e ".[test,bench]"
fi
LITELLM_LOCAL_MODEL_COST_MAP=True python benchmarks/run_all.py "$@"
