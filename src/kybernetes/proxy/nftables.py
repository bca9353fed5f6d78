"""Services and EndpointSlices -> one nftables table, applied atomically.

Data flow::

    Services + EndpointSlices (informer caches)
      -> build_service_ports(): one ServicePort per (Service, port, protocol) with the IPv4
         ClusterIPs inside the service range, the NodePort, and the endpoints to use
         (ready ones; if none is ready, the serving-and-terminating ones, as kube-proxy does)
      -> render_table(): the complete text of ``table ip NAME`` (deterministic: same input, same text)
      -> apply(): ``nft -f -`` with "add table; delete table; table { ... }" in ONE file, which nft
         runs as one transaction: the kernel switches from the old table to the new one atomically
         and no packet ever sees a half-built table

Everything lives in the proxy's own ``table ip NAME``; nothing else in the ruleset is read or
changed. Every rule matches only packets addressed to a ClusterIP of the service range or to a
NodePort on one of the configured node addresses (loopback, the pod bridge's gateway), or
packets this table itself marked for masquerading.

Rule layout (``ADDR . PROTO . PORT`` keys are ``ipv4_addr . inet_proto . inet_service``)::

    map service-ips          ADDR.PROTO.PORT -> goto svc-* (ClusterIP ports with endpoints)
                                            -> goto ext-* (NodePorts with endpoints, per node address)
    set cluster-ips          every ClusterIP we serve (used to reject what was not DNATed)
    set no-endpoint-nodeports  ADDR.PROTO.PORT of NodePorts whose Service has no endpoint

    chain nat-prerouting     hook prerouting, dstnat:  vmap @service-ips     (traffic from pods)
    chain nat-output         hook output, -100:        vmap @service-ips     (traffic from the host)
    chain nat-postrouting    hook postrouting, srcnat: masquerade what carries our mark, clear it
    chain filter-forward     hook forward:  still addressed to a ClusterIP (not DNATed) -> reject
    chain filter-output      hook output, -90 (after DNAT): the same for the host's own traffic, and
                             NodePorts without endpoints -> reject
    chain filter-input       hook input: NodePorts without endpoints -> reject (from pods); with
                             route_localnet on the bridge, drop 127/8 packets from it that are not
                             replies of our own DNAT (the CVE-2020-8558 guard)

    chain svc-HASH-ns/name/proto/port    one per Service port:
        [ip saddr != CLUSTER_CIDR jump mark-for-masquerade]   (off-cluster clients, e.g. the host)
        [ip saddr @aff-EP goto ep-EP ...]                     (sessionAffinity: ClientIP)
        numgen random mod N vmap { 0 : goto ep-..., 1 : goto ep-... }
    chain ext-HASH-...   NodePort entry: jump mark-for-masquerade; goto svc-...
    chain ep-HASH-...__IP/PORT   one per endpoint:
        ip saddr IP jump mark-for-masquerade    (hairpin: a pod reaching itself through the Service
                                                 must see the reply come back through the gateway)
        [update @aff-EP { ip saddr }]
        meta l4proto tcp dnat to IP:PORT

A Service port without endpoints gets no ``service-ips`` entry, so its packets keep the ClusterIP
as destination and the filter chains reject them (TCP reset, ICMP port-unreachable otherwise):
clients fail fast instead of timing out, as with kube-proxy.

Masquerading uses one packet-mark bit (``0x4000`` by default, like kube-proxy), set in the nat
chains on a connection's first packet and cleared in postrouting, so it never leaves the host.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kybernetes.api.obj import Obj

log = logging.getLogger(__name__)


SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_MARK = 0x4000
DEFAULT_AFFINITY_TIMEOUT = 10800
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
NFT = "nft"
# What nft's grammar takes as a bare table name (and short enough for the kernel).
TABLE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")


def check_table_name(name: str) -> str:
    if not TABLE_NAME_RE.match(name):
        raise ValueError(f"invalid nftables table name {name!r}")
    return name


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int


@dataclass
class ServicePort:
    """One (Service, port) as the data plane sees it."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # nft spelling: tcp, udp, sctp
    port: int
    cluster_ips: list[str] = field(default_factory=list)
    node_port: int = 0
    endpoints: list[Endpoint] = field(default_factory=list)
    affinity_timeout: int = 0  # seconds; 0 = no session affinity

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port_name or self.port}"


# ---- from API objects to ServicePorts ------------------------------------------------------------


