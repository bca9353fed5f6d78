"""A tiny static DNS server on loopback (UDP and TCP, dnspython), standing in for the node's resolver.

Tests point ``kyb dns`` at it through a resolv.conf; it never forwards anywhere. It answers from a
dict of (lowercase name, type) -> list of rdata texts (TTL from ``ttl``), NXDOMAIN with an SOA for
any other name, and counts the questions it got so tests can see what the cache absorbed.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections import Counter
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset


class StaticUpstream:
    def __init__(self, records: dict[tuple[str, str], list[str]], ttl: int = 60) -> None:
        self.records = {(n.lower().rstrip(".") + ".", t): v for (n, t), v in records.items()}
        self.ttl = ttl
        self.asked: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        upstream = self

        class UDP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = upstream.respond(data)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class TCP(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(5)
                head = self.request.recv(2)
                if len(head) < 2:
                    return
                want, data = struct.unpack("!H", head)[0], b""
                while len(data) < want:
                    chunk = self.request.recv(want - len(data))
                    if not chunk:
                        return
                    data += chunk
                reply = upstream.respond(data, tcp=True)
                if reply is not None:
                    self.request.sendall(struct.pack("!H", len(reply)) + reply)

        for attempt in range(20):  # one port for both: the UDP one may be taken for TCP
            self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), UDP)
            port = self.udp.server_address[1]
            try:
                self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), TCP)
                break
            except OSError:
                self.udp.server_close()
                if attempt == 19:
                    raise
        self.port = port
        self._threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (self.udp, self.tcp)]

    def respond(self, data: bytes, tcp: bool = False) -> bytes | None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return None
        q = query.question[0]
        name, rdtype = q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype)
        with self._lock:
            self.asked[(name, rdtype)] += 1
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.RA
        values = self.records.get((name, rdtype))
        if values:
            reply.answer.append(dns.rrset.from_text_list(q.name, self.ttl, "IN", rdtype, values))
        elif not any(n == name for n, _ in self.records):
            reply.set_rcode(dns.rcode.NXDOMAIN)
            reply.authority.append(dns.rrset.from_text(
                "example.", self.ttl, "IN", "SOA", "ns.example. host.example. 1 7200 1800 86400 30"))
        try:
            return reply.to_wire(max_size=65535 if tcp else max(512, query.payload if query.edns >= 0 else 512))
        except dns.exception.TooBig:
            cut = dns.message.make_response(query)
            cut.flags |= dns.flags.TC | dns.flags.RA
            return cut.to_wire()

    def resolv_conf(self) -> str:
        return f"nameserver 127.0.0.1:{self.port}\n"

    def __enter__(self) -> StaticUpstream:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        for s in (self.udp, self.tcp):
            s.shutdown()
            s.server_close()


def udp_exchange(data: bytes, port: int, host: str = "127.0.0.1", timeout: float = 2.0) -> bytes | None:
    """Send one datagram, return the reply (None on timeout)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, (host, port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None
