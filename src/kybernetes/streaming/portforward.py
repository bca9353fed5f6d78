"""port-forward over a WebSocket of channels, translated to SPDY ``portforward.k8s.io`` streams.

This is what the official clients' ``portforward`` speaks (the Python client's
``kubernetes.stream.portforward``): a WebSocket with no subprotocol, ``v4.channel.k8s.io`` or
``v4.base64.channel.k8s.io`` (framing in :mod:`kybernetes.streaming.channels`), the ports listed in
the request. For the i-th port::

    channel 2i      data, both ways
    channel 2i+1    error, server -> client: why forwarding failed, as text

The first message the server sends on each of the two is the port number as two little-endian
bytes; everything after that is payload. Every port is one connection to the pod, made as the
socket opens: it lasts until the pod's side ends it (or forwarding fails, reported on the error
channel), and the WebSocket is closed once every port's connection has ended. There is no way for
a client to half-close a port; closing the socket ends every connection.

:func:`serve_ports` is the server end, against a SPDY session with the container runtime's
streaming server (containerd speaks port-forward over SPDY): per port it opens the error and the
data stream that kubectl would (headers ``streamType``, ``port``, ``requestID``), half-closes the
error stream (nothing is written on it) and copies the data both ways. :func:`parse_ports` reads
the port list the way the kubelet does, :func:`port_prefix` and :func:`split_port_prefix` are the
first message's encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Sequence

from kybernetes.aiorun import wait_for
from kybernetes.streaming import spdy, spdy_frames
from kybernetes.streaming.channels import ChannelSocket

log = logging.getLogger(__name__)

PORT_PARAMETER = "port"
"""The kubelet's query parameter (Kubernetes' ``PortHeader``); the API server's is ``ports``."""


def parse_ports(values: Sequence[str], name: str = PORT_PARAMETER) -> list[int]:
    """The ports of ``?port=80,443&port=8080`` (repeated and/or comma-separated), in order.

    ``ValueError`` with the kubelet's wording when there are none or one is not in 1-65535."""
    if not values:
        raise ValueError(f'query parameter "{name}" is required')
    ports: list[int] = []
    for value in values:
        if not value:
            raise ValueError(f'query parameter "{name}" cannot be empty')
        for item in value.split(","):
            port = parse_uint16(item)
            if isinstance(port, str):
                raise ValueError(f'unable to parse "{value}" as a port: {port}')
            if port < 1:
                raise ValueError(f'port "{value}" must be > 0')
            ports.append(port)
    return ports


def parse_uint16(text: str) -> int | str:
    """Go's ``strconv.ParseUint(text, 10, 16)``: the number, or the error's text."""
    if not text or not text.isascii() or not text.isdigit():
        return f'strconv.ParseUint: parsing "{text}": invalid syntax'
    value = int(text)
    if value > 0xFFFF:
        return f'strconv.ParseUint: parsing "{text}": value out of range'
    return value


def port_prefix(port: int) -> bytes:
    """The first message on a port's channels: the port, uint16 little-endian."""
    return struct.pack("<H", port)


def split_port_prefix(payload: bytes) -> tuple[int, bytes]:
    """The port a channel's first message names, and whatever followed it."""
    if len(payload) < 2:
        raise ValueError(f"a port-forward channel's first message has {len(payload)} bytes, not 2")
    return struct.unpack("<H", payload[:2])[0], payload[2:]


async def serve_ports(sock: ChannelSocket, runtime: spdy.Session, ports: Sequence[int], *,
                      describe: str = "") -> None:
    """Forwards ``ports`` between the WebSocket ``sock`` and the runtime's SPDY session.

    Returns once every port's connection has ended or the client has gone away; closes ``sock``
    (the caller closes ``runtime``). ``describe`` names the pod in errors this end reports itself."""
    loop = asyncio.get_running_loop()
    # Each port's data stream once open (None if it could not be): the client's bytes wait for it.
    data_streams: list[asyncio.Future[spdy.Stream | None]] = [loop.create_future() for _ in ports]
    pumps = [asyncio.ensure_future(_forward_port(sock, runtime, i, port, data_streams[i], describe))
             for i, port in enumerate(ports)]
    client = asyncio.ensure_future(_from_client(sock, data_streams))

    async def every_port() -> None:
        await asyncio.gather(*pumps, return_exceptions=True)

    ports_done = asyncio.ensure_future(every_port())
    try:
        await asyncio.wait([client, ports_done], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (client, ports_done, *pumps):
            task.cancel()
        await asyncio.gather(client, ports_done, *pumps, return_exceptions=True)
        for future in data_streams:
            stream = future.result() if future.done() and not future.cancelled() else None
            if stream is not None:
                with contextlib.suppress(Exception):
                    await stream.reset()
        await sock.close()


async def _forward_port(sock: ChannelSocket, runtime: spdy.Session, index: int, port: int,
                        opened: asyncio.Future[spdy.Stream | None], describe: str) -> None:
    """One port: announce it on both channels, connect, copy the pod's bytes out, report errors."""
    data_channel, error_channel = 2 * index, 2 * index + 1
    errors: asyncio.Future[bytes] | None = None
    try:
        await sock.send(data_channel, port_prefix(port))
        await sock.send(error_channel, port_prefix(port))
        headers = {"port": str(port), "requestID": str(index)}
        try:
            error = await runtime.open_stream({"streamType": "error", **headers})
            await error.close()  # only the runtime writes on it
            stream = await runtime.open_stream({"streamType": "data", **headers})
        except (ConnectionError, TimeoutError, spdy_frames.ProtocolError) as e:
            await sock.send(error_channel, f"error forwarding port {port} to pod {describe}: {e}".encode())
            return
        opened.set_result(stream)
        errors = asyncio.ensure_future(error.read_all())
        try:
            while data := await stream.read():
                await sock.send(data_channel, data)
        except spdy.StreamReset as e:
            log.debug("port %d: data stream reset: %s", port, e)
        # The runtime writes a failure on the error stream and then closes both.
        with contextlib.suppress(ConnectionError, TimeoutError):
            message = await wait_for(errors, 5.0)
            if message:
                await sock.send(error_channel, message)
    finally:
        if not opened.done():
            opened.set_result(None)
        if errors is not None and not errors.done():
            errors.cancel()


async def _from_client(sock: ChannelSocket, data_streams: Sequence[asyncio.Future[spdy.Stream | None]]) -> None:
    """The client's bytes on data channels to the ports' data streams, until the socket closes.

    Bytes that arrive before a port's connection is open wait for it (reading stops meanwhile, as
    Kubernetes' pipes do); bytes for a port whose connection failed or ended, on an error channel
    or on a channel no port has are dropped."""
    while (item := await sock.receive()) is not None:
        channel, data = item
        if channel % 2 or channel // 2 >= len(data_streams) or not data:
            continue
        stream = await data_streams[channel // 2]
        if stream is None:
            continue
        try:
            await stream.write(data)
        except ConnectionError as e:
            log.debug("port-forward channel %d: %s", channel, e)