def _endpoint_usable(ep: Obj) -> tuple[bool, bool]:
    """(ready, serving-and-terminating) per the EndpointSlice API: an unset ``ready`` means ready,
    an unset ``serving`` means the same as ``ready``."""
    conds = ep.get("conditions") or {}
    ready = conds.get("ready") is not False
    serving = conds.get("serving")
    serving = ready if serving is None else bool(serving)
    terminating = conds.get("terminating") is True
    return ready, serving and terminating


def build_service_ports(services: Iterable[Obj], slices: Iterable[Obj], service_cidr: str) -> list[ServicePort]:
    """Join Services with their EndpointSlices (label ``kubernetes.io/service-name``), sorted by id.

    Only IPv4 ClusterIPs inside ``service_cidr`` are taken (anything else is not ours to capture);
    ExternalName and headless Services have no ClusterIP and so no rules. Slice ports are matched to
    Service ports by name and protocol, and give the endpoint's target port.
    """
    cidr = ipaddress.ip_network(service_cidr)
    by_service: dict[tuple[str, str], list[Obj]] = {}
    for sl in slices:
        meta = sl.get("metadata") or {}
        svc_name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc_name and (sl.get("addressType") or "IPv4") == "IPv4":
            by_service.setdefault((meta.get("namespace") or "", svc_name), []).append(sl)
    out: list[ServicePort] = []
    for svc in services:
        meta = svc.get("metadata") or {}
        spec = svc.get("spec") or {}
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        if spec.get("type") == "ExternalName":
            continue
        ips: list[str] = []
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            try:
                addr = ipaddress.ip_address(ip or "")
            except ValueError:
                continue  # None, "None" (headless), ""
            if addr.version == 4 and addr in cidr:
                ips.append(str(addr))
            else:
                log.debug("service %s/%s: ClusterIP %s outside %s, ignored", ns, name, ip, cidr)
        if not ips:
            continue
        affinity = 0
        if spec.get("sessionAffinity") == "ClientIP":
            cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
            affinity = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
        with_nodeports = spec.get("type") in ("NodePort", "LoadBalancer")
        for sp in spec.get("ports") or []:
            proto = PROTOCOLS.get(sp.get("protocol") or "TCP")
            if proto is None:
                continue
            port_name = sp.get("name") or ""
            ready: set[Endpoint] = set()
            terminating: set[Endpoint] = set()
            for sl in by_service.get((ns, name), []):
                target = next((int(p["port"]) for p in sl.get("ports") or []
                               if (p.get("name") or "") == port_name and p.get("port")
                               and (p.get("protocol") or "TCP") == (sp.get("protocol") or "TCP")), None)
                if target is None:
                    continue
                for ep in sl.get("endpoints") or []:
                    is_ready, is_terminating = _endpoint_usable(ep)
                    for addr in (ep.get("addresses") or [])[:1]:  # one address per endpoint (API rule)
                        if is_ready:
                            ready.add(Endpoint(addr, target))
                        elif is_terminating:
                            terminating.add(Endpoint(addr, target))
            out.append(ServicePort(
                namespace=ns, name=name, port_name=port_name, protocol=proto, port=int(sp.get("port") or 0),
                cluster_ips=ips, node_port=int(sp.get("nodePort") or 0) if with_nodeports else 0,
                endpoints=sorted(ready or terminating), affinity_timeout=affinity,
            ))
    out.sort(key=lambda p: p.id)
    return out


# ---- rendering -------------------------------------------------------------------------------------


def _hash(s: str) -> str:
    """kube-proxy's chain-name hash: a short, stable base32 digest that keeps names unique."""
    return base64.b32encode(hashlib.sha256(s.encode()).digest()).decode()[:8]


def _q(s: str) -> str:
    """A quoted nft string (comments); our inputs are DNS names, so only quotes need care."""
    return '"' + s.replace('"', "'") + '"'


def _key(ip: str, proto: str, port: int) -> str:
    return f"{ip} . {proto} . {port}"


def _set_body(typ: str, elements: Sequence[str], extra: str = "") -> list[str]:
    lines = [f"\t\ttype {typ}{extra}"]
    if elements:  # "elements = { }" is a syntax error: an empty set has no elements clause
        lines.append("\t\telements = {")
        lines += [f"\t\t\t{e}," for e in elements]
        lines.append("\t\t}")
    return lines


@dataclass
class RenderOptions:
    table: str = "kybernetes-proxy"
    service_cidr: str = "10.43.0.0/16"
    cluster_cidr: str = "10.42.0.0/16"
    node_addresses: Sequence[str] = ("127.0.0.1",)
    masquerade_all: bool = False  # masquerade pod clients too (needed without br_netfilter)
    mark: int = DEFAULT_MARK
    localnet_guard_iface: str = ""  # bridge with route_localnet=1: guard against 127/8 from pods


