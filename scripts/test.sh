#!/usr/bin/env bash
# Installs what is needed (scripts/setup.sh), then runs lint, type checks, the import layers and
# the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. .venv/bin/activate
echo "== ruff"; ruff check src tests bench
echo "== mypy"; mypy
echo "== lint-imports"; lint-imports  # the layers of docs/architecture.md (pyproject.toml)
echo "== pytest"; pytest -q -ra --durations=30 "$@"
