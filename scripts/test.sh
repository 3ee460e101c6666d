#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set up, then pytest (extra args pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
