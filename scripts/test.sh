#!/usr/bin/env bash
# Installs what is needed (scripts/setup.sh), then runs lint, type checks and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. .venv/bin/activate
echo "== ruff"; ruff check src tests bench
echo "== mypy"; mypy
echo "== pytest"; pytest -q -ra "$@"
