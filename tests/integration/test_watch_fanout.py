"""Watch fan-out against a real server: many watchers, bursts, selectors, a reader that stalls.

Events reach a parked watcher by a direct write from the dispatcher and a busy or backed-up one
through its own task (kybernetes.storage.cacher.Watcher); whichever path, every watcher must see
every event once, in order, in well-formed chunks.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import orjson

from kybernetes.testing import ServerProcess


def _session(server: ServerProcess) -> aiohttp.ClientSession:
    tls = server.data_dir / "tls"
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=0),
                                 timeout=aiohttp.ClientTimeout(total=120))


async def _rv(s: aiohttp.ClientSession, url: str) -> str:
    async with s.get(url) as r:
        return str((await r.json())["metadata"]["resourceVersion"])


async def _collect(s: aiohttp.ClientSession, url: str, want: int, started: asyncio.Event | None = None,
                   stall: asyncio.Event | None = None) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of the first ``want`` events of a watch."""
    out: list[tuple[str, str, str]] = []
    async with s.get(url) as r:
        assert r.status == 200
        if started is not None:
            started.set()
        if stall is not None:
            await stall.wait()  # leave the stream unread while the server writes
        while len(out) < want:
            line = await asyncio.wait_for(r.content.readline(), 30)
            assert line, f"watch ended after {len(out)} of {want} events"
            ev = orjson.loads(line)
            if ev["type"] == "BOOKMARK":
                continue
            m = ev["object"]["metadata"]
            out.append((ev["type"], m["name"], m["resourceVersion"]))
    return out


async def _create(s: aiohttp.ClientSession, url: str, name: str, size: int = 16) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": "x" * size}}
    async with s.post(url, json=body) as r:
        assert r.status == 201, await r.text()


async def test_many_watchers_see_every_event_in_order(server: ServerProcess, namespace: str) -> None:
    url = f"{server.url}/api/v1/namespaces/{namespace}/configmaps"
    async with _session(server) as s:
        rv = await _rv(s, url)
        n_watchers, n_events = 40, 30
        started = [asyncio.Event() for _ in range(n_watchers)]
        watchers = [asyncio.create_task(_collect(s, f"{url}?watch=true&resourceVersion={rv}", n_events, started[i]))
                    for i in range(n_watchers)]
        await asyncio.gather(*(e.wait() for e in started))
        # Single writes with pauses (watchers parked: direct writes) and a concurrent burst.
        for i in range(10):
            await _create(s, url, f"one-{i:02d}")
            await asyncio.sleep(0.02)
        await asyncio.gather(*(_create(s, url, f"burst-{i:02d}") for i in range(20)))
        results = await asyncio.wait_for(asyncio.gather(*watchers), 60)
    first = results[0]
    assert len(first) == n_events and all(t == "ADDED" for t, _, _ in first)
    assert [int(v) for _, _, v in first] == sorted(int(v) for _, _, v in first)
    assert {n for _, n, _ in first} == {f"one-{i:02d}" for i in range(10)} | {f"burst-{i:02d}" for i in range(20)}
    for other in results[1:]:
        assert other == first


async def test_field_selector_watchers_get_their_transitions(server: ServerProcess, namespace: str) -> None:
    url = f"{server.url}/api/v1/namespaces/{namespace}/configmaps"
    async with _session(server) as s:
        rv = await _rv(s, url)
        started = asyncio.Event()
        sel = asyncio.create_task(_collect(
            s, f"{url}?watch=true&resourceVersion={rv}&labelSelector=pick%3Dyes", 3, started))
        await started.wait()
        await _create(s, url, "a")
        await _create(s, url, "b")
        patch = {"metadata": {"labels": {"pick": "yes"}}}
        hdr = {"Content-Type": "application/merge-patch+json"}
        async with s.patch(f"{url}/b", data=orjson.dumps(patch), headers=hdr) as r:
            assert r.status == 200
        async with s.patch(f"{url}/b", data=orjson.dumps({"data": {"v": "changed"}}), headers=hdr) as r:
            assert r.status == 200
        async with s.patch(f"{url}/b", data=orjson.dumps({"metadata": {"labels": {"pick": "no"}}}),
                           headers=hdr) as r:
            assert r.status == 200
        got = await asyncio.wait_for(sel, 30)
    # b enters the selection (ADDED), changes inside it (MODIFIED), leaves it (DELETED); a never shows.
    assert [(t, n) for t, n, _ in got] == [("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "b")]


async def test_a_stalled_reader_loses_nothing(server: ServerProcess, namespace: str) -> None:
    url = f"{server.url}/api/v1/namespaces/{namespace}/configmaps"
    n_events = 120
    async with _session(server) as s:
        rv = await _rv(s, url)
        started, stall = asyncio.Event(), asyncio.Event()
        slow = asyncio.create_task(_collect(s, f"{url}?watch=true&resourceVersion={rv}", n_events, started, stall))
        fast_started = asyncio.Event()
        fast = asyncio.create_task(_collect(s, f"{url}?watch=true&resourceVersion={rv}", n_events, fast_started))
        await started.wait()
        await fast_started.wait()
        # ~30 KB objects: several MB queue up behind the stalled reader, past the socket buffers
        # and the server's direct-write limit, so its events go through the slow path.
        for batch in range(n_events // 20):
            await asyncio.gather(*(_create(s, url, f"big-{batch}-{i:02d}", 30_000) for i in range(20)))
        fast_got = await asyncio.wait_for(fast, 60)
        stall.set()
        slow_got = await asyncio.wait_for(slow, 60)
    assert len(fast_got) == n_events
    assert slow_got == fast_got
    names: list[Any] = [n for _, n, _ in fast_got]
    assert len(set(names)) == n_events
