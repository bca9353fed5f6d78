#!/usr/bin/env bash
# Installs what is needed (scripts/setup.sh), then starts a single-node cluster on the embedded store.
# Extra arguments go to `kyb server`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/kyb server "$@"