def render_table(ports: Sequence[ServicePort], opts: RenderOptions) -> str:
    """The whole ``nft -f`` input that replaces the proxy's table (see the module doc for the layout)."""
    t = check_table_name(opts.table)
    node_addrs = sorted({str(ipaddress.IPv4Address(a)) for a in opts.node_addresses})
    parts = _TableParts()
    for sp in ports:
        _add_service_port(parts, sp, opts, node_addrs)
    return _table_text(t, f"0x{opts.mark:x}", parts, opts)


@dataclass
class _TableParts:
    """What the service ports contribute to the table: map and set elements, chains, affinity sets."""

    service_ips: list[str] = field(default_factory=list)
    cluster_ips: set[str] = field(default_factory=set)
    no_ep_nodeports: list[str] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)


def _add_service_port(parts: _TableParts, sp: ServicePort, opts: RenderOptions, node_addrs: list[str]) -> None:
    """One service port: its ClusterIP (and NodePort) elements, its service chain and endpoint chains."""
    h = _hash(sp.id)
    svc_chain = f"svc-{h}-{sp.id}"
    parts.cluster_ips.update(sp.cluster_ips)
    if not sp.endpoints:
        for a in node_addrs if sp.node_port else ():
            parts.no_ep_nodeports.append(f"{_key(a, sp.protocol, sp.node_port)} comment {_q(sp.id)}")
        return
    for ip in sp.cluster_ips:
        parts.service_ips.append(f"{_key(ip, sp.protocol, sp.port)} comment {_q(sp.id)} : goto {svc_chain}")
    body: list[str] = []
    # Clients from outside the pod network (the host itself, loopback) must be masqueraded so
    # that the endpoint's reply comes back through this host, where conntrack undoes the DNAT.
    if opts.masquerade_all:
        body.append("jump mark-for-masquerade")
    else:
        body.append(f"ip saddr != {opts.cluster_cidr} jump mark-for-masquerade")
    ep_chains = _add_endpoint_chains(parts, sp, body)
    if len(ep_chains) == 1:
        body.append(f"goto {ep_chains[0]}")
    else:
        arms = ", ".join(f"{i} : goto {c}" for i, c in enumerate(ep_chains))
        body.append(f"numgen random mod {len(ep_chains)} vmap {{ {arms} }}")
    parts.chains.append(_chain(svc_chain, body, comment=sp.id))
    if sp.node_port:
        ext_chain = f"ext-{h}-{sp.id}"
        # externalTrafficPolicy: Cluster, as kube-proxy: NodePort clients are always masqueraded
        # (loopback clients must be, and the reply must come back through this node anyway).
        parts.chains.append(_chain(ext_chain, ["jump mark-for-masquerade", f"goto {svc_chain}"],
                                   comment=f"{sp.id} nodePort {sp.node_port}"))
        for a in node_addrs:
            parts.service_ips.append(f"{_key(a, sp.protocol, sp.node_port)} comment {_q(sp.id)} : goto {ext_chain}")


def _add_endpoint_chains(parts: _TableParts, sp: ServicePort, svc_body: list[str]) -> list[str]:
    """One DNAT chain per endpoint (with its affinity set and the service chain's rule for it); their names."""
    ep_chains: list[str] = []
    for ep in sp.endpoints:
        ep_id = f"{sp.id}__{ep.ip}/{ep.port}"
        ep_chain = f"ep-{_hash(ep_id)}-{ep_id}"
        ep_chains.append(ep_chain)
        ep_body = [f"ip saddr {ep.ip} jump mark-for-masquerade"]
        if sp.affinity_timeout:
            aff = f"aff-{_hash(ep_id)}"
            parts.sets.append(f"\tset {aff} {{\n" + "\n".join(_set_body(
                "ipv4_addr", [], f"\n\t\tflags dynamic,timeout\n\t\ttimeout {sp.affinity_timeout}s")) + "\n\t}")
            svc_body.append(f"ip saddr @{aff} goto {ep_chain}")
            ep_body.append(f"update @{aff} {{ ip saddr }}")
        ep_body.append(f"meta l4proto {sp.protocol} dnat to {ep.ip}:{ep.port}")
        parts.chains.append(_chain(ep_chain, ep_body, comment=f"{sp.id} -> {ep.ip}:{ep.port}"))
    return ep_chains


