"""The cluster zone in memory: records kept current from informer events, answers precomputed.

Contract:

- :meth:`ClusterZone.on_service`, :meth:`on_service_deleted`, :meth:`on_slice`,
  :meth:`on_slice_update`, :meth:`on_slice_deleted`, :meth:`on_namespace`, :meth:`on_namespace_deleted` take the objects of
  informer events and update the zone at once, in time proportional to the one Service they touch:
  the Service's records are recomputed (:func:`records.service_records`) and diffed against what
  it published before; only the names whose records changed are rendered again.
- :attr:`ClusterZone.answers` maps ``lowercase wire name + 2-byte type`` to the precomputed
  :class:`~kybernetes.dns.wire.Answer`: the hot path is one dict lookup. Records that two Services
  publish alike (a pod behind two Services has one PTR per Service name) are reference-counted.
- :meth:`ClusterZone.lookup` answers every other question about names in the zone without
  forwarding: pod names (``a-b-c-d.<ns>.pod.<zone>``, CoreDNS's ``pods insecure``: any address,
  in a namespace that exists), NODATA for a name that exists with other types (a namespace's
  ``<ns>.svc.<zone>``, empty non-terminals such as ``svc.<zone>``), NXDOMAIN for the rest, both
  with the zone's SOA in the authority section (CoreDNS's SOA: ``ns.dns.<zone>``,
  ``hostmaster.<zone>``, serial = the Unix time of the last change, 7200 1800 86400, minimum = TTL).
  It returns ``None`` for a name outside the zone with no PTR here: the server forwards those.
- :meth:`ClusterZone.cname_target` is the ExternalName target of a name, for the server to chase.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import Counter
from typing import Any

import dns.name

from kybernetes.dns import encode, records
from kybernetes.dns.records import SERVICE_NAME_LABEL, Record
from kybernetes.dns.wire import AA, QR, RA, Answer, name_wire

Obj = dict[str, Any]
log = logging.getLogger(__name__)
DEFAULT_TTL = 5
"""CoreDNS's kubernetes plugin default: answers age fast because Services change."""
NXDOMAIN = 3
MAX_MESSAGE = 65535
_STATIC = "zone"


def _key(name: str, rd: int) -> bytes:
    return encode.name_to_wire(name) + rd.to_bytes(2, "big")


