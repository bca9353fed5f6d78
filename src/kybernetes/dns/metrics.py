"""CoreDNS's prometheus plugin metrics for ``kyb dns``: names, help texts, labels and buckets as
CoreDNS's ``plugin/metrics/vars`` declares them, kept as plain counts on the query path.

Contract: :meth:`DNSMetrics.record` is called once per response sent (queries dropped unanswered
are not counted) and costs a few dict updates; the families are built when scraped
(:mod:`kybernetes.metrics.accumulate`'s style). Labels follow a kube-dns Corefile's one server
block ``.:53``: ``server`` is ``dns://:<port>``, ``zone`` is ``.``, ``view`` is empty;
``type`` is the query type's mnemonic for the types CoreDNS monitors, else ``other``; ``rcode``
is the response's 4-bit code by name (``NOERROR``, ``NXDOMAIN``, ...; CoreDNS prints others as
``RCODE<n>``); ``plugin`` is ``kubernetes`` for answers from the cluster zone, ``forward`` for
answers from upstream, empty for errors the server writes itself (FORMERR, NOTIMP, SERVFAIL).
Sizes are the whole messages' lengths, as CoreDNS measures them.
"""

from __future__ import annotations

import platform
import time
from bisect import bisect_left
from collections.abc import Iterator

import dns.rcode
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from kybernetes.metrics.accumulate import (
    HistogramState,
    counter_family,
    exponential_buckets,
    histogram_family,
)

TIME_BUCKETS = exponential_buckets(0.00025, 2, 16)
"""CoreDNS's ``plugin.TimeBuckets``: 0.25 ms to 8 s."""
SIZE_BUCKETS = (0.0, 100.0, 200.0, 300.0, 400.0, 511.0, 1023.0, 2047.0, 4095.0, 8291.0, 16e3, 32e3, 48e3, 64e3)
MONITORED_TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
                   33: "SRV", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3", 64: "SVCB",
                   65: "HTTPS", 251: "IXFR", 252: "AXFR", 255: "ANY"}
ZONE = "."


def _rcode_name(code: int) -> str:
    try:
        return dns.rcode.to_text(dns.rcode.Rcode(code))
    except ValueError:
        return f"RCODE{code}"


class DNSMetrics:
    """The server's counts; a ``prometheus_client`` collector (register it in the registry)."""

    def __init__(self, port: int, version: str = "") -> None:
        self.server = f"dns://:{port}"
        self.version = version
        self.counts: dict[tuple[str, int, bytes, int, str, int, int], int] = {}
        """(proto, family, qtype as sent, rcode, plugin, query size, reply size) -> responses: one dict
        update per query; the families' series are added up from it when scraped."""
        self.duration = HistogramState(TIME_BUCKETS)

    def record(self, proto: str, family: int, query: bytes, reply: bytes, plugin: str, started: float) -> None:
        """One response ``reply`` (a whole DNS message) to ``query`` sent over ``proto`` ("udp" or
        "tcp"), begun at ``started`` (``time.perf_counter()``). The question's name is taken to end at
        its first zero byte (as :func:`wire.fast_answer` reads it): a label holding a zero byte
        counts under whatever type follows the cut, at worst ``other``."""
        self.duration.observe(time.perf_counter() - started)
        end = query.find(0, 12)
        key = (proto, family, query[end + 1:end + 3], reply[3] & 0x0F, plugin, len(query), len(reply))
        self.counts[key] = self.counts.get(key, 0) + 1

    # -- scrape ----------------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        base = (self.server, ZONE, "")
        requests: dict[tuple[str, ...], int] = {}
        responses: dict[tuple[str, ...], int] = {}
        request_sizes: dict[str, HistogramState] = {}
        response_sizes: dict[str, HistogramState] = {}
        for (proto, family, qtype, rcode, plugin, qsize, rsize), n in list(self.counts.items()):
            request = (*base, proto, str(family), MONITORED_TYPES.get(int.from_bytes(qtype, "big"), "other"))
            requests[request] = requests.get(request, 0) + n
            response = (*base, _rcode_name(rcode), plugin)
            responses[response] = responses.get(response, 0) + n
            _observe(request_sizes, proto, qsize, n)
            _observe(response_sizes, proto, rsize, n)
        yield counter_family("coredns_dns_requests_total", "Counter of DNS requests made per zone, protocol and family.",
                             ("server", "zone", "view", "proto", "family", "type"), requests.items())
        yield counter_family("coredns_dns_responses_total", "Counter of response status codes.",
                             ("server", "zone", "view", "rcode", "plugin"), responses.items())
        yield histogram_family("coredns_dns_request_duration_seconds",
                               "Histogram of the time (in seconds) each request took per zone.",
                               ("server", "zone", "view"), [(base, self.duration)] if self.counts else [])
        yield histogram_family("coredns_dns_request_size_bytes",
                               "Size of the EDNS0 UDP buffer in bytes (64K for TCP) per zone and protocol.",
                               ("server", "zone", "view", "proto"), _per_proto(base, request_sizes))
        yield histogram_family("coredns_dns_response_size_bytes", "Size of the returned response in bytes.",
                               ("server", "zone", "view", "proto"), _per_proto(base, response_sizes))
        info = GaugeMetricFamily(
            "coredns_build_info",
            "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
            labels=("version", "revision", "goversion"))
        info.add_metric([self.version, "", f"python{platform.python_version()}"], 1)
        yield info


def _observe(per_proto: dict[str, HistogramState], proto: str, size: int, n: int) -> None:
    h = per_proto.get(proto)
    if h is None:
        h = per_proto[proto] = HistogramState(SIZE_BUCKETS)
    h.buckets[bisect_left(SIZE_BUCKETS, size)] += n
    h.sum += size * n


def _per_proto(base: tuple[str, str, str], per_proto: dict[str, HistogramState]) \
        -> list[tuple[tuple[str, ...], HistogramState]]:
    return [((*base, proto), h) for proto, h in sorted(per_proto.items())]
