"""The WebSocket channel protocols of exec/attach and port-forward, both ends.

One WebSocket carries several byte streams ("channels"). Every message names its channel first;
the rest is payload. The subprotocol decides the encoding and what the error channel carries::

    subprotocol                 encoding                                     error channel
    (none offered)              binary: 1 byte channel, raw payload          the failure's message
    channel.k8s.io              binary                                       the failure's message
    base64.channel.k8s.io       text: one ASCII digit '0'+channel, then      the failure's message
                                the payload in standard base64
    v4.channel.k8s.io           binary                                       a metav1.Status (JSON)
    v4.base64.channel.k8s.io    text (as base64.channel.k8s.io)              a metav1.Status (JSON)
    v5.channel.k8s.io           binary, plus the CLOSE signal                a metav1.Status (JSON)

exec and attach (in Kubernetes the API server serves v5 and the kubelet the others; here the
kubelet serves all six)::

    0 stdin   (client -> server)      3 error  (server -> client)
    1 stdout  (server -> client)      4 resize (client -> server: {"Width": W, "Height": H} JSON)
    2 stderr  (server -> client)    255 close  (v5 only: payload is one byte, the channel being closed)

Before any output the server sends an empty message on the lowest channel it writes (stdout, else
stderr, else error), so the client knows the session is up. v4 and older cannot say "stdin is
finished" short of closing the whole socket, which also loses any output still on its way; v5
(kubectl 1.30+) adds channel 255 for that, so ``kubectl exec -i ... -- cat`` ends cleanly. The
server ends a session by writing the status on the error channel and closing the socket. On v4+
the Status of a command that exited non-zero is a Failure with reason ``NonZeroExitCode`` and the
code in ``details.causes[] {reason: ExitCode, message: "<code>"}``; success is ``status: Success``.
Older protocols carry only a failure's message, and nothing on success.

port-forward (none offered, ``v4.channel.k8s.io`` or ``v4.base64.channel.k8s.io``): the ports come
from the request, and port i gets a data channel 2i (both ways) and an error channel 2i+1 (server
to client); the first message on each is the port as two little-endian bytes (see
:mod:`kybernetes.streaming.portforward`). kubectl does not use it: kubectl 1.31+ tunnels SPDY
through a WebSocket instead (see :class:`kybernetes.streaming.WebSocketBytes`).

A server picks the first subprotocol in the client's list that it supports (Go's x/net/websocket
handshake); a client that names none gets the binary pre-v4 protocol; a client whose every name is
unknown is refused with 403 (:func:`negotiate`).

:class:`ChannelSocket` wraps an aiohttp WebSocket (server or client side) with these framing rules;
:func:`run_exec_client` is a small client end (what kubectl does), used by tests and tools.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType

log = logging.getLogger(__name__)

STDIN = 0
STDOUT = 1
STDERR = 2
ERROR = 3
RESIZE = 4
CLOSE = 255

NONE = ""
"""The subprotocol of a client that offered none."""
CHANNEL = "channel.k8s.io"
BASE64_CHANNEL = "base64.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V5 = "v5.channel.k8s.io"
REMOTECOMMAND_WEBSOCKET_PROTOCOLS = (V5, V4, V4_BASE64, CHANNEL, BASE64_CHANNEL)
"""exec/attach over WebSocket: what the kubelet accepts (and the API server's v5), besides none."""
PORTFORWARD_WEBSOCKET_PROTOCOLS = (V4, V4_BASE64)
"""port-forward over WebSocket (kubelet's portforward/websocket.go), besides none."""
SPDY_PORTFORWARD_TUNNEL = "SPDY/3.1+portforward.k8s.io"
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
REMOTECOMMAND_SPDY_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io")


@dataclass(frozen=True)
class ChannelProtocol:
    """How one subprotocol frames channels and reports an exec's status."""

    name: str
    base64: bool
    """Text messages: the channel as an ASCII digit, the payload in standard base64."""
    status_json: bool
    """The error channel carries a metav1.Status; otherwise only a failure's message."""
    close_signal: bool
    """Channel 255 half-closes a channel (v5)."""


PROTOCOLS = {p.name: p for p in (
    ChannelProtocol(NONE, base64=False, status_json=False, close_signal=False),
    ChannelProtocol(CHANNEL, base64=False, status_json=False, close_signal=False),
    ChannelProtocol(BASE64_CHANNEL, base64=True, status_json=False, close_signal=False),
    ChannelProtocol(V4, base64=False, status_json=True, close_signal=False),
    ChannelProtocol(V4_BASE64, base64=True, status_json=True, close_signal=False),
    ChannelProtocol(V5, base64=False, status_json=True, close_signal=True),
)}


def negotiate(offered: Sequence[str], supported: Sequence[str]) -> str | None:
    """The subprotocol a server answers with: the first of the client's that it supports, in the
    client's order; :data:`NONE` when the client offered none; ``None`` (refuse) otherwise."""
    if not offered:
        return NONE
    return next((p for p in offered if p in supported), None)


def unsupported_message(offered: Sequence[str], supported: Sequence[str]) -> str:
    """Why :func:`negotiate` refused (the wording of Kubernetes' wsstream handshake)."""
    return f"requested protocol(s) are not supported: [{' '.join(offered)}]; supports [{' '.join(supported)}]"


def encode(channel: int, data: bytes, *, base64: bool = False) -> bytes:
    """One message's bytes (for base64, the text message's UTF-8: like Go's ``string('0'+n)``, a
    channel above 79 takes two bytes)."""
    if base64:
        return chr(ord("0") + channel).encode() + binascii.b2a_base64(data, newline=False)
    return bytes((channel,)) + data


def decode(message: bytes, *, base64: bool = False) -> tuple[int, bytes]:
    """(channel, payload) of one message; ``ValueError`` if it is empty or not valid base64.

    Like Go's decoder, base64 payloads may be wrapped (CR and LF are skipped)."""
    if not message:
        raise ValueError("empty channel message")
    if not base64:
        return message[0], bytes(message[1:])
    channel = (message[0] - ord("0")) & 0xFF
    payload = bytes(message[1:]).replace(b"\r", b"").replace(b"\n", b"")
    try:
        return channel, binascii.a2b_base64(payload, strict_mode=True)
    except binascii.Error as e:
        raise ValueError(f"illegal base64 data on channel {channel}: {e}") from e


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
    """A channel WebSocket (aiohttp ``WebSocketResponse`` or ``ClientWebSocketResponse``) speaking
    ``protocol`` (one of :data:`PROTOCOLS`; an unknown name is framed as binary v4)."""

    def __init__(self, ws: Any, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.rules = PROTOCOLS.get(protocol) or PROTOCOLS[V4]
        self.write_lock = asyncio.Lock()

    @property
    def supports_close(self) -> bool:
        return self.rules.close_signal

    async def send(self, channel: int, data: bytes) -> None:
        message = encode(channel, data, base64=self.rules.base64)
        async with self.write_lock:
            if self.rules.base64:
                await self.ws.send_str(message.decode())
            else:
                await self.ws.send_bytes(message)

    async def send_status(self, status: dict[str, Any]) -> None:
        """Reports how the session ended, as this protocol does (see the module docstring)."""
        if self.rules.status_json:
            await self.send(ERROR, json.dumps(status).encode())
        elif status.get("status") != "Success":
            await self.send(ERROR, str(status.get("message") or "").encode())

    async def send_status_json(self, raw: bytes) -> None:
        """Reports a Status that arrived as JSON (a v4 runtime's error stream)."""
        if self.rules.status_json:
            await self.send(ERROR, raw)
            return
        try:
            status = json.loads(raw)
        except ValueError:
            status = {"status": "Failure", "message": raw.decode(errors="replace")}
        await self.send_status(status if isinstance(status, dict) else {"status": "Failure", "message": str(status)})

    async def close_channel(self, channel: int) -> None:
        if self.supports_close:
            async with self.write_lock:
                await self.ws.send_bytes(close_signal(channel))

    async def resize(self, width: int, height: int) -> None:
        await self.send(RESIZE, json.dumps({"Width": width, "Height": height}).encode())

    async def receive(self) -> tuple[int, bytes] | None:
        """The next (channel, payload); ``None`` once the socket is closed. Empty messages, control
        frames and (like Kubernetes) messages that do not decode are skipped."""
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
            if not data:
                continue
            try:
                return decode(data, base64=self.rules.base64)
            except ValueError as e:
                log.debug("dropped a message: %s", e)

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
    closes the socket, and returns what arrived with the parsed Status (on protocols before v4,
    a failure's message becomes a Failure Status with that message)."""
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
    if out[ERROR] and sock.rules.status_json:
        with contextlib.suppress(ValueError):
            status = json.loads(bytes(out[ERROR]))
    elif out[ERROR]:
        status = {"status": "Failure", "message": bytes(out[ERROR]).decode(errors="replace")}
    return ExecResult(bytes(out[STDOUT]), bytes(out[STDERR]), status)
