"""The hot path's wire format: parse a plain query, assemble an answer from precomputed bytes.

A response to a query for a name the server knows is ``header + the client's own question +
precomputed sections``: :class:`Answer` holds the sections rendered once (by dnspython) for the
lowercase name, with compression pointers into the question at offset 12. A client's question
differs only in letter case, so has the same length, and the pointers stay valid; the client sees
its own spelling echoed (0x20-randomising resolvers check that).

:func:`parse_query` accepts only the common shape (one question, an uncompressed name, at most an
OPT record, opcode QUERY); anything else returns ``None`` and goes to the server's slow path
(dnspython's full parser), which answers FORMERR, NOTIMP or BADVERS as RFC 6891 and 1035 say.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
RA = 0x0080
CD = 0x0010
OPT = 41
EDNS_PAYLOAD = 1232
"""The UDP payload size this server advertises (the DNS flag day 2020 value)."""

_OPT_RR = b"\x00" + struct.pack("!HHIH", OPT, EDNS_PAYLOAD, 0, 0)
_HEADER = struct.Struct("!HHHHHH")
_ID_FLAGS = struct.Struct("!HH")
_TYPE_CLASS = struct.Struct("!HH")


def name_wire(name: dns.name.Name) -> bytes:
    """The uncompressed wire form of ``name``."""
    out = name.to_wire()
    assert out is not None
    return out


def rdtype(value: int) -> dns.rdatatype.RdataType:
    return dns.rdatatype.RdataType.make(value)


def rdclass(value: int) -> dns.rdataclass.RdataClass:
    return dns.rdataclass.RdataClass.make(value)


@dataclass(slots=True)
class Query:
    """A parsed query: what the answer needs to echo and where to look it up."""

    id: int
    flags: int
    """The request's flags the response copies (RD, CD)."""
    question: bytes
    """The question as the client wrote it: name, type, class."""
    key: bytes
    """Lowercase wire name + 2-byte type: the key of the precomputed answers."""
    qtype: int
    qclass: int
    payload: int
    """The client's EDNS UDP payload size; 0 without EDNS."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A response's sections after the question, for a question of a given length."""

    flags: int
    """QR, AA, RA and the rcode (RD/CD come from the query)."""
    counts: bytes
    """ANCOUNT, NSCOUNT, ARCOUNT without our OPT record."""
    counts_edns: bytes
    tail: bytes
    head: tuple[bytes, bytes]
    """Flags to counts, for a query without and with RD (the fast path's)."""
    head_edns: tuple[bytes, bytes]

    @classmethod
    def make(cls, flags: int, an: int, ns: int, ar: int, tail: bytes) -> Answer:
        counts, counts_edns = struct.pack("!HHH", an, ns, ar), struct.pack("!HHH", an, ns, ar + 1)

        def head(rd: int, c: bytes) -> bytes:
            return struct.pack("!HH", flags | rd, 1) + c

        return cls(flags, counts, counts_edns, tail, (head(0, counts), head(RD, counts)),
                   (head(0, counts_edns), head(RD, counts_edns)))


_PLAIN_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_OPT_COUNTS = b"\x00\x01\x00\x00\x00\x00\x00\x01"


def fast_answer(data: bytes, answers: dict[bytes, Answer]) -> bytes | None:
    """The UDP response to the commonest query -- opcode QUERY, RD or no flag at all, one
    uncompressed question, no EDNS or a bare OPT, a name with a precomputed answer that fits --
    or None (take the full path). Builds no object but the response.

    The name ends at its first zero byte: a label holding a zero byte could cut it short, but the
    cut prefix is then no name of the zone, so the lookup misses and the full path parses."""
    if len(data) < 17 or data[2] > 1 or data[3]:  # QR, opcode, AA, TC; or CD, Z, a response code
        return None
    end = data.find(0, 12) + 5  # the end of the question
    counts = data[4:12]
    if counts == _PLAIN_COUNTS:
        if end != len(data):
            return None
        answer = answers.get(data[12:end - 4].lower() + data[end - 4:end - 2])
        if answer is None:
            return None
        out = b"".join((data[:2], answer.head[data[2]], data[12:end], answer.tail))
        return out if len(out) <= 512 else None
    if counts == _OPT_COUNTS and end + 11 == len(data) and data[end:end + 3] == b"\x00\x00\x29" \
            and data[end + 6] == 0 and data[end + 9:end + 11] == b"\x00\x00":
        answer = answers.get(data[12:end - 4].lower() + data[end - 4:end - 2])
        if answer is None:
            return None
        out = b"".join((data[:2], answer.head_edns[data[2]], data[12:end], answer.tail, _OPT_RR))
        return out if len(out) <= max(512, int.from_bytes(data[end + 3:end + 5], "big")) else None
    return None


