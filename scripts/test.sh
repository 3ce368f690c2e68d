#!/usr/bin/env bash
# Runs the whole test suite. Creates .venv and installs everything the tests need on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
python -m pytest "$@"
