#!/usr/bin/env bash
# Runs the main job: `otel-costattr demo` on the embedded default (DuckDB ledger + report.html).
# Installs only what the demo needs (the `demo` extra, at the versions uv.lock pins) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
SYNC_EXTRAS="demo"
SYNC_INEXACT=1
source scripts/_venv.sh
otel-costattr demo "$@"
