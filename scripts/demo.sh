#!/usr/bin/env bash
# Runs the main job: `otel-costattr demo` on the embedded default (DuckDB ledger + report.html).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
otel-costattr demo "$@"