def _table_text(t: str, mark: str, parts: _TableParts, opts: RenderOptions) -> str:
    """The table: its maps and sets, the fixed hook chains, then the per-service chains."""
    key_type = "ipv4_addr . inet_proto . inet_service"
    out = [
        # "add" then "delete" makes the delete succeed whether or not the table exists (nft 1.0.6 has
        # no "destroy"); all three statements are one transaction, so the swap is atomic.
        f"add table ip {t}",
        f"delete table ip {t}",
        f"table ip {t} {{",
        f"\tcomment {_q('kybernetes proxy: Service ClusterIPs and NodePorts; rewritten on every sync')}",
        "",
        "\tmap service-ips {",
        *_set_body(f"{key_type} : verdict", parts.service_ips),
        "\t}",
        "",
        "\tset cluster-ips {",
        *_set_body("ipv4_addr", sorted(parts.cluster_ips, key=ipaddress.IPv4Address)),
        "\t}",
        "",
        "\tset no-endpoint-nodeports {",
        *_set_body(key_type, parts.no_ep_nodeports),
        "\t}",
        *parts.sets,
        "",
        _chain("nat-prerouting", ["ip daddr . meta l4proto . th dport vmap @service-ips"],
               hook="type nat hook prerouting priority dstnat; policy accept;"),
        # nft 1.0.6 accepts the names "dstnat"/"srcnat" only on their canonical hooks in the ip
        # family, so the output chains spell the numbers: -100 (= dstnat) and -90 (just after it).
        _chain("nat-output", ["ip daddr . meta l4proto . th dport vmap @service-ips"],
               hook="type nat hook output priority -100; policy accept;"),
        _chain("nat-postrouting", ["jump masquerading"],
               hook="type nat hook postrouting priority srcnat; policy accept;"),
        _chain("mark-for-masquerade", [f"meta mark set meta mark | {mark}"]),
        # Clear our bit before masquerading so the mark does not leak into anything after us.
        _chain("masquerading", [f"meta mark & {mark} == 0 return",
                                f"meta mark set meta mark ^ {mark}",
                                "masquerade fully-random"]),
        # After DNAT, a packet still addressed to a ClusterIP had no endpoint to go to: refuse it.
        _chain("filter-forward", ["ip daddr @cluster-ips jump reject-chain"],
               hook="type filter hook forward priority filter; policy accept;"),
        _chain("filter-output", ["ip daddr @cluster-ips jump reject-chain",
                                 "ip daddr . meta l4proto . th dport @no-endpoint-nodeports jump reject-chain"],
               hook="type filter hook output priority -90; policy accept;"),
        _chain("filter-input", [
            "ip daddr . meta l4proto . th dport @no-endpoint-nodeports jump reject-chain",
            *([f"iifname {_q(opts.localnet_guard_iface)} ip daddr 127.0.0.0/8 ct status & dnat == 0 drop"]
              if opts.localnet_guard_iface else []),
        ], hook="type filter hook input priority filter; policy accept;"),
        _chain("reject-chain", ["meta l4proto tcp reject with tcp reset", "reject"]),
        *parts.chains,
        "}",
    ]
    return "\n".join(out) + "\n"


def _chain(name: str, rules: Sequence[str], *, hook: str = "", comment: str = "") -> str:
    lines = [f"\tchain {name} {{"]
    if hook:
        lines.append(f"\t\t{hook}")
    if comment:
        lines.append(f"\t\tcomment {_q(comment)}")
    lines += [f"\t\t{r}" for r in rules]
    lines.append("\t}")
    return "\n".join(lines)


def delete_table_script(table: str) -> str:
    check_table_name(table)
    return f"add table ip {table}\ndelete table ip {table}\n"


# ---- applying ----------------------------------------------------------------------------------------


class NftError(RuntimeError):
    pass


def run_nft(script: str, *, check_only: bool = False, nft: str = NFT, timeout: float = 30.0) -> None:
    """Feed ``script`` to ``nft -f -`` (one transaction); ``check_only`` adds ``-c`` (parse and
    validate against the kernel without committing). Raises :class:`NftError` with nft's message."""
    args = [nft, *(["-c"] if check_only else []), "-f", "-"]
    res = subprocess.run(args, input=script, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise NftError(f"nft failed ({res.returncode}): {res.stderr.strip()}")


def table_exists(table: str, *, nft: str = NFT) -> bool:
    res = subprocess.run([nft, "list", "table", "ip", table], capture_output=True, text=True, timeout=30)
    return res.returncode == 0
