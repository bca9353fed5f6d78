"""ServicePorts -> one nftables table, applied atomically; the layout of kube-proxy's nftables mode.

Data flow::

    ServicePorts (serviceports.build_service_ports)
      -> render_table(): a :class:`Ruleset`: the complete ``table ip NAME { ... }`` (deterministic:
         same input, same text) and the names of the chains and sets it declares
      -> sync_script(): ONE ``nft -f`` file, which nft runs as one transaction: it flushes every
         rule and every map/set we rebuild, deletes the chains and affinity sets that are no
         longer declared, and declares the whole table again. Affinity sets are declared but never
         flushed, so a client's ``sessionAffinity`` survives syncs (as in kube-proxy); the kernel
         switches to the new rules atomically. replace_script() (delete and recreate the whole
         table) is the fallback when that transaction fails (a kernel that will not delete a chain
         whose map element goes away in the same transaction, or a table of an older layout).

Everything lives in the proxy's own ``table ip NAME``; nothing else in the ruleset is read or
changed. Rules match only packets addressed to a ClusterIP, externalIP or LoadBalancer IP of a Service, to a
NodePort on a node address, or packets this table itself marked for masquerading.

Rule layout (``ADDR . PROTO . PORT`` keys are ``ipv4_addr . inet_proto . inet_service``)::

    map service-ips         ADDR.PROTO.PORT -> goto svc-*/local-* (ClusterIPs), goto ext-* (externalIPs
                            and LoadBalancer ingress IPs)
    map firewall-ips        ADDR.PROTO.PORT -> goto fw-*  (LoadBalancer IPs of Services with
                            loadBalancerSourceRanges)
    map service-nodeports   PROTO.PORT -> goto ext-*                (NodePorts)
    set nodeport-ips        the node addresses NodePorts answer on (only with --nodeport-addresses;
                            without it every local address does: ``fib daddr type local``)
    map no-endpoint-services   ADDR.PROTO.PORT -> goto reject-chain (no endpoint anywhere) or drop
                               (a Local traffic policy and no endpoint on this node)
    map no-endpoint-nodeports  PROTO.PORT -> the same, for NodePorts
    set cluster-ips         every ClusterIP we serve (what is still addressed to one after DNAT is
                            refused: a port the Service does not have)

    chain filter-prerouting  hook prerouting priority dstnat-10: new connections -> firewall-check
                            (vmap @firewall-ips); filter-output does the same for the host's own
    chain filter-input/-forward/-output   hook priority dstnat-10 (before DNAT in output):
                            new connections -> endpoints-check (the two no-endpoint maps);
                            forward also refuses what is still addressed to a ClusterIP;
                            input drops 127/8 from the bridge that our DNAT did not make
                            (CVE-2020-8558 guard, with route_localnet on the bridge)
    chain filter-output-post-dnat         hook output priority -90: the host's own packets still
                            addressed to a ClusterIP -> refused
    chain nat-prerouting, nat-output      -> services: vmap @service-ips; NodePorts: vmap @service-nodeports
    chain nat-postrouting   -> masquerading: masquerade what carries our mark, clear the mark

    per Service port (HASH-ns/name/proto/port):
    chain svc-*     "Cluster" policy: [off-cluster clients -> mark-for-masquerade]
                    [ip saddr @aff-* goto ep-* ...] numgen random mod N vmap { i : goto ep-* }
    chain local-*   "Local" policy: the same over the node's own endpoints; source kept
    chain ext-*     NodePort/externalIP/LoadBalancer IP entry. externalTrafficPolicy Cluster: mark for masquerade,
                    goto svc-*. Local: pods (cluster CIDR) short-circuit to svc-*, the host's own
                    traffic is masqueraded and short-circuits too; everything else goto local-*
                    (or falls through: no local endpoint -> endpoints-check drops it)
    chain fw-*      ip saddr != { loadBalancerSourceRanges } drop
    chain ep-*      one per endpoint: hairpin masquerade (the endpoint reaching itself),
                    [update @aff-* { ip saddr }], dnat to IP:PORT

Masquerading uses one packet-mark bit (``0x4000`` by default, like kube-proxy), set in the nat
chains on a connection's first packet and cleared in postrouting, so it never leaves the host.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from kybernetes.api.obj import Obj
from kybernetes.proxy.serviceports import Endpoint, ServicePort

log = logging.getLogger(__name__)

__all__ = ["Obj"]  # re-exported for the proxier's type hints

DEFAULT_MARK = 0x4000
NFT = "nft"
# What nft's grammar takes as a bare table name (and short enough for the kernel).
TABLE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
KEY = "ipv4_addr . inet_proto . inet_service"
PORT_KEY = "inet_proto . inet_service"
# The maps and sets rebuilt on every sync, with their types.
REBUILT = {
    "service-ips": ("map", f"{KEY} : verdict"),
    "service-nodeports": ("map", f"{PORT_KEY} : verdict"),
    "no-endpoint-services": ("map", f"{KEY} : verdict"),
    "no-endpoint-nodeports": ("map", f"{PORT_KEY} : verdict"),
    "cluster-ips": ("set", "ipv4_addr"),
    "nodeport-ips": ("set", "ipv4_addr"),
    "firewall-ips": ("map", f"{KEY} : verdict"),
}


def check_table_name(name: str) -> str:
    if not TABLE_NAME_RE.match(name):
        raise ValueError(f"invalid nftables table name {name!r}")
    return name


@dataclass
class RenderOptions:
    table: str = "kybernetes-proxy"
    service_cidr: str = "10.43.0.0/16"
    cluster_cidr: str = "10.42.0.0/16"
    # None: NodePorts answer on every local address; else only on these (kube-proxy's nodeport-ips).
    nodeport_ips: Sequence[str] | None = None
    localhost_nodeports: bool = True  # also on 127.0.0.0/8 (needs route_localnet, see the proxier)
    masquerade_all: bool = False  # masquerade pod clients too (needed without br_netfilter)
    mark: int = DEFAULT_MARK
    localnet_guard_iface: str = ""  # bridge with route_localnet=1: guard against 127/8 from pods
    node_ip: str | None = None  # the node's primary IP: a source range holding it lets the node in


@dataclass
class Ruleset:
    """A rendered table: its text and what it declares (to find what to delete on the next sync)."""

    table: str
    text: str
    chains: set[str]
    sets: set[str]  # sets and maps


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
class _TableParts:
    """What the service ports contribute to the table: map and set elements, chains, affinity sets."""

    elements: dict[str, list[str]] = field(default_factory=lambda: {name: [] for name in REBUILT})
    cluster_ips: set[str] = field(default_factory=set)
    chains: dict[str, str] = field(default_factory=dict)  # name -> text
    affinity_sets: dict[str, str] = field(default_factory=dict)  # name -> text


def render_table(ports: Sequence[ServicePort], opts: RenderOptions) -> Ruleset:
    """The proxy's whole table for these service ports (see the module doc for the layout)."""
    t = check_table_name(opts.table)
    parts = _TableParts()
    for sp in ports:
        _add_service_port(parts, sp, opts)
    parts.elements["cluster-ips"] = sorted(parts.cluster_ips, key=ipaddress.IPv4Address)
    if opts.nodeport_ips is not None:
        parts.elements["nodeport-ips"] = sorted({str(ipaddress.IPv4Address(a)) for a in opts.nodeport_ips},
                                                key=ipaddress.IPv4Address)
    base = _base_chains(opts)
    text = _table_text(t, parts, base)
    return Ruleset(table=t, text=text, chains=set(base) | set(parts.chains),
                   sets=set(REBUILT) | set(parts.affinity_sets))


