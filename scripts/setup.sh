#!/usr/bin/env bash
# Installs everything kybernetes needs on a Debian machine, idempotently:
#   - the Debian packages the runtime and the tests need (when run as root and any is missing);
#   - a Python virtual environment in .venv with kybernetes (editable) and its test tools.
# Usage: scripts/setup.sh            (quiet; safe to run again)
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(python3 python3-venv python3-dev gcc sqlite3 iproute2 nftables ca-certificates
      containerd runc containernetworking-plugins etcd-server etcd-client busybox-static docker-registry
      crun  # the second OCI runtime: RuntimeClass handler "crun" in the node's containerd
      apache2-utils  # htpasswd: bcrypt users for the loopback docker-registry of the private-registry tests
      wrk  # wrk: the C load generator bench.apiserver uses for GETs
      bind9-dnsutils dnsperf nsd  # dig (DNS tests); dnsperf and nsd (bench.dns: load, and the reference server)
      prometheus  # test_prometheus_scrape runs /usr/bin/prometheus itself (its own config, loopback port)
      chromium)  # the console's browser tests and bench.console drive /usr/bin/chromium through Playwright

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian's prometheus package enables and starts its own service (on :9090, scraping itself);
    # the tests run /usr/bin/prometheus themselves, so a service this script brought is stopped.
    if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
      systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
  else
    echo "setup: not root; skipping Debian packages: ${missing[*]}" >&2
  fi
fi

# The first Python >= 3.11 on PATH (pyenv's or Debian's).
PY=""
for cand in python3.11 python3 python3.12 python3.13; do
  if "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
    PY=$cand; break
  fi
done
[ -n "$PY" ] || { echo "setup: Python >= 3.11 is required" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# Playwright's wheel drives Debian's chromium (executable_path); it must never fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
stamp=.venv/.kyb-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e '.[test]'
  touch "$stamp"
fi
# The package is installed editable, so nothing compiled its modules; with PYTHONDONTWRITEBYTECODE
# set (as on these machines) every kybernetes process would compile ~300 modules from source at
# start (~0.5 s of CPU each). Up-to-date files are skipped, so this is quick when nothing changed.
.venv/bin/python -m compileall -q -j 0 src/kybernetes >/dev/null
