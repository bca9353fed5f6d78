"""A watch stream read the way a lean client reads it, for the benchmarks that hold many of them.

aiohttp's client spent ~150 us of CPU per event per stream (its stream reader and line iterator),
three times what the server spends sending it, so with 1,000 streams on a 2-core machine the
clients, not the server, would set the figures. :class:`WatchStreamDecoder` is the measuring end
kept cheap (the watch equivalent of using ``wrk`` for GETs): the response head is split off once,
then HTTP/1.1 chunked framing is undone and each complete line is decoded with one ``orjson.loads``.
:func:`watch_request` is the request that opens such a stream. Used by ``bench.apiserver`` (watch
fan-out) and ``bench.soak`` (watchers held for the whole soak).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import orjson


def watch_request(url: str, path_and_query: str, user_agent: str) -> bytes:
    """The raw HTTP/1.1 GET that opens a JSON watch stream at ``path_and_query`` of server ``url``."""
    netloc = urllib.parse.urlsplit(url).netloc
    return (f"GET {path_and_query} HTTP/1.1\r\nHost: {netloc}\r\n"
            f"Accept: application/json\r\nUser-Agent: {user_agent}\r\n\r\n").encode()


class WatchStreamDecoder:
    """Feed it the bytes of one watch response as they arrive; it returns the events completed.

    ``status`` is None until the whole response head has arrived, then its HTTP status code. Every
    complete non-empty line of the body is returned, once, as the decoded watch event, in order;
    partial chunks and partial lines are kept for the next :meth:`feed`.
    """

    __slots__ = ("buf", "lines", "status")

    def __init__(self) -> None:
        self.buf = b""
        """Bytes received but not yet unframed (a partial head or chunk)."""
        self.lines = b""
        """Unframed body after the last complete line."""
        self.status: int | None = None

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        buf = self.buf + data
        if self.status is None:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                self.buf = buf
                return []
            self.status = int(head.split(b" ", 2)[1])
            buf = rest
        # Chunked framing: "<hex size>[;extensions]\r\n<data>\r\n" repeated.
        while True:
            size_line, sep, rest = buf.partition(b"\r\n")
            if not sep:
                break
            size = int(size_line.split(b";", 1)[0], 16)
            if len(rest) < size + 2:
                break
            self.lines += rest[:size]
            buf = rest[size + 2:]
        self.buf = buf
        if b"\n" not in self.lines:
            return []
        *complete, self.lines = self.lines.split(b"\n")
        return [orjson.loads(line) for line in complete if line.strip()]
