#!/usr/bin/env bash
# Retakes the README's console screenshots (docs/images/console-*.png) with the console's browser
# tests, which run it against a real `kyb server` with its node: as root, after scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
KYB_ARTIFACTS="$out" .venv/bin/python -m pytest -q -p no:cacheprovider tests/console/test_browser_console.py
cp "$out/console/architecture-busy.png" docs/images/console-architecture.png
cp "$out/console/journey-deployment.png" docs/images/console-journey.png
echo "docs/images/console-architecture.png and docs/images/console-journey.png updated"
