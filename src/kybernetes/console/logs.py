"""Container logs: the API server's ``pods/log`` relayed to the browser as server-sent events.

Contract:

- :func:`relay` answers ``text/event-stream``: one ``data:`` line per log line (an unfinished
  last line is sent when the stream ends), ``event: end`` when the upstream ends, and
  ``event: error`` with ``{"error", "code"}`` when it fails after the stream began. An API error
  before anything was sent is returned as the usual JSON error instead (403, 404, 400).
- The upstream is the user's own ``GET .../pods/NAME/log`` (``container``, ``tailLines``,
  ``follow``, ``previous``, ``timestamps``): the console relays, never buffers more than a line.
- When the browser goes away, the handler is cancelled (the app runs with handler cancellation)
  or its next write fails; either way the upstream request is closed at once, so the API server
  (and the kubelet behind it) stop streaming.
- :func:`tail` reads the last lines of a container once (``previous`` instance first: what a
  crash-looping container printed before it died), for the problems panel.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from kybernetes import errors
from kybernetes.client import Client
from kybernetes.client.rest import resource_path

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
TAIL_TIMEOUT = 3.0


def log_params(query: Any) -> dict[str, str]:
    """The pods/log parameters the console passes on (defaults: tailLines 200, follow true)."""
    params = {"tailLines": query.get("tailLines", "200"), "follow": query.get("follow", "true")}
    for name in ("container", "previous", "timestamps", "sinceSeconds"):
        if query.get(name):
            params[name] = query[name]
    return params


async def lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """Split a byte stream into text lines (a line longer than :data:`MAX_LINE` is cut)."""
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > MAX_LINE:
                    yield bytes(buf[:MAX_LINE]).decode(errors="replace")
                    del buf[:MAX_LINE]
                break
            yield bytes(buf[:nl]).decode(errors="replace").rstrip("\r")
            del buf[:nl + 1]
    if buf:
        yield bytes(buf).decode(errors="replace")


def sse(data: str, event: str = "") -> bytes:
    """One server-sent event; ``data`` must be one line."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()


async def relay(request: web.Request, client: Client, namespace: str, pod: str) -> web.StreamResponse:
    """Stream a container's log to the browser (see the module contract)."""
    path = resource_path("v1", "pods", namespace, pod, "log")
    try:
        async with client.stream(path, params=log_params(request.query)) as chunks:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                               "X-Accel-Buffering": "no"})
            await resp.prepare(request)
            try:
                async for line in lines(chunks):
                    await resp.write(sse(line))
                await resp.write(sse("{}", "end"))
            except (ConnectionResetError, asyncio.CancelledError):
                log.debug("log stream of %s/%s: the browser went away", namespace, pod)
                raise  # leaving the block closes the upstream: the API server stops streaming
            except ConnectionError as e:
                await resp.write(sse(json.dumps({"error": str(e), "code": 502}), "error"))
            return resp
    except errors.StatusError as e:
        return web.json_response({"error": str(e), "code": e.code}, status=e.code)
    except ConnectionError as e:
        return web.json_response({"error": str(e), "code": 502}, status=502)


async def tail(client: Client, namespace: str, pod: str, container: str, lines_: int = 10) -> list[str]:
    """The last ``lines_`` lines of a container's previous instance (else its current one); [] if unreadable."""
    path = resource_path("v1", "pods", namespace, pod, "log")
    for previous in ("true", "false"):
        try:
            text = await asyncio.wait_for(client.request("GET", path, params={
                "container": container, "tailLines": str(lines_), "previous": previous}), TAIL_TIMEOUT)
        except Exception as e:
            log.debug("log tail of %s/%s/%s: %s", namespace, pod, container, e)
            continue
        if not isinstance(text, str):
            text = json.dumps(text) if text != {} else ""  # the client decodes a body that is JSON
        if text:
            return text.rstrip("\n").split("\n")[-lines_:]
    return []