def _add_service_port(parts: _TableParts, sp: ServicePort, opts: RenderOptions) -> None:
    """One service port: its map elements, its policy chains, external chain and endpoint chains."""
    h = _hash(sp.id)
    cluster_chain, local_chain, ext_chain = f"svc-{h}-{sp.id}", f"local-{h}-{sp.id}", f"ext-{h}-{sp.id}"
    parts.cluster_ips.update(sp.cluster_ips)
    has_endpoints = bool(sp.endpoints)
    uses_cluster = has_endpoints and sp.uses_cluster_endpoints
    uses_local = bool(sp.local_endpoints) and sp.uses_local_endpoints
    has_internal = has_endpoints and (not sp.internal_local or bool(sp.local_endpoints))
    has_external = has_endpoints and (not sp.external_local or bool(sp.local_endpoints))
    verdict = "drop" if has_endpoints else "goto reject-chain"
    comment = f"comment {_q(sp.id)}"

    for ip in sp.cluster_ips:
        key = _key(ip, sp.protocol, sp.port)
        if has_internal:
            target = local_chain if sp.internal_local else cluster_chain
            parts.elements["service-ips"].append(f"{key} {comment} : goto {target}")
        else:
            parts.elements["no-endpoint-services"].append(f"{key} {comment} : {verdict}")
    for ip in [*sp.external_ips, *sp.load_balancer_ips]:  # the same treatment (kube-proxy's)
        key = _key(ip, sp.protocol, sp.port)
        if has_endpoints:
            parts.elements["service-ips"].append(f"{key} {comment} : goto {ext_chain}")
        if not has_external:
            parts.elements["no-endpoint-services"].append(f"{key} {comment} : {verdict}")
    if sp.node_port:
        key = f"{sp.protocol} . {sp.node_port}"
        if has_endpoints:
            parts.elements["service-nodeports"].append(f"{key} {comment} : goto {ext_chain}")
        if not has_external:
            parts.elements["no-endpoint-nodeports"].append(f"{key} {comment} : {verdict}")

    if sp.load_balancer_ips and sp.source_ranges:
        _add_firewall(parts, sp, opts, f"fw-{h}-{sp.id}")
    if has_endpoints and sp.externally_accessible:
        parts.chains[ext_chain] = _chain(ext_chain, _external_rules(sp, opts, cluster_chain, local_chain, uses_local),
                                         comment=f"{sp.id} external")
    ep_chains = _add_endpoint_chains(parts, sp, (sp.endpoints if uses_cluster else []) +
                                     (sp.local_endpoints if uses_local else []))
    if uses_cluster:
        # Clients from outside the pod network (the host itself, loopback) must be masqueraded so
        # that the endpoint's reply comes back through this host, where conntrack undoes the DNAT.
        masq = "jump mark-for-masquerade" if opts.masquerade_all else f"ip saddr != {opts.cluster_cidr} jump mark-for-masquerade"
        parts.chains[cluster_chain] = _chain(cluster_chain, [masq, *_dispatch(sp, sp.endpoints, ep_chains)],
                                             comment=sp.id)
    if uses_local:
        rules: list[str] = []
        if sp.internal_local:
            # Only the ClusterIP's off-cluster clients: external traffic here must keep its source.
            cond = "" if opts.masquerade_all else f" ip saddr != {opts.cluster_cidr}"
            rules += [f"ip daddr {ip} {sp.protocol} dport {sp.port}{cond} jump mark-for-masquerade"
                      for ip in sp.cluster_ips]
        parts.chains[local_chain] = _chain(local_chain, [*rules, *_dispatch(sp, sp.local_endpoints, ep_chains)],
                                           comment=f"{sp.id} local")


