"""Crash consistency of the API server and its store: one round, shared by the test and bench.chaos.

:func:`crash_round` runs against a server it is given (any datastore): ``writers`` clients create
ConfigMaps as fast as they can, a watcher follows them from the start; after ``kill_after`` acked
writes the server (and the components it runs) is killed with SIGKILL in mid-flight, then restarted on the same data dir
(``restart()``, which returns the new server). Then it checks the promise:

- every acknowledged create (a 201 with its resourceVersion) is there, with that resourceVersion;
- no refused create (any 4xx) is there;
- a create whose answer was lost (the connection died with the server) may or may not be there:
  both are allowed, as for any client of Kubernetes;
- the watcher, resumed from the last resourceVersion it saw, receives every object that exists and
  that it had not seen, exactly once, and nothing it had already seen (no gap, no duplicate).

Figures returned: acked writes, lost acked writes (goal 0), refused writes present (goal 0),
watch gaps and duplicates (goal 0), and the time from the restart to the first answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from kybernetes.testing import ServerProcess


@dataclass
class RoundResult:
    acked: int = 0
    unknown: int = 0
    refused: int = 0
    lost: list[str] = field(default_factory=list)
    refused_present: list[str] = field(default_factory=list)
    watch_gaps: list[str] = field(default_factory=list)
    watch_duplicates: list[str] = field(default_factory=list)
    recovery_seconds: float = 0.0


def _context(data_dir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(data_dir / "tls" / "ca.crt"))
    ctx.check_hostname = False
    ctx.load_cert_chain(data_dir / "tls" / "admin.crt", data_dir / "tls" / "admin.key")
    return ctx


async def _writer(session: aiohttp.ClientSession, url: str, ns: str, client: int, outcome: dict[str, Any],
                  stop: asyncio.Event) -> None:
    i = 0
    while not stop.is_set():
        name = f"c{client}-{i}"
        i += 1
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"i": str(i)}}
        try:
            async with session.post(f"{url}/api/v1/namespaces/{ns}/configmaps", json=body) as resp:
                answer = await resp.json(content_type=None)
                if resp.status == 201:
                    outcome[name] = answer["metadata"]["resourceVersion"]
                elif 400 <= resp.status < 500:
                    outcome[name] = "refused"
                else:
                    outcome[name] = "unknown"
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            outcome[name] = "unknown"
            return  # the server is gone


async def _watch(session: aiohttp.ClientSession, url: str, ns: str, rv: str, seen: dict[str, int],
                 last_rv: list[str], until: Callable[[], bool]) -> None:
    """Records ADDED events by name (counting repeats) from ``rv`` until the stream ends or ``until()``."""
    params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true"}
    with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
        async with session.get(f"{url}/api/v1/namespaces/{ns}/configmaps", params=params) as resp:
            assert resp.status == 200, await resp.text()
            async for line in resp.content:
                event = json.loads(line)
                obj = event["object"]
                if event["type"] == "ADDED":
                    seen[obj["metadata"]["name"]] = seen.get(obj["metadata"]["name"], 0) + 1
                if event["type"] in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK"):
                    last_rv[0] = obj["metadata"]["resourceVersion"]
                if until():
                    return


def _children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc/*/stat)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


async def crash_round(srv: ServerProcess, restart: Callable[[], ServerProcess], *, ns: str, writers: int = 64,
                      kill_after: int = 300) -> tuple[RoundResult, ServerProcess]:
    result = RoundResult()
    outcome: dict[str, Any] = {}
    seen: dict[str, int] = {}
    ctx = _context(srv.data_dir)
    stop = asyncio.Event()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=writers + 2),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        status, listed = srv.request("GET", f"/api/v1/namespaces/{ns}/configmaps")
        assert status == 200, listed
        start_rv = listed["metadata"]["resourceVersion"]
        last_rv = [start_rv]
        watcher = asyncio.create_task(_watch(session, srv.url, ns, start_rv, seen, last_rv, lambda: False))
        tasks = [asyncio.create_task(_writer(session, srv.url, ns, c, outcome, stop)) for c in range(writers)]
        deadline = time.monotonic() + 120
        while sum(1 for v in outcome.values() if v not in ("refused", "unknown")) < kill_after:
            assert time.monotonic() < deadline, f"only {len(outcome)} writes in 120 s"
            await asyncio.sleep(0.01)
        # Mid-flight (writers are still sending): the server and the components it runs (the
        # controller manager), as a crash of a k3s-like server takes them all; its children would
        # otherwise outlive the test, orphaned.
        for pid in [srv.proc.pid, *_children(srv.proc.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        srv.proc.wait()
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    t0 = time.monotonic()
    srv = await asyncio.to_thread(restart)
    result.recovery_seconds = time.monotonic() - t0
    status, listed = srv.request("GET", f"/api/v1/namespaces/{ns}/configmaps")
    assert status == 200, listed
    present = {o["metadata"]["name"]: o["metadata"]["resourceVersion"] for o in listed["items"]}
    for name, rv in outcome.items():
        if rv == "unknown":
            result.unknown += 1
        elif rv == "refused":
            result.refused += 1
            if name in present:
                result.refused_present.append(name)
        else:
            result.acked += 1
            if present.get(name) != rv:
                result.lost.append(f"{name}@{rv} -> {present.get(name)}")
    # Resume the watch where it stopped: everything that exists and was not seen, once. A sentinel
    # created after the restart ends it: events come in resourceVersion order, so a gap or a
    # repeat shows up before the sentinel does.
    status, answer = srv.request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                 {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sentinel"}})
    assert status == 201, answer
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=_context(srv.data_dir)),
                                     timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.wait_for(_watch(session, srv.url, ns, last_rv[0], seen, [last_rv[0]],
                                      lambda: "sentinel" in seen), 30)
    srv.request("DELETE", f"/api/v1/namespaces/{ns}/configmaps/sentinel")
    seen.pop("sentinel", None)
    result.watch_gaps = sorted(set(present) - set(seen))
    result.watch_duplicates = sorted(n for n, count in seen.items() if count > 1)
    return result, srv
