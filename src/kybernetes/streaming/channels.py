"""The remotecommand WebSocket channel protocol (``v4.channel.k8s.io``, ``v5.channel.k8s.io``), both ends.

exec and attach multiplex up to five byte streams over one WebSocket. Every binary message starts
with one byte naming the channel; the rest is payload::

    0 stdin   (client -> server)      3 error  (server -> client: one metav1.Status JSON)
    1 stdout  (server -> client)      4 resize (client -> server: {"Width": W, "Height": H} JSON)
    2 stderr  (server -> client)    255 close  (v5 only: payload is one byte, the channel being closed)

v4 cannot say "stdin is finished" short of closing the whole socket, which also loses any output
still on its way; v5 (kubectl 1.30+) adds channel 255 for that, so ``kubectl exec -i ... -- cat``
ends cleanly. The server ends a session by writing the Status on channel 3 and closing the socket.
The Status of a command that exited non-zero is a Failure with reason ``NonZeroExitCode`` and the
code in ``details.causes[] {reason: ExitCode, message: "<code>"}``; success is ``status: Success``.

Port-forward has its own WebSocket flavour (``portforward.k8s.io`` / ``v4.channel.k8s.io`` with a
port's data and error channels 2n and 2n+1, each first carrying the port as two little-endian bytes)
that kubectl does not use; kubectl 1.31+ tunnels SPDY through a WebSocket instead (see
:class:`kybernetes.streaming.WebSocketBytes`).

:class:`ChannelSocket` wraps an aiohttp WebSocket (server or client side) with these framing rules;
:func:`run_exec_client` is a small client end (what kubectl does), used by tests and tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType

STDIN = 0
STDOUT = 1
STDERR = 2
ERROR = 3
RESIZE = 4
CLOSE = 255

V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
WEBSOCKET_PROTOCOLS = (V5, V4)
"""Subprotocols this implementation speaks, best first."""
SPDY_PORTFORWARD_TUNNEL = "SPDY/3.1+portforward.k8s.io"
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
REMOTECOMMAND_SPDY_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")


def encode(channel: int, data: bytes) -> bytes:
    return bytes((channel,)) + data


def decode(message: bytes) -> tuple[int, bytes]:
    if not message:
        raise ValueError("empty channel message")
    return message[0], bytes(message[1:])


def close_signal(channel: int) -> bytes:
    """The v5 message that half-closes ``channel``."""
    return bytes((CLOSE, channel))


# ---- Status on the error channel ----------------------------------------------------------------


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int) -> dict[str, Any]:
    if code == 0:
        return success_status()
    return {
        "metadata": {}, "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command, exit status {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def error_status(message: str, *, code: int = 500, reason: str = "InternalError") -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


def exit_code(status: dict[str, Any] | None) -> int:
    """The exit code a Status reports: 0 for success or no status, the ExitCode cause when present,
    otherwise 1 (a failure that is not a process exit)."""
    if not status or status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                with contextlib.suppress(ValueError, TypeError):
                    return int(cause.get("message"))
    return 1


# ---- sockets ------------------------------------------------------------------------------------


class ChannelSocket:
    """A remotecommand WebSocket (aiohttp ``WebSocketResponse`` or ``ClientWebSocketResponse``)."""

    def __init__(self, ws: Any, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.write_lock = asyncio.Lock()

    @property
    def supports_close(self) -> bool:
        return self.protocol == V5

    async def send(self, channel: int, data: bytes) -> None:
        async with self.write_lock:
            await self.ws.send_bytes(encode(channel, data))

    async def send_status(self, status: dict[str, Any]) -> None:
        await self.send(ERROR, json.dumps(status).encode())

    async def close_channel(self, channel: int) -> None:
        if self.supports_close:
            async with self.write_lock:
                await self.ws.send_bytes(close_signal(channel))

    async def resize(self, width: int, height: int) -> None:
        await self.send(RESIZE, json.dumps({"Width": width, "Height": height}).encode())

    async def receive(self) -> tuple[int, bytes] | None:
        """The next (channel, payload); ``None`` once the socket is closed. Empty messages and
        control frames are skipped."""
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                data = bytes(msg.data)
            elif msg.type == WSMsgType.TEXT:
                data = str(msg.data).encode()
            elif msg.type in (WSMsgType.PING, WSMsgType.PONG):
                continue
            else:
                return None
            if data:
                return decode(data)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()


@dataclass
class ExecResult:
    stdout: bytes
    stderr: bytes
    status: dict[str, Any] | None

    @property
    def exit_code(self) -> int:
        return exit_code(self.status)


async def run_exec_client(sock: ChannelSocket, stdin: bytes | None = None) -> ExecResult:
    """The client end: sends ``stdin`` (then, on v5, closes it), collects output until the server
    closes the socket, and returns what arrived with the parsed Status."""
    out: dict[int, bytearray] = {STDOUT: bytearray(), STDERR: bytearray(), ERROR: bytearray()}

    async def feed() -> None:
        if stdin is not None:
            if stdin:
                await sock.send(STDIN, stdin)
            await sock.close_channel(STDIN)

    sender = asyncio.ensure_future(feed())
    try:
        while True:
            item = await sock.receive()
            if item is None:
                break
            channel, data = item
            if channel in out:
                out[channel] += data
    finally:
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender
    status = None
    if out[ERROR]:
        with contextlib.suppress(ValueError):
            status = json.loads(bytes(out[ERROR]))
    return ExecResult(bytes(out[STDOUT]), bytes(out[STDERR]), status)