def _add_firewall(parts: _TableParts, sp: ServicePort, opts: RenderOptions, chain: str) -> None:
    """``loadBalancerSourceRanges``: new connections to a load-balancer address from other sources
    are dropped (kube-proxy's firewall chain). When a range holds the node's own IP, the
    load-balancer addresses are allowed as sources too: a VIP bound on the node answers the node's
    own requests with the VIP as their source."""
    sources = list(sp.source_ranges)
    node_ip = ipaddress.IPv4Address(opts.node_ip) if opts.node_ip else None
    if node_ip is not None and any(node_ip in ipaddress.IPv4Network(c) for c in sp.source_ranges):
        sources += sp.load_balancer_ips
    for ip in sp.load_balancer_ips:
        parts.elements["firewall-ips"].append(
            f"{_key(ip, sp.protocol, sp.port)} comment {_q(sp.id)} : goto {chain}")
    parts.chains[chain] = _chain(chain, [f"ip saddr != {{ {', '.join(sources)} }} drop"],
                                 comment=f"{sp.id} loadBalancerSourceRanges")


def _external_rules(sp: ServicePort, opts: RenderOptions, cluster_chain: str, local_chain: str,
                    uses_local: bool) -> list[str]:
    if not sp.external_local:
        # externalTrafficPolicy: Cluster: the endpoint may be on another node, so the reply must
        # come back through this one.
        return ["jump mark-for-masquerade", f"goto {cluster_chain}"]
    rules = [
        # Pods reaching a NodePort/externalIP are not external clients: they get every endpoint,
        # as if they had gone out to a load balancer and back (kube-proxy's short-circuit).
        f"ip saddr {opts.cluster_cidr} goto {cluster_chain}",
        # The host's own connections have a local source address, which the endpoint could not
        # answer directly: masquerade them, and they too may use every endpoint.
        "fib saddr type local jump mark-for-masquerade",
        f"fib saddr type local goto {cluster_chain}",
    ]
    if uses_local:
        rules.append(f"goto {local_chain}")
    return rules


