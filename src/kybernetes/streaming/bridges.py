"""The kubelet's bridges from a client's stream session to the container runtime's SPDY session.

- :func:`bridge_channels`: exec/attach over a WebSocket of channels (``streaming.channels``) to
  remotecommand streams (``stdin``, ``stdout``, ``stderr``, ``error``, ``resize``) of a SPDY v4
  session with the runtime; the Status the runtime writes on ``error`` goes out as the client's
  subprotocol reports it, before the socket is closed.
- :func:`run_spdy_proxy`: a SPDY session served to the client (plain, or tunnelled in a WebSocket)
  whose every stream is mirrored on the runtime's session, headers, data, FIN and RST alike.

The port-forward WebSocket of channels has its own module (``streaming.portforward``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kybernetes.streaming import spdy, spdy_frames
from kybernetes.streaming.channels import CLOSE, RESIZE, STDERR, STDIN, STDOUT, ChannelSocket, error_status

log = logging.getLogger(__name__)


async def bridge_channels(sock: ChannelSocket, session: spdy.Session, streams: dict[str, spdy.Stream]) -> None:
    """WebSocket channels <-> SPDY remotecommand streams (see the module docstring)."""
    outputs = {"stdout": STDOUT, "stderr": STDERR}

    async def upstream() -> None:
        stdin = streams.get("stdin")
        resize = streams.get("resize")
        while True:
            item = await sock.receive()
            if item is None:
                return
            channel, data = item
            try:
                if channel == STDIN and stdin is not None:
                    await stdin.write(data)
                elif channel == RESIZE and resize is not None:
                    await resize.write(data)
                elif channel == CLOSE and data[:1] == bytes((STDIN,)) and stdin is not None:
                    await stdin.close()
            except ConnectionError:
                pass

    async def downstream(name: str) -> None:
        stream = streams[name]
        while True:
            data = await stream.read()
            if not data:
                return
            await sock.send(outputs[name], data)

    up = asyncio.ensure_future(upstream())
    downs = [asyncio.ensure_future(downstream(n)) for n in outputs if n in streams]
    try:
        status = b""
        with contextlib.suppress(spdy.StreamReset):
            status_task = asyncio.ensure_future(streams["error"].read_all())
            done, _ = await asyncio.wait([status_task, up], return_when=asyncio.FIRST_COMPLETED)
            if status_task in done:
                status = status_task.result()
            else:
                # The client went away: stop the session (containerd ends its side).
                status_task.cancel()
                return
        # The exit status arrives after the output on the same connection, but the output tasks
        # may still be forwarding the last bytes: let them finish before the socket closes.
        if downs:
            await asyncio.wait(downs, timeout=5.0)
        log.debug("exec status %r, session closed %s, error stream reset %s", status[:200],
                  session.closed.is_set(), streams["error"].reset_status)
        if session.closed.is_set() and not status:
            status = json.dumps(error_status("container runtime closed the stream without a status")).encode()
        if status:
            with contextlib.suppress(Exception):
                await sock.send_status_json(status)
    finally:
        up.cancel()
        for t in downs:
            t.cancel()
        await asyncio.gather(up, *downs, return_exceptions=True)
        await sock.close()


async def run_spdy_proxy(upstream_transport: Any, down: spdy.Session,
                         on_failure: Callable[[spdy.Stream, Exception], Awaitable[None]] | None = None) -> None:
    """Serves a SPDY session on ``upstream_transport`` whose every stream is mirrored on ``down``.

    Headers are copied, data flows both ways, a FIN or RST on either side is passed on; when either
    session ends, both are closed."""

    async def on_stream(up: spdy.Stream) -> None:
        try:
            peer = await down.open_stream(up.headers)
        except Exception as e:  # any failure is reported on the stream itself
            if on_failure is not None:
                await on_failure(up, e)
            else:
                await up.reset(spdy_frames.RstStatus.REFUSED_STREAM)
            return
        await _mirror(up, peer)

    up_session = spdy.Session(upstream_transport, client=False, on_stream=on_stream)
    up_task = asyncio.ensure_future(up_session.run())
    down_wait = asyncio.ensure_future(down.wait_closed())
    try:
        await asyncio.wait([up_task, down_wait], return_when=asyncio.FIRST_COMPLETED)
    finally:
        await down.close()
        await up_session.close()
        up_task.cancel()
        down_wait.cancel()
        await asyncio.gather(up_task, down_wait, return_exceptions=True)


async def _mirror(a: spdy.Stream, b: spdy.Stream) -> None:
    async def copy(src: spdy.Stream, dst: spdy.Stream) -> None:
        try:
            while True:
                data = await src.read()
                if not data:
                    break
                await dst.write(data)
            await dst.close()
        except spdy.StreamReset:
            await dst.reset(src.reset_status or spdy_frames.RstStatus.CANCEL)
        except ConnectionError:
            await src.reset()

    await asyncio.gather(copy(a, b), copy(b, a), return_exceptions=True)
