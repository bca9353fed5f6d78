"""A pod's resolver configuration (its /etc/resolv.conf), composed as the kubelet's DNS configurer does.

Contract (Kubernetes' `pkg/kubelet/network/dns`), by `spec.dnsPolicy`:

- ``ClusterFirst`` (the default) and ``ClusterFirstWithHostNet``: the cluster DNS servers
  (`--cluster-dns`) are the only nameservers; the search list is ``<ns>.svc.<domain>
  svc.<domain> <domain>`` followed by the host's search domains (duplicates dropped); the options
  are ``ndots:5`` alone. Without a cluster domain the host's search list is kept as is.
  A ``hostNetwork`` pod with ``ClusterFirst`` falls back to ``Default``; without any cluster DNS
  server the pod falls back to ``Default`` too, with a ``MissingClusterDNS`` warning event on the
  node and on the pod.
- ``Default``: the host's resolver file (`--resolv-conf`) as it is; with an empty
  `--resolv-conf`, ``nameserver 127.0.0.1`` (one per node IP family) and ``search .``.
- ``None``: nothing but `spec.dnsConfig`.

`spec.dnsConfig` is then merged in every case: nameservers and searches appended (duplicates
dropped), options by name (the pod's value wins). Finally the limits: at most 3 nameservers
("Nameserver limits were exceeded, ..."), at most 32 search domains, none longer than 253
characters, and a search line of at most 2048 characters ("Search Line limits were exceeded, ...");
each cut is a ``DNSConfigForming`` warning event on the pod with the kubelet's wording.

The host's file is checked too (`check_host_limits`, every 30 s as the kubelet does), with node
warnings when its search line could not fit in pods'.

Everything here is pure but the reading of the host's file; the callers record the returned events.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kybernetes.api.obj import Obj

MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32  # validation.MaxDNSSearchPathsExpanded (ExpandedDNSConfig is GA)
MAX_SEARCH_CHARS = 2048  # validation.MaxDNSSearchListCharsExpanded
MAX_DOMAIN_LENGTH = 253  # a DNS-1123 subdomain; longer search paths make some resolvers abort
DEFAULT_OPTIONS = ("ndots:5",)
MAX_RESOLV_CONF_BYTES = 10 << 20


@dataclass(frozen=True)
class ResolvConf:
    """What a resolv.conf says: nameservers (accumulated), the last search line, the last options line."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def parse_resolv_conf(text: str) -> ResolvConf:
    """Parses as the kubelet does: `#` lines skipped, a trailing dot dropped from search domains."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        trimmed = line.strip()
        if trimmed.startswith("#"):
            continue
        fields = trimmed.split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) >= 2:
            servers.append(fields[1])
        elif fields[0] == "search":
            searches = [s.removesuffix(".") for s in fields[1:]]
        elif fields[0] == "options":
            options = fields[1:]
    return ResolvConf(tuple(servers), tuple(searches), tuple(options))


def read_host_resolv_conf(path: Path | None) -> ResolvConf | None:
    """The host's resolver file; None when `--resolv-conf` is empty; empty when the file is unreadable."""
    if path is None or str(path) == "":
        return None
    try:
        with open(path, "rb") as f:
            return parse_resolv_conf(f.read(MAX_RESOLV_CONF_BYTES).decode(errors="replace"))
    except OSError:
        return ResolvConf()


@dataclass(frozen=True)
class DNSEvent:
    """A Warning event the composition asks for: on the node (`on_node`) or on the pod."""

    reason: str
    message: str
    on_node: bool = False


@dataclass(frozen=True)
class PodDNS:
    """The composed resolver: what goes into the CRI DNSConfig, and the events to record."""

    servers: list[str]
    searches: list[str]
    options: list[str]
    events: list[DNSEvent] = field(default_factory=list)

    def resolv_conf(self) -> str:
        """The file as containerd writes it (nameserver lines, then search, then options)."""
        lines = [f"nameserver {s}" for s in self.servers]
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class DNSSettings:
    """The kubelet's DNS flags: `--cluster-dns` (repeatable), `--cluster-domain`, `--resolv-conf`."""

    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = ""
    resolv_conf: Path | None = Path("/etc/resolv.conf")
    node_ips: tuple[str, ...] = ()


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _pod_desc(pod: Obj) -> str:
    m = pod.get("metadata") or {}
    return f"{m.get('name', '')}_{m.get('namespace', '')}({m.get('uid', '')})"


def _uses_cluster_dns(spec: Obj) -> bool:
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    if policy == "ClusterFirstWithHostNet":
        return True
    if policy == "ClusterFirst":
        return not spec.get("hostNetwork")
    return False  # Default (and anything the API server let through, which it does not)