def _dispatch(sp: ServicePort, endpoints: Sequence[Endpoint], ep_chains: dict[Endpoint, str]) -> list[str]:
    """A policy chain's choice of endpoint: sticky clients first, then a random one."""
    rules = [f"ip saddr @{_affinity_set(sp, ep)} goto {ep_chains[ep]}" for ep in endpoints] if sp.affinity_timeout else []
    if len(endpoints) == 1:
        rules.append(f"goto {ep_chains[endpoints[0]]}")
    else:
        arms = ", ".join(f"{i} : goto {ep_chains[ep]}" for i, ep in enumerate(endpoints))
        rules.append(f"numgen random mod {len(endpoints)} vmap {{ {arms} }}")
    return rules


def _endpoint_id(sp: ServicePort, ep: Endpoint) -> str:
    return f"{sp.id}__{ep.ip}/{ep.port}"


def _affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    return f"aff-{_hash(_endpoint_id(sp, ep))}"


def _add_endpoint_chains(parts: _TableParts, sp: ServicePort, endpoints: Sequence[Endpoint]) -> dict[Endpoint, str]:
    """One DNAT chain (and affinity set) per endpoint this node may use; their chain names."""
    out: dict[Endpoint, str] = {}
    for ep in sorted(set(endpoints)):
        ep_id = _endpoint_id(sp, ep)
        ep_chain = f"ep-{_hash(ep_id)}-{ep_id}"
        out[ep] = ep_chain
        rules = [f"ip saddr {ep.ip} jump mark-for-masquerade"]
        if sp.affinity_timeout:
            aff = _affinity_set(sp, ep)
            # Dynamic with a timeout: each connection refreshes the client's entry, which expires
            # ``timeoutSeconds`` after its last connection (kube-proxy's affinity sets).
            parts.affinity_sets[aff] = f"\tset {aff} {{\n" + "\n".join(_set_body(
                "ipv4_addr", [], f"\n\t\tflags dynamic,timeout\n\t\ttimeout {sp.affinity_timeout}s")) + "\n\t}"
            rules.append(f"update @{aff} {{ ip saddr }}")
        rules.append(f"meta l4proto {sp.protocol} dnat to {ep.ip}:{ep.port}")
        parts.chains[ep_chain] = _chain(ep_chain, rules, comment=f"{sp.id} -> {ep.ip}:{ep.port}")
    return out


def _base_chains(opts: RenderOptions) -> dict[str, str]:
    """The fixed chains: hooks, dispatch, the no-endpoint checks, masquerading, rejecting."""
    mark = f"0x{opts.mark:x}"
    if opts.nodeport_ips is None:
        nodeport_dst = "fib daddr type local " + ("" if opts.localhost_nodeports else "ip daddr != 127.0.0.0/8 ")
    else:
        nodeport_dst = "ip daddr @nodeport-ips "
    # nft 1.0.6 accepts the names "dstnat"/"srcnat" only on their canonical hooks in the ip family,
    # so the other chains spell the numbers: -110 (= dstnat-10, kube-proxy's filter chains, which
    # see the output path before DNAT), -100 (= dstnat) and -90 (just after it).
    chains = {
        "filter-prerouting": (["ct state new jump firewall-check"],
                              "type filter hook prerouting priority -110; policy accept;"),
        "filter-input": (["ct state new jump endpoints-check",
                          *([f"iifname {_q(opts.localnet_guard_iface)} ip daddr 127.0.0.0/8 ct status & dnat == 0 drop"]
                            if opts.localnet_guard_iface else [])],
                         "type filter hook input priority -110; policy accept;"),
        "filter-forward": (["ct state new jump endpoints-check", "ip daddr @cluster-ips jump reject-chain"],
                           "type filter hook forward priority -110; policy accept;"),
        "filter-output": (["ct state new jump endpoints-check", "ct state new jump firewall-check"],
                          "type filter hook output priority -110; policy accept;"),
        # After DNAT, a packet still addressed to a ClusterIP went to a port the Service does not have.
        "filter-output-post-dnat": (["ip daddr @cluster-ips jump reject-chain"],
                                    "type filter hook output priority -90; policy accept;"),
        "nat-prerouting": (["jump services"], "type nat hook prerouting priority dstnat; policy accept;"),
        "nat-output": (["jump services"], "type nat hook output priority -100; policy accept;"),
        "nat-postrouting": (["jump masquerading"], "type nat hook postrouting priority srcnat; policy accept;"),
        "services": (["ip daddr . meta l4proto . th dport vmap @service-ips",
                      f"{nodeport_dst}meta l4proto . th dport vmap @service-nodeports"], ""),
        "endpoints-check": (["ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
                             f"{nodeport_dst}meta l4proto . th dport vmap @no-endpoint-nodeports"], ""),
        "firewall-check": (["ip daddr . meta l4proto . th dport vmap @firewall-ips"], ""),
        "mark-for-masquerade": ([f"meta mark set meta mark | {mark}"], ""),
        # Clear our bit before masquerading so the mark does not leak into anything after us.
        "masquerading": ([f"meta mark & {mark} == 0 return", f"meta mark set meta mark ^ {mark}",
                          "masquerade fully-random"], ""),
        "reject-chain": (["meta l4proto tcp reject with tcp reset", "reject"], ""),
    }
    return {name: _chain(name, rules, hook=hook) for name, (rules, hook) in chains.items()}