class ClusterZone:
    """One cluster domain's records and precomputed answers (see the module doc)."""

    def __init__(self, domain: str = "cluster.local", ttl: int = DEFAULT_TTL) -> None:
        self.zone = dns.name.from_text(domain.strip(".").lower() + ".")
        self.origin = self.zone.to_text()
        self._zone_wire = name_wire(self.zone)
        self.ttl = ttl
        self.answers: dict[bytes, Answer] = {}
        self.namespaces: set[str] = set()
        self.serial = int(time.time())
        self._services: dict[str, Obj] = {}
        self._slices: dict[str, dict[str, Obj]] = {}  # service key -> slice key -> slice
        self._published: dict[str, set[Record]] = {}  # source -> its records
        self._rdatas: dict[tuple[str, int], Counter[str]] = {}
        self._names: Counter[bytes] = Counter()  # wire names in the zone with records below or at them
        self._cnames: dict[bytes, dns.name.Name] = {}
        self.nxdomain = self.nodata = Answer.make(0, 0, 0, 0, b"")
        self._publish(_STATIC, records.zone_records(self.origin))

    # -- informer events ---------------------------------------------------------------------------

    def on_service(self, svc: Obj) -> None:
        key = _obj_key(svc)
        self._services[key] = svc
        self._refresh(key)

    def on_service_deleted(self, svc: Obj) -> None:
        key = _obj_key(svc)
        self._services.pop(key, None)
        self._refresh(key)

    def on_slice(self, sl: Obj) -> None:
        owner = _slice_owner(sl)
        if owner is None:
            return
        self._slices.setdefault(owner, {})[_obj_key(sl)] = sl
        self._refresh(owner)

    def on_slice_update(self, old: Obj, new: Obj) -> None:
        if _slice_owner(old) != _slice_owner(new):  # relabelled to another Service: leave the old one
            self.on_slice_deleted(old)
        self.on_slice(new)

    def on_slice_deleted(self, sl: Obj) -> None:
        owner = _slice_owner(sl)
        if owner is None:
            return
        slices = self._slices.get(owner)
        if slices is not None:
            slices.pop(_obj_key(sl), None)
            if not slices:
                del self._slices[owner]
        self._refresh(owner)

    def on_namespace(self, ns: Obj) -> None:
        name = str((ns.get("metadata") or {}).get("name") or "").lower()
        if name:
            self.namespaces.add(name)

    def on_namespace_deleted(self, ns: Obj) -> None:
        self.namespaces.discard(str((ns.get("metadata") or {}).get("name") or "").lower())

    # -- lookups -------------------------------------------------------------------------------------

    def lookup(self, key: bytes, qtype: int) -> Answer | None:
        """The answer for a name that missed :attr:`answers`, or None when it is not ours (forward)."""
        labels = _labels(key[:-2])
        if labels is None:
            return self.nxdomain if _ends_with(key, self.zone) else None
        zone_labels = len(self.zone.labels) - 1
        if len(labels) < zone_labels or labels[len(labels) - zone_labels:] != list(self.zone.labels[:-1]):
            return None
        rel = labels[:len(labels) - zone_labels]
        if len(rel) == 3 and rel[2] == b"pod":
            pod = self._pod_answer(rel[0], rel[1], key[:-2], qtype)
            if pod is not None:
                return pod
        if key[:-2] in self._names or key[:-2] in self._cnames:
            return self.nodata
        if len(rel) == 1 and rel[0] in (b"svc", b"pod"):
            return self.nodata
        if len(rel) == 2 and rel[1] in (b"svc", b"pod") and rel[0].decode("ascii", "replace") in self.namespaces:
            return self.nodata
        return self.nxdomain

    def cname_target(self, name_wire: bytes) -> dns.name.Name | None:
        return self._cnames.get(name_wire)

    def in_zone(self, name: dns.name.Name) -> bool:
        return name.is_subdomain(self.zone)

    def _pod_answer(self, label: bytes, ns: bytes, name_wire: bytes, qtype: int) -> Answer | None:
        if ns.decode("ascii", "replace") not in self.namespaces:
            return None
        text = label.decode("ascii", "replace")
        ip_text = text.replace("-", ".") if text.count("-") == 3 and "--" not in text else text.replace("-", ":")
        try:
            ip = ipaddress.ip_address(ip_text)
        except ValueError:
            return None
        rd = records.A if ip.version == 4 else records.AAAA
        if qtype != rd:
            return self.nodata
        return self._answer(len(name_wire), [encode.rr(encode.QUESTION_POINTER, rd, self.ttl, ip.packed)], [])

    # -- keeping the records -------------------------------------------------------------------------

    def _refresh(self, service_key: str) -> None:
        svc = self._services.get(service_key)
        new: set[Record] = set()
        if svc is not None:
            slices = (self._slices.get(service_key) or {}).values()
            new = {r for r in records.service_records(svc, slices, self.origin) if _encodable(r)}
        self._publish(service_key, new)

    def _publish(self, source: str, new: set[Record]) -> None:
        old = self._published.get(source, set())
        if new == old:
            return
        if new:
            self._published[source] = new
        else:
            self._published.pop(source, None)
        touched: set[tuple[str, int]] = set()
        for rec in old - new:
            counts = self._rdatas.get((rec.name, rec.rdtype))
            if counts is not None:
                counts[rec.rdata] -= 1
                if counts[rec.rdata] <= 0:
                    del counts[rec.rdata]
                if not counts:
                    del self._rdatas[(rec.name, rec.rdtype)]
            self._count_name(rec.name, -1)
            touched.add((rec.name, rec.rdtype))
        for rec in new - old:
            self._rdatas.setdefault((rec.name, rec.rdtype), Counter())[rec.rdata] += 1
            self._count_name(rec.name, +1)
            touched.add((rec.name, rec.rdtype))
        # An SRV answer carries its targets' addresses: render every SRV of the source again.
        touched |= {(r.name, r.rdtype) for r in old | new if r.rdtype == records.SRV}
        if any(name == f"ns.dns.{self.origin}" for name, _ in touched):
            touched.add((self.origin, records.NS))  # the NS answer carries the server's address
        for name, rd in touched:
            self._render(name, rd)
        self.serial = max(self.serial + 1, int(time.time()))
        self._render_negative()

    def _count_name(self, name: str, delta: int) -> None:
        """Count ``name`` and its ancestors down to the zone (names outside the zone: nothing)."""
        wire = encode.name_to_wire(name)
        if not wire.endswith(self._zone_wire):
            return
        chain = []
        while len(wire) > len(self._zone_wire):
            chain.append(wire)
            wire = encode.parent(wire)
        if wire != self._zone_wire:
            return  # the suffix matched inside a label, not at a boundary
        for w in (*chain, wire):
            self._names[w] += delta
            if self._names[w] <= 0:
                del self._names[w]

    def _render(self, name: str, rd: int) -> None:
        key = _key(name, rd)
        values = sorted(self._rdatas.get((name, rd)) or ())
        if rd == records.CNAME:
            if values:
                self._cnames[key[:-2]] = dns.name.from_text(values[0])
            else:
                self._cnames.pop(key[:-2], None)
        if not values:
            self.answers.pop(key, None)
            return
        weight = 100 // len(values) if rd == records.SRV else 0
        answer = [encode.rr(encode.QUESTION_POINTER, rd, self.ttl, encode.rdata(rd, v, weight)) for v in values]
        additional: list[bytes] = []
        if rd == records.SRV:
            for target in sorted({v.split()[-1] for v in values}):
                additional += self._address_rrs(target)
        elif rd == records.NS:
            additional += self._address_rrs(values[0])
        self.answers[key] = self._answer(len(key) - 2, answer, additional)

    def _address_rrs(self, name: str) -> list[bytes]:
        owner = encode.name_to_wire(name)
        return [encode.rr(owner, rd, self.ttl, encode.rdata(rd, v))
                for rd in (records.A, records.AAAA) for v in sorted(self._rdatas.get((name, rd)) or ())]

    def _answer(self, qname_len: int, answer: list[bytes], additional: list[bytes]) -> Answer:
        """An answer that fits a TCP message: the additional section goes first, then records."""
        room = MAX_MESSAGE - 12 - qname_len - 4 - 11  # header, question, our OPT record
        if sum(map(len, answer)) + sum(map(len, additional)) > room:
            additional = []
            while answer and sum(map(len, answer)) > room:
                answer = answer[:-1]
        return Answer.make(QR | AA, len(answer), 0, len(additional), b"".join(answer + additional))

    def _render_negative(self) -> None:
        soa = encode.soa_rdata(self.origin, self.serial, self.ttl)
        soa_ttl = min(self.ttl, 300)
        authority = encode.rr(self._zone_wire, records.SOA, soa_ttl, soa)
        # CoreDNS sets RA on its negative answers (and AA).
        self.nxdomain = Answer.make(QR | AA | RA | NXDOMAIN, 0, 1, 0, authority)
        self.nodata = Answer.make(QR | AA | RA, 0, 1, 0, authority)
        self.answers[self._zone_wire + records.SOA.to_bytes(2, "big")] = Answer.make(
            QR | AA, 1, 0, 0, encode.rr(encode.QUESTION_POINTER, records.SOA, soa_ttl, soa))


def _encodable(rec: Record) -> bool:
    """Whether the record has a wire form (the API server validates names, but a DNS name has
    limits of its own: 63 bytes a label, 255 a name)."""
    try:
        encode.name_to_wire(rec.name)
        encode.rdata(rec.rdtype, rec.rdata)
    except (ValueError, UnicodeError):
        log.warning("dns: skipping a record that has no wire form: %s", rec)
        return False
    return True


def _labels(wire: bytes) -> list[bytes] | None:
    out: list[bytes] = []
    i = 0
    while i < len(wire):
        n = wire[i]
        if n == 0:
            return out
        out.append(wire[i + 1:i + 1 + n])
        i += n + 1
    return None


def _ends_with(key: bytes, zone: dns.name.Name) -> bool:
    return key[:-2].endswith(name_wire(zone))


def _obj_key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _slice_owner(sl: Obj) -> str | None:
    meta = sl.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    if not isinstance(service, str) or not service:
        return None
    return f"{meta.get('namespace') or ''}/{service}"