def compose_pod_dns(pod: Obj, settings: DNSSettings, host: ResolvConf | None) -> PodDNS:
    """The pod's resolver from the policy, the host's file (`host`, None: `--resolv-conf ""`) and dnsConfig."""
    spec = pod.get("spec") or {}
    events: list[DNSEvent] = []
    base = host or ResolvConf()
    servers, searches, options = list(base.servers), list(base.searches), list(base.options)
    if spec.get("dnsPolicy") == "None":
        servers, searches, options = [], [], []
    elif _uses_cluster_dns(spec) and settings.cluster_dns:
        servers = list(settings.cluster_dns)
        if settings.cluster_domain:
            d = settings.cluster_domain
            namespace = (pod.get("metadata") or {}).get("namespace", "")
            searches = _unique([f"{namespace}.svc.{d}", f"svc.{d}", d, *searches])
        options = list(DEFAULT_OPTIONS)
    else:
        if _uses_cluster_dns(spec):
            msg = ('kubelet does not have ClusterDNS IP configured and cannot create Pod using "ClusterFirst" '
                   'policy. Falling back to "Default" policy.')
            events.append(DNSEvent("MissingClusterDNS", msg, on_node=True))
            events.append(DNSEvent("MissingClusterDNS", f'pod: "{_pod_desc(pod)}". {msg}'))
        if host is None:
            servers += ["::1" if ipaddress.ip_address(ip).version == 6 else "127.0.0.1"
                        for ip in settings.node_ips] or ["127.0.0.1"]
            searches = ["."]
    extra = spec.get("dnsConfig")
    if extra is not None:
        servers = _unique([*servers, *(extra.get("nameservers") or [])])
        searches = _unique([*searches, *(extra.get("searches") or [])])
        options = merge_options(options, extra.get("options") or [])
    servers = _fit_nameservers(servers, events)
    searches = _fit_searches(searches, events)
    return PodDNS(servers, searches, options, events)


def check_host_limits(settings: DNSSettings) -> list[DNSEvent]:
    """The kubelet's CheckLimitsForResolvConf: node warnings (reason CheckLimitsForResolvConf) when
    the host's search line would not fit in pods' (3 domains fewer with a cluster domain), when a
    domain is longer than 253 characters, or when the file cannot be read."""
    path = settings.resolv_conf
    if path is None or str(path) == "":
        return []
    try:
        with open(path, "rb") as f:
            host = parse_resolv_conf(f.read(MAX_RESOLV_CONF_BYTES).decode(errors="replace"))
    except OSError as err:
        return [DNSEvent("CheckLimitsForResolvConf", str(err), on_node=True)]
    limit = MAX_SEARCH_PATHS - (3 if settings.cluster_domain else 0)
    if len(host.searches) > limit:
        msg = f"Resolv.conf file '{path}' contains search line consisting of more than {limit} domains!"
    elif any(len(s) > MAX_DOMAIN_LENGTH for s in host.searches):
        msg = (f'Resolv.conf file "{path}" contains a search path which length is more than allowed '
               f"{MAX_DOMAIN_LENGTH} chars!")
    elif len(" ".join(host.searches)) > MAX_SEARCH_CHARS:
        msg = f"Resolv.conf file '{path}' contains search line which length is more than allowed {MAX_SEARCH_CHARS} chars!"
    else:
        return []
    return [DNSEvent("CheckLimitsForResolvConf", msg, on_node=True)]


def merge_options(existing: Sequence[str], pod_options: Sequence[Obj]) -> list[str]:
    """Options by name, the pod's value replacing the existing one (kept in first-seen order)."""
    merged: dict[str, str] = {}
    for text in existing:
        name, _, value = text.partition(":")
        merged[name] = value
    for opt in pod_options:
        merged[str(opt.get("name", ""))] = "" if opt.get("value") is None else str(opt["value"])
    return [f"{name}:{value}" if value else name for name, value in merged.items()]


def _fit_nameservers(servers: list[str], events: list[DNSEvent]) -> list[str]:
    if len(servers) <= MAX_NAMESERVERS:
        return servers
    servers = servers[:MAX_NAMESERVERS]
    events.append(DNSEvent("DNSConfigForming", "Nameserver limits were exceeded, some nameservers have been "
                                               f"omitted, the applied nameserver line is: {' '.join(servers)}"))
    return servers


def _fit_searches(searches: list[str], events: list[DNSEvent]) -> list[str]:
    exceeded = len(searches) > MAX_SEARCH_PATHS
    searches = searches[:MAX_SEARCH_PATHS]
    kept = [s for s in searches if len(s) <= MAX_DOMAIN_LENGTH]
    exceeded = exceeded or len(kept) != len(searches)
    # Whole domains are dropped from the end until the line fits.
    while kept and len(" ".join(kept)) > MAX_SEARCH_CHARS:
        kept.pop()
        exceeded = True
    if exceeded:
        events.append(DNSEvent("DNSConfigForming", "Search Line limits were exceeded, some search paths have been "
                                                   f"omitted, the applied search line is: {' '.join(kept)}"))
    return kept


__all__ = [
    "DEFAULT_OPTIONS",
    "MAX_NAMESERVERS",
    "MAX_SEARCH_CHARS",
    "MAX_SEARCH_PATHS",
    "DNSEvent",
    "DNSSettings",
    "PodDNS",
    "ResolvConf",
    "check_host_limits",
    "compose_pod_dns",
    "merge_options",
    "parse_resolv_conf",
    "read_host_resolv_conf",
]