def _table_text(t: str, parts: _TableParts, base: dict[str, str]) -> str:
    """``table ip T { ... }``: its maps and sets, the fixed chains, then the per-service chains."""
    out = [f"table ip {t} {{",
           f"\tcomment {_q('kybernetes proxy: Service ClusterIPs, externalIPs and NodePorts; rebuilt on every sync')}"]
    for name, (kind, typ) in REBUILT.items():
        out += ["", f"\t{kind} {name} {{", *_set_body(typ, parts.elements[name]), "\t}"]
    for name in sorted(parts.affinity_sets):
        out += ["", parts.affinity_sets[name]]
    out += ["", *base.values(), *(parts.chains[c] for c in sorted(parts.chains)), "}"]
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


def chain_rules(text: str, chain: str) -> list[str]:
    """The rules that ``text`` (a table rendered with :func:`_chain`'s layout) puts in ``chain``.
    Raises ValueError when ``text`` declares no such chain."""
    lines = text.splitlines()
    try:
        start = lines.index(f"\tchain {chain} {{") + 1
    except ValueError:
        raise ValueError(f"the table text declares no chain {chain!r}") from None
    end = lines.index("\t}", start)
    body = (ln.strip() for ln in lines[start:end])
    return [r for r in body if r and not r.startswith(("type ", "comment "))]


# ---- the sync transaction ----------------------------------------------------------------------------


@dataclass
class Existing:
    """What the table holds now (names only)."""

    chains: set[str] = field(default_factory=set)
    sets: set[str] = field(default_factory=set)


def sync_script(rs: Ruleset, existing: Existing) -> str:
    """One transaction that turns the table into ``rs`` and keeps the affinity sets' contents."""
    t = rs.table
    lines = [f"add table ip {t}", f"flush table ip {t}"]  # every rule of every chain; no set contents
    for name, (kind, typ) in REBUILT.items():
        lines += [f"add {kind} ip {t} {name} {{ type {typ}; }}", f"flush {kind} ip {t} {name}"]
    # Rules and map elements pointing at stale chains are gone by now, so they can be deleted.
    lines += [f"delete chain ip {t} {c}" for c in sorted(existing.chains - rs.chains)]
    lines += [f"delete set ip {t} {s}" for s in sorted(existing.sets - rs.sets)]
    return "\n".join(lines) + "\n" + rs.text


def replace_script(rs: Ruleset) -> str:
    """Delete and recreate the whole table in one transaction (affinity sets start empty)."""
    return delete_table_script(rs.table) + rs.text


def delete_table_script(table: str) -> str:
    # "add" then "delete" makes the delete succeed whether or not the table exists (nft 1.0.6 has
    # no "destroy").
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


def list_existing(table: str, *, nft: str = NFT, timeout: float = 30.0) -> Existing:
    """The chains and sets/maps of ``table`` (none when it does not exist)."""
    res = subprocess.run([nft, "-j", "-t", "list", "table", "ip", check_table_name(table)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    out = Existing()
    if res.returncode != 0:
        return out  # no such table (or nft failed: the sync itself will say so)
    try:
        items = json.loads(res.stdout or "{}").get("nftables", [])
    except (ValueError, AttributeError):
        return out
    for item in items:
        if "chain" in item:
            out.chains.add(item["chain"]["name"])
        for kind in ("set", "map"):
            if kind in item:
                out.sets.add(item[kind]["name"])
    return out


def apply(rs: Ruleset, *, nft: str = NFT) -> bool:
    """Make the table ``rs``: in place if possible (True), else by replacing it whole (False)."""
    try:
        run_nft(sync_script(rs, list_existing(rs.table, nft=nft)), nft=nft)
        return True
    except NftError as e:
        log.warning("proxy: in-place sync of table %s failed (%s); replacing the table (affinity is reset)",
                    rs.table, e)
    run_nft(replace_script(rs), nft=nft)
    return False


def table_exists(table: str, *, nft: str = NFT) -> bool:
    res = subprocess.run([nft, "list", "table", "ip", table], capture_output=True, text=True, timeout=30)
    return res.returncode == 0
