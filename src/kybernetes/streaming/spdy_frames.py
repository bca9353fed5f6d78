"""SPDY/3.1 on the wire: frame types and flags, frames and their parser, header-block compression.

Wire format (all integers big-endian)::

    control frame:  |1| version=3 (15) | type (16) |  flags (8) | length (24) |  payload
    data frame:     |0| stream id (31)             |  flags (8) | length (24) |  payload

    SYN_STREAM (1)    stream id (31), associated stream id (31), priority (3) + 5 unused, slot (8),
                      header block; flags FIN=0x01, UNIDIRECTIONAL=0x02
    SYN_REPLY (2)     stream id (31), header block; flag FIN
    RST_STREAM (3)    stream id (31), status code (32)
    SETTINGS (4)      count (32), then count x [flags (8), id (24), value (32)]
    PING (6)          id (32): a peer answers its partner's pings (odd ids from clients, even from
                      servers) by echoing the frame
    GOAWAY (7)        last good stream id (31), status (32)
    HEADERS (8)       stream id (31), header block
    WINDOW_UPDATE (9) stream id (31), delta (31)

Header blocks: count (32), then per header name length (32), name, value length (32), value
(several values are joined by NUL). Names are lower case. Each direction of a session compresses
its blocks with one zlib stream (preset dictionary ``DICTIONARY`` from the SPDY/3 spec), flushed
with Z_SYNC_FLUSH after each block, so compression and sending must happen in the same order:
the session compresses under its write lock.

The session that runs streams over these frames is :mod:`kybernetes.streaming.spdy`.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

VERSION = 3
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_SETTINGS_CLEAR = 0x01
DEFAULT_WINDOW = 64 * 1024
MAX_DATA_FRAME = 32 * 1024
"""What this implementation puts in one DATA frame (the format allows 16 MiB)."""
MAX_FRAME = 16 * 1024 * 1024


class FrameType(enum.IntEnum):
    SYN_STREAM = 1
    SYN_REPLY = 2
    RST_STREAM = 3
    SETTINGS = 4
    PING = 6
    GOAWAY = 7
    HEADERS = 8
    WINDOW_UPDATE = 9


class RstStatus(enum.IntEnum):
    PROTOCOL_ERROR = 1
    INVALID_STREAM = 2
    REFUSED_STREAM = 3
    UNSUPPORTED_VERSION = 4
    CANCEL = 5
    INTERNAL_ERROR = 6
    FLOW_CONTROL_ERROR = 7
    STREAM_IN_USE = 8
    STREAM_ALREADY_CLOSED = 9
    FRAME_TOO_LARGE = 11


class Setting(enum.IntEnum):
    UPLOAD_BANDWIDTH = 1
    DOWNLOAD_BANDWIDTH = 2
    ROUND_TRIP_TIME = 3
    MAX_CONCURRENT_STREAMS = 4
    CURRENT_CWND = 5
    DOWNLOAD_RETRANS_RATE = 6
    INITIAL_WINDOW_SIZE = 7
    CLIENT_CERTIFICATE_VECTOR_SIZE = 8


# The SPDY/3 header compression dictionary: 65 length-prefixed words, then a run of common
# header values, 1423 bytes in all (the zlib preset dictionary both ends must use).
_DICT_WORDS = [
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset", "accept-encoding",
    "accept-language", "accept-ranges", "age", "allow", "authorization", "cache-control", "connection",
    "content-base", "content-encoding", "content-language", "content-length", "content-location",
    "content-md5", "content-range", "content-type", "date", "etag", "expect", "expires", "from", "host",
    "if-match", "if-modified-since", "if-none-match", "if-range", "if-unmodified-since", "last-modified",
    "location", "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range",
    "referer", "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK", "version",
    "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
]
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _DICT_WORDS) + _DICT_TAIL.encode()


class ProtocolError(Exception):
    """Bytes that are not SPDY/3.1: a malformed frame or header block."""


def rst_name(status: int) -> str:
    """An RST_STREAM status by name, for error texts."""
    try:
        return RstStatus(status).name
    except ValueError:
        return f"status {status}"


# ---- frames -------------------------------------------------------------------------------------


@dataclass
class DataFrame:
    stream_id: int
    flags: int
    data: bytes

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


@dataclass
class ControlFrame:
    type: int
    flags: int
    payload: bytes
    version: int = VERSION


Frame = DataFrame | ControlFrame


def encode_data(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
    if len(data) >= 1 << 24:
        raise ValueError("DATA frame too large")
    return struct.pack(">IBBH", stream_id & 0x7FFFFFFF, FLAG_FIN if fin else 0,
                       len(data) >> 16, len(data) & 0xFFFF) + data


def encode_control(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) >= 1 << 24:
        raise ValueError("control frame too large")
    return struct.pack(">HHBBH", 0x8000 | VERSION, ftype, flags, len(payload) >> 16,
                       len(payload) & 0xFFFF) + payload


class FrameParser:
    """Incremental frame parser: ``feed`` bytes in any slicing, get whole frames out."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self.buf += data
        out: list[Frame] = []
        while len(self.buf) >= 8:
            flags = self.buf[4]
            length = int.from_bytes(self.buf[5:8], "big")
            if length > MAX_FRAME:
                raise ProtocolError(f"frame of {length} bytes")
            if len(self.buf) < 8 + length:
                break
            head = bytes(self.buf[:8])
            payload = bytes(self.buf[8:8 + length])
            del self.buf[:8 + length]
            if head[0] & 0x80:
                version = int.from_bytes(head[0:2], "big") & 0x7FFF
                out.append(ControlFrame(int.from_bytes(head[2:4], "big"), flags, payload, version))
            else:
                out.append(DataFrame(int.from_bytes(head[0:4], "big") & 0x7FFFFFFF, flags, payload))
        return out


# ---- header blocks ------------------------------------------------------------------------------


def encode_header_block(headers: Mapping[str, str]) -> bytes:
    parts = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        parts += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(parts)


def decode_header_block(block: bytes) -> dict[str, str]:
    def take(pos: int) -> tuple[bytes, int]:
        if pos + 4 > len(block):
            raise ProtocolError("truncated header block")
        n = int.from_bytes(block[pos:pos + 4], "big")
        if pos + 4 + n > len(block):
            raise ProtocolError("truncated header block")
        return block[pos + 4:pos + 4 + n], pos + 4 + n

    if len(block) < 4:
        raise ProtocolError("truncated header block")
    count = int.from_bytes(block[:4], "big")
    pos = 4
    out: dict[str, str] = {}
    for _ in range(count):
        name, pos = take(pos)
        value, pos = take(pos)
        out[name.decode("latin-1").lower()] = value.decode("latin-1")
    return out


class HeaderCompressor:
    """One direction's zlib stream for header blocks."""

    def __init__(self) -> None:
        self.z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY,
                                  DICTIONARY)

    def compress(self, headers: Mapping[str, str]) -> bytes:
        return self.z.compress(encode_header_block(headers)) + self.z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self) -> None:
        self.z = zlib.decompressobj(15, DICTIONARY)

    def decompress(self, data: bytes) -> dict[str, str]:
        try:
            return decode_header_block(self.z.decompress(data))
        except zlib.error as e:
            raise ProtocolError(f"header block: {e}") from e
