#!/usr/bin/env bash
# Runs the whole test suite. Makes .venv hold exactly what uv.lock pins for the `test` extra (and .venv-phoenix its
# `phoenix` group), then runs pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
SYNC_EXTRAS="test"
source scripts/_venv.sh
# Arize Phoenix, the tests' real trace backend, runs from its own environment: its releases since 20.4 require
# anthropic<2 (pyproject.toml, group `phoenix`). tests/integration/phoenix_support.py starts it from there.
_sync_env .venv-phoenix --only-group phoenix
export OTEL_COSTATTR_PHOENIX_PYTHON="$PWD/.venv-phoenix/bin/python"
python -m pytest "$@"
