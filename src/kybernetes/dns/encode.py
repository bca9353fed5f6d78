"""Wire encoding of the zone's own records (RFC 1035 4.1.3, RFC 2782, RFC 3596), for the
precomputed answers.

dnspython parses every query and renders everything forwarded; rendering the zone's answers with
it costs about a millisecond each (name objects, renderer, compression tables), which made a
Service update cost milliseconds and a 10,000-Service initial list tens of seconds. The zone's
records are a handful of simple types with names we built ourselves, so they are encoded here
directly: the answer's owner is a pointer to the question (offset 12), every other name is written
whole (compression is optional, and RFC 2782 forbids it for SRV targets). Every answer the tests
read goes through dnspython's parser, which checks these bytes.
"""

from __future__ import annotations

import ipaddress
import struct

from kybernetes.dns.records import AAAA, CNAME, NS, PTR, SRV, TXT, A

QUESTION_POINTER = b"\xc0\x0c"
"""A compression pointer to the question's name, which starts right after the 12-byte header."""
_RR_HEADER = struct.Struct("!HHIH")
_IN = 1


def name_to_wire(text: str) -> bytes:
    """``a.b.`` as uncompressed wire bytes (lowercase ASCII names only); ValueError otherwise."""
    stripped = text.rstrip(".")
    out = bytearray()
    for label in stripped.split(".") if stripped else ():
        raw = label.encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError(f"bad label in {text!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    if len(out) > 255:
        raise ValueError(f"name too long: {text!r}")
    return bytes(out)


def parent(wire: bytes) -> bytes:
    """The wire name one label up (the root's parent is the root)."""
    return wire[wire[0] + 1:] if wire[0] else wire


def rdata(rdtype: int, text: str, weight: int = 0) -> bytes:
    """The RDATA of one record of the zone, from its :class:`~kybernetes.dns.records.Record` text.

    SRV text is ``"<port> <target>"``; the priority is 0 and ``weight`` is shared out by the caller
    (CoreDNS: 100 divided among the records of one name)."""
    if rdtype == A:
        return ipaddress.IPv4Address(text).packed
    if rdtype == AAAA:
        return ipaddress.IPv6Address(text).packed
    if rdtype in (PTR, CNAME, NS):
        return name_to_wire(text)
    if rdtype == SRV:
        port, target = text.split()
        return struct.pack("!HHH", 0, weight, int(port)) + name_to_wire(target)
    if rdtype == TXT:
        raw = text.strip('"').encode()
        return bytes([len(raw)]) + raw
    raise ValueError(f"no encoding for type {rdtype}")


def soa_rdata(zone: str, serial: int, minimum: int) -> bytes:
    """CoreDNS's SOA for a zone: ``ns.dns.<zone> hostmaster.<zone> serial 7200 1800 86400 minimum``."""
    return (name_to_wire(f"ns.dns.{zone}") + name_to_wire(f"hostmaster.{zone}")
            + struct.pack("!IIIII", serial & 0xFFFFFFFF, 7200, 1800, 86400, minimum))


def rr(owner: bytes, rdtype: int, ttl: int, data: bytes) -> bytes:
    """One resource record: owner (wire name or pointer), type, class IN, TTL, RDATA."""
    return owner + _RR_HEADER.pack(rdtype, _IN, ttl, len(data)) + data
