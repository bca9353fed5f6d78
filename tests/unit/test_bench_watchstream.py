"""bench.watchstream: the lean watch-stream reader shared by bench.apiserver and bench.soak."""

from __future__ import annotations

import orjson
from bench.watchstream import WatchStreamDecoder, watch_request


def _response(events: list[dict[str, object]], status: str = "200 OK") -> bytes:
    body = b"".join(orjson.dumps(e) + b"\n" for e in events)
    # Two chunks that cut the second event in the middle, one with a chunk extension.
    cut = len(body) // 2 + 3
    chunks = [body[:cut], body[cut:]]
    framed = b"".join(f"{len(c):x}".encode() + (b";ext=1" if i else b"") + b"\r\n" + c + b"\r\n"
                      for i, c in enumerate(chunks))
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + framed


EVENTS = [{"type": "ADDED", "object": {"metadata": {"name": f"cm-{i}", "resourceVersion": str(10 + i)}}}
          for i in range(3)]


def test_every_event_once_in_order_however_the_bytes_are_split() -> None:
    raw = _response(EVENTS)
    for step in (1, 2, 7, 64, len(raw)):
        d = WatchStreamDecoder()
        got = []
        for i in range(0, len(raw), step):
            got += d.feed(raw[i:i + step])
        assert d.status == 200
        assert got == EVENTS, step


def test_status_is_known_only_once_the_head_is_complete() -> None:
    raw = _response([], "410 Gone")
    d = WatchStreamDecoder()
    assert d.feed(raw[:20]) == [] and d.status is None
    d.feed(raw[20:])
    assert d.status == 410


def test_watch_request_names_the_server_and_asks_for_json() -> None:
    req = watch_request("https://127.0.0.1:6443", "/api/v1/configmaps?watch=1", "ua")
    assert req.startswith(b"GET /api/v1/configmaps?watch=1 HTTP/1.1\r\nHost: 127.0.0.1:6443\r\n")
    assert b"Accept: application/json\r\n" in req and req.endswith(b"User-Agent: ua\r\n\r\n")
