"""A real browser on a running console, for the console's browser tests (``test_browser_*.py``).

:func:`console_ui` starts ``kyb console`` against a cluster's kubeconfig, launches Debian's Chromium
headless through Playwright (``executable_path``, a fresh user-data-dir; see
:data:`kybernetes.testing.CHROMIUM_ARGS`), opens the token URL (the console sets its session cookie
and redirects to ``/``) and hands back a :class:`ConsoleUI`: the page plus helpers that find things
by the UI's ``data-testid`` hooks (docs/console.md, CONSOLE contract) and save screenshots.

Screenshots go to :func:`artifacts_dir`: ``$KYB_ARTIFACTS/console`` when ``KYB_ARTIFACTS`` is set
(CI keeps that directory), else a temporary directory; its path is printed on the terminal either
way. A test may skip only outside CI (:func:`require_browser`).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kybernetes.testing import CHROMIUM, CHROMIUM_ARGS, ConsoleProcess, browser_missing

if TYPE_CHECKING:  # playwright is imported when a browser starts, after require_browser()
    from playwright.sync_api import BrowserContext, Locator, LocatorAssertions, Page

VIEWPORT = {"width": 1440, "height": 900}
WAIT_MS = 30_000  # the longest a page may take to show what the cluster already has


def require_browser() -> None:
    """Skip unless Chromium and Playwright are here; on CI (``CI`` set) their absence fails."""
    reason = browser_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI installs the browser with scripts/setup.sh: {reason}")
        pytest.skip(f"outside CI, and this machine lacks the browser: {reason}")


def artifacts_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go (``$KYB_ARTIFACTS/console`` or a temporary directory), printed on the
    terminal so that a person (or CI's log) can find them."""
    root = os.environ.get("KYB_ARTIFACTS")
    path = Path(root) / "console" if root else tmp_path_factory.mktemp("console-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    line = f"console screenshots: {path}"
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # past pytest's capture, onto the terminal
            reporter.write_line(f"\n{line}")
    else:
        print(line)
    return path


def expect(locator: Locator) -> LocatorAssertions:
    """Playwright's auto-waiting assertions (imported here: a machine without playwright skips)."""
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


@dataclass
class ConsoleUI:
    """The logged-in page of a running console, and where its screenshots go."""

    console: ConsoleProcess
    context: BrowserContext
    page: Page
    artifacts: Path

    def goto(self, route: str) -> None:
        """Show ``route`` (a hash route such as ``#/pods?ns=x``) as a person following a link would."""
        self.page.goto(f"{self.console.base}/{route}")

    def testid(self, testid: str) -> Locator:
        return self.page.get_by_test_id(testid)

    def rows(self, namespace: str, name_prefix: str = "") -> Locator:
        """The list rows (``row-<namespace>-<name>``) of objects in ``namespace`` whose names start
        with ``name_prefix``."""
        return self.page.locator(f'[data-testid^="row-{namespace}-{name_prefix}"]')

    def row_names(self, namespace: str, name_prefix: str = "") -> list[str]:
        ids = self.rows(namespace, name_prefix).evaluate_all("els => els.map(e => e.dataset.testid)")
        return sorted(str(i).removeprefix(f"row-{namespace}-") for i in ids)

    def screenshot(self, name: str, full_page: bool = False) -> Path:
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def text(self, testid: str) -> str:
        return str(self.testid(testid).inner_text(timeout=WAIT_MS))


NETWORK_CHANGED = "ERR_NETWORK_CHANGED"


def load_app(page: Page, url: str, tries: int = 3) -> None:
    """Load the console's page from ``url`` and wait until its script has started (the navigation
    is drawn).

    Chromium aborts every request in flight with ``net::ERR_NETWORK_CHANGED`` whenever an address
    or link of this machine changes (a pod's veth appearing is one); an ES module lost that way
    leaves the page dead. Such a load is tried again (at most ``tries`` times); any other failure
    to start is an error."""
    failures: list[str] = []

    def failed(request: Any) -> None:
        failures.append(f"{request.url}: {request.failure}")

    page.on("requestfailed", failed)
    try:
        for attempt in range(1, tries + 1):
            failures.clear()
            page.goto(url)
            try:
                page.get_by_test_id("nav-architecture").wait_for(state="visible", timeout=10_000)
                return
            except Exception:
                if attempt == tries or not any(NETWORK_CHANGED in f for f in failures):
                    raise AssertionError(f"the console's page did not start; failed requests: {failures}")
    finally:
        page.remove_listener("requestfailed", failed)


@contextlib.contextmanager
def chromium_context(user_data_dir: Path) -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, with its own fresh profile in ``user_data_dir``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=CHROMIUM, headless=True, args=list(CHROMIUM_ARGS),
            viewport=VIEWPORT)  # type: ignore[arg-type]
        try:
            ctx.set_default_timeout(WAIT_MS)
            yield ctx
        finally:
            ctx.close()


@contextlib.contextmanager
def console_ui(kubeconfig: Path, workdir: Path, artifacts: Path) -> Iterator[ConsoleUI]:
    """``kyb console`` on ``kubeconfig`` and a browser logged into it (see the module docstring);
    everything it started is stopped on exit."""
    console = ConsoleProcess.start(kubeconfig, workdir / "console.log")
    try:
        with tempfile.TemporaryDirectory(prefix="kyb-chromium-") as profile, \
                chromium_context(Path(profile)) as ctx:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            load_app(page, console.url)  # the token URL: cookie, then 303 to /
            assert re.fullmatch(re.escape(console.base) + r"/(#.*)?", page.url), page.url
            yield ConsoleUI(console, ctx, page, artifacts)
    finally:
        console.stop()
    assert console.proc.returncode in (0, -15), \
        f"kyb console exited with {console.proc.returncode}:\n{console.log()}"
