"""The console (`kyb console`) and the browser that tests and benchmarks drive it with.

Also reachable as ``kybernetes.testing.ConsoleProcess``, ``CHROMIUM``, ``CHROMIUM_ARGS`` and
``browser_missing``.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kybernetes.testing import stop_process

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium (scripts/setup.sh installs it); Playwright drives it through ``executable_path``
and never downloads a browser of its own (``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1``)."""

CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
"""Headless, as root (no sandbox), and silent: no update checks, sync or other traffic of its own, so
the only requests it makes are the page's, to the console on loopback. Each launch also gets a
fresh user-data-dir (Playwright's persistent context in a temporary directory)."""


def browser_missing() -> str | None:
    """Why this machine cannot drive a browser (no Debian chromium, no playwright wheel), or None."""
    if not os.path.exists(CHROMIUM):
        return f"needs Debian's chromium at {CHROMIUM} (scripts/setup.sh installs it as root)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "needs the playwright wheel (the test extra: pip install -e '.[test]')"
    return None


@dataclass
class ConsoleProcess:
    """A ``kyb console`` child process on a free loopback port, and the URL it printed.

    ``kyb console`` prints exactly one line to stdout, ``Console: http://127.0.0.1:PORT/?token=T``
    (its log goes to stderr, here to ``log_path``); :meth:`start` returns once that line is read.
    """

    proc: subprocess.Popen[bytes]
    url: str
    """The login URL with the one-time token (``GET`` it to get the session cookie)."""
    log_path: Path

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` (no path, no token)."""
        return self.url.split("/?", 1)[0]

    @property
    def token(self) -> str:
        """The token, also usable as ``Authorization: Bearer TOKEN`` by scripts."""
        return self.url.rsplit("token=", 1)[1]

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    @classmethod
    def start(cls, kubeconfig: Path, log_path: Path, *extra: str, timeout: float = 30.0) -> ConsoleProcess:
        args = [sys.executable, "-m", "kybernetes.cli", "console", "--kubeconfig", str(kubeconfig),
                "--port", "0", *extra]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        try:
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or proc.poll() is not None:
                    raise RuntimeError(f"kyb console printed no URL in {timeout}s (exit code {proc.poll()}; "
                                       f"stdout {line!r}):\n{_tail(log_path)}")
                ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
                if ready:
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:  # stdout closed: the process is ending; poll() says so next round
                        time.sleep(0.05)
                    line += chunk
        except BaseException:
            stop_process(proc, 10)
            raise
        text = line.decode(errors="replace").strip()
        if not text.startswith("Console: http://"):
            stop_process(proc, 10)
            raise RuntimeError(f"kyb console printed {text!r}, not 'Console: URL'")
        return cls(proc, text.removeprefix("Console: "), log_path)

    def log(self) -> str:
        return _tail(self.log_path)

    def stop(self, timeout: float = 15.0) -> int:
        rc = stop_process(self.proc, timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return rc

    def __enter__(self) -> ConsoleProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _tail(path: Path, size: int = 5000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