def parse_query(data: bytes) -> Query | None:
    """The query in ``data`` if it has the common shape, else ``None`` (the slow path decides)."""
    n = len(data)
    if n < 17:
        return None
    qid, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    if flags & 0xF800 or qd != 1 or an or ns or ar > 1:  # a response, not opcode QUERY, or odd counts
        return None
    i = 12
    while True:
        length = data[i]
        if length == 0:
            break
        if length > 63:  # a compression pointer (or a reserved label type) in a question
            return None
        i += length + 1
        if i >= n:
            return None
    end = i + 5
    if end > n:
        return None
    qtype, qclass = _TYPE_CLASS.unpack_from(data, i + 1)
    payload = 0
    if ar:
        # The OPT pseudo-record: root name, type 41, class = UDP payload size, TTL = extended
        # rcode, version and flags, then its options.
        if end + 11 > n or data[end] != 0:
            return None
        rtype, size, ttl, rdlen = struct.unpack_from("!HHIH", data, end + 1)
        if rtype != OPT or (ttl >> 16) & 0xFF != 0 or end + 11 + rdlen != n:
            return None  # another record, EDNS version > 0 (BADVERS) or trailing bytes
        payload = max(size, 512)
    elif end != n:
        return None
    question = data[12:end]
    return Query(qid, flags & (RD | CD), question, question[:-4].lower() + question[-4:-2], qtype, qclass, payload)


def assemble(query: Query, answer: Answer, limit: int) -> bytes:
    """The response to ``query``; a response longer than ``limit`` is cut to its question with TC."""
    head = _ID_FLAGS.pack(query.id, answer.flags | query.flags) + b"\x00\x01"
    if query.payload:
        out = head + answer.counts_edns + query.question + answer.tail + _OPT_RR
    else:
        out = head + answer.counts + query.question + answer.tail
    if len(out) <= limit:
        return out
    return truncated(query, answer.flags)


def truncated(query: Query, flags: int) -> bytes:
    """Header and question only, TC set: the client asks again over TCP (RFC 7766)."""
    head = _ID_FLAGS.pack(query.id, flags | query.flags | TC) + b"\x00\x01"
    if query.payload:
        return head + b"\x00\x00\x00\x00\x00\x01" + query.question + _OPT_RR
    return head + b"\x00\x00\x00\x00\x00\x00" + query.question


def udp_limit(query: Query) -> int:
    """How long a UDP response may be: 512 without EDNS, the client's payload size with it."""
    return query.payload or 512


def error_response(data: bytes, rcode: int) -> bytes | None:
    """A bare error response (no question) to a message that has at least a header, else None."""
    if len(data) < 12:
        return None
    qid, flags = _ID_FLAGS.unpack_from(data)
    if flags & QR:
        return None  # never answer a response: that is how two servers loop
    return _ID_FLAGS.pack(qid, QR | (flags & (0x7800 | RD | CD)) | (rcode & 0xF)) + b"\x00" * 8


def query_from_message(msg: dns.message.Message) -> Query:
    """A :class:`Query` for a message the slow path parsed (one question, opcode QUERY)."""
    q = msg.question[0]
    name = name_wire(q.name)
    question = name + _TYPE_CLASS.pack(q.rdtype, q.rdclass)
    payload = max(msg.payload, 512) if msg.edns >= 0 else 0
    return Query(msg.id, msg.flags & (RD | CD), question, name.lower() + question[-4:-2], int(q.rdtype),
                 int(q.rdclass), payload)


def message_to_answer_bytes(query: Query, msg: dns.message.Message, limit: int) -> bytes:
    """A dnspython response message, sent to ``query``'s client within ``limit`` bytes."""
    msg.id = query.id
    if query.payload:
        msg.use_edns(0, payload=EDNS_PAYLOAD)
    else:
        msg.use_edns(False)
    try:
        return msg.to_wire(max_size=limit)
    except dns.exception.TooBig:
        return truncated(query, (msg.flags & ~(RD | CD)) | msg.rcode())


def reply_rrsets(query: Query, rcode: int, answer: list[dns.rrset.RRset], authority: list[dns.rrset.RRset],
                 additional: list[dns.rrset.RRset], flags: int) -> dns.message.Message:
    """A response message with ``query``'s own question (its spelling kept)."""
    msg = dns.message.Message(id=query.id)
    msg.flags = flags | query.flags | QR
    msg.set_rcode(dns.rcode.Rcode.make(rcode))
    name = dns.name.from_wire(query.question, 0)[0]
    msg.find_rrset(msg.question, name, rdclass(query.qclass), rdtype(query.qtype), create=True)
    msg.answer.extend(answer)
    msg.authority.extend(authority)
    msg.additional.extend(additional)
    return msg

