"""NetworkPolicies, Pods and Namespaces -> one node's policy plan -> one nftables table (text).

Pure: objects in, text out; nothing here touches the host (:mod:`kybernetes.proxy.netpol_sync`
applies the text). Semantics are networking.k8s.io/v1's:

- a pod is *isolated* for a direction when some policy of its namespace selects it
  (``podSelector``, ``{}`` = every pod) and lists that direction in ``policyTypes``; absent
  ``policyTypes`` mean Ingress, plus Egress when the policy has egress rules (the API server
  defaults them that way too). An isolated pod accepts, in that direction, only what at least
  one rule of one of those policies allows (rules are a union; no rule at all = deny all);
- a rule allows traffic from/to any of its peers (no peers = every address) on any of its ports
  (no ports = every port and protocol). A peer is ``podSelector`` (pods of the policy's
  namespace), ``namespaceSelector`` (every pod of the matching namespaces), both (the matching
  pods of the matching namespaces), or ``ipBlock`` (a CIDR minus its ``except`` CIDRs);
- a port is ``protocol`` (TCP default, UDP, SCTP) with a number, a number range up to
  ``endPort``, a name, or nothing (every port of the protocol). A named ingress port is resolved
  against the isolated pod's own container ports; a named egress port against the destination
  pods' container ports (so it only ever matches pod destinations, as upstream says);
- pods on the host network and finished pods (Succeeded, Failed) are neither isolated nor peers:
  their address is the node's or nobody's.

Only the pods of this node (``spec.nodeName``) get chains: every packet to or from them passes
this node's hooks, which is where the checks happen (see the rendering below). Peer sets list pods
of the whole cluster.

The :class:`Plan` is what gets rendered, rule for rule; :meth:`Plan.allows` evaluates it the way
the rendered rules do, for tests and for reading.

Rendered layout (``table inet NAME``)::

    set peers-HASH        one per peer: pod IPs, or the ipBlock CIDR minus its excepts (intervals)
    set ports-HASH        egress named ports: ADDR . PROTO . PORT of every pod having that port
    map ingress-pods      pod IP -> jump ingress-HASH  (local pods isolated for ingress)
    map egress-pods       pod IP -> jump egress-HASH   (local pods isolated for egress)
    chain forward         hook forward: established/related accept; saddr vmap @egress-pods;
                          daddr vmap @ingress-pods
    chain input           hook input: established/related accept; saddr vmap @egress-pods
                          (a pod reaching the node itself is egress too)
    chain ingress-HASH    one per isolated pod: one "return" rule per (peer, port) allowed; drop
    chain egress-HASH     the same for egress

Only new connections reach the per-pod chains: packets of established connections (and the
replies to them, and related ICMP errors) are accepted first, so a reply is never checked
against the replier's policies. Traffic the node itself originates (kubelet probes, the host's
clients) leaves through the output hook, which this table does not hook: it is always allowed,
as Kubernetes implementations allow it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kybernetes import errors
from kybernetes.api.label_selectors import LabelSelector, from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.proxy.nftables import _chain, _hash, _q, _set_body, check_table_name
from kybernetes.proxy.serviceports import PROTOCOLS

INGRESS, EGRESS = "ingress", "egress"


@dataclass(frozen=True, order=True)
class PortRange:
    """``proto`` (nft spelling) ports ``first``..``last``; ``first == 0``: every port of ``proto``."""

    proto: str
    first: int = 0
    last: int = 0

    def matches(self, proto: str, port: int) -> bool:
        return proto == self.proto and (self.first == 0 or self.first <= port <= self.last)

    def nft(self) -> str:
        if self.first == 0:
            return f"meta l4proto {self.proto}"
        span = str(self.first) if self.last == self.first else f"{self.first}-{self.last}"
        return f"meta l4proto {self.proto} th dport {span}"


@dataclass(frozen=True, order=True)
class Allow:
    """One allow rule of an isolated pod's chain: traffic with the other end in address set
    ``peer`` ("": any address) and, when ``port`` is set, on that port; ``named_ports`` (egress
    only) names a set of (destination address, protocol, port) the traffic must also be in."""

    peer: str = ""
    port: PortRange | None = None
    named_ports: str = ""


@dataclass
class PodRules:
    """A local pod's checks; ``None`` for a direction it is not isolated in."""

    namespace: str
    name: str
    ip: str
    ingress: list[Allow] | None = None
    egress: list[Allow] | None = None

    @property
    def id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class Plan:
    """Everything the table holds. Sets: name -> sorted elements (CIDRs, or "ip . proto . port")."""

    address_sets: dict[str, list[str]] = field(default_factory=dict)
    address_set_comments: dict[str, str] = field(default_factory=dict)
    port_sets: dict[str, list[str]] = field(default_factory=dict)
    pods: list[PodRules] = field(default_factory=list)

    def allows(self, src: str, dst: str, proto: str = "tcp", port: int = 0) -> bool:
        """Whether a new connection from ``src`` to ``dst`` passes this node's checks, as the
        rendered forward chain decides (egress of ``src``, then ingress of ``dst``)."""
        by_ip = {p.ip: p for p in self.pods}
        src_pod, dst_pod = by_ip.get(src), by_ip.get(dst)
        if src_pod is not None and src_pod.egress is not None and not any(
                self._match(a, dst, dst, proto, port) for a in src_pod.egress):
            return False
        return dst_pod is None or dst_pod.ingress is None or any(
            self._match(a, src, dst, proto, port) for a in dst_pod.ingress)

    def _match(self, a: Allow, peer_ip: str, dst: str, proto: str, port: int) -> bool:
        if a.peer and not any(ipaddress.ip_address(peer_ip) in ipaddress.ip_network(c)
                              for c in self.address_sets[a.peer]):
            return False
        if a.port is not None and not a.port.matches(proto, port):
            return False
        return not a.named_ports or f"{dst} . {proto} . {port}" in self.port_sets[a.named_ports]


# ---- from API objects to a Plan ------------------------------------------------------------------


@dataclass(frozen=True)
class _Pod:
    namespace: str
    name: str
    ip: str
    node: str
    labels: dict[str, str]
    ports: tuple[tuple[str, str, int], ...]  # (name, nft protocol, containerPort) of named ports


def _pods(pods: Iterable[Obj]) -> list[_Pod]:
    """Pods that can be isolated or be peers: an IPv4 pod IP, not host network, not finished."""
    out = []
    for p in pods:
        meta, spec, status = p.get("metadata") or {}, p.get("spec") or {}, p.get("status") or {}
        if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
            continue
        ips = [i.get("ip") for i in status.get("podIPs") or []] or [status.get("podIP")]
        ip = next((i for i in ips if _is_ipv4(i)), None)
        if ip is None:
            continue
        ports = tuple((cp["name"], PROTOCOLS.get(cp.get("protocol") or "TCP", ""), int(cp["containerPort"]))
                      for c in spec.get("containers") or [] for cp in c.get("ports") or []
                      if cp.get("name") and cp.get("containerPort"))
        out.append(_Pod(meta.get("namespace") or "", meta.get("name") or "", ip, spec.get("nodeName") or "",
                        dict(meta.get("labels") or {}), ports))
    out.sort(key=lambda p: (p.namespace, p.name))
    return out


def _is_ipv4(value: Any) -> bool:
    try:
        return isinstance(value, str) and ipaddress.ip_address(value).version == 4
    except ValueError:
        return False


def _policy_types(spec: Obj) -> list[str]:
    types = spec.get("policyTypes")
    if not types:
        types = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    return [t.lower() for t in types if t in ("Ingress", "Egress")]


def _cidr_minus(cidr: str, excepts: Sequence[str]) -> list[str]:
    """``cidr`` without the ``excepts`` as disjoint CIDRs (an nft interval set's elements); nothing
    for a CIDR that does not parse (validation refuses those: never widen access)."""
    try:
        rest = [ipaddress.ip_network(cidr, strict=False)]
        cuts = [ipaddress.ip_network(e, strict=False) for e in excepts]
    except (TypeError, ValueError):
        return []
    for cut in cuts:
        nxt: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for net in rest:
            if net.version == cut.version and cut.subnet_of(net):  # type: ignore[arg-type]
                nxt.extend(net.address_exclude(cut))  # type: ignore[arg-type]
            elif not (net.version == cut.version and net.subnet_of(cut)):  # type: ignore[arg-type]
                nxt.append(net)
        rest = nxt
    return [str(n) for n in sorted(n for n in rest if n.version == 4)]


class _Planner:
    def __init__(self, pods: list[_Pod], namespaces: Iterable[Obj], node_name: str) -> None:
        self.pods = pods
        self.ns_labels = {(n.get("metadata") or {}).get("name", ""): dict((n.get("metadata") or {}).get("labels") or {})
                          for n in namespaces}
        self.node_name = node_name
        self.plan = Plan()
        self.local: dict[tuple[str, str], PodRules] = {}

    def _selector(self, sel: Obj | None) -> LabelSelector:
        try:
            return from_label_selector_object(sel if sel is not None else {})
        except errors.StatusError:  # validation refuses invalid selectors; should one get here, it selects nothing
            return LabelSelector.nothing()

    def peer_set(self, key: str, ns: str, peer: Obj) -> str:
        """The address set of one peer (created once per key)."""
        name = f"peers-{_hash(key)}"
        if name in self.plan.address_sets:
            return name
        block = peer.get("ipBlock")
        if block:
            elements = _cidr_minus(block.get("cidr") or "0.0.0.0/32", block.get("except") or [])
        elif peer.get("namespaceSelector") is None and peer.get("podSelector") is None:
            elements = ["0.0.0.0/0"]  # a peer with no field: everything (validation refuses it anyway)
        else:
            pod_sel = self._selector(peer.get("podSelector"))
            ns_sel = peer.get("namespaceSelector")
            if ns_sel is None:
                in_ns = lambda p: p.namespace == ns  # noqa: E731
            else:
                sel = self._selector(ns_sel)
                in_ns = lambda p: p.namespace in self.ns_labels and sel.matches(self.ns_labels[p.namespace])  # noqa: E731
            elements = sorted({p.ip for p in self.pods if in_ns(p) and pod_sel.matches(p.labels)},
                              key=ipaddress.ip_address)
        self.plan.address_sets[name] = elements
        self.plan.address_set_comments[name] = key
        return name

    def named_port_set(self, proto: str, port_name: str) -> str:
        name = f"ports-{_hash(proto + '/' + port_name)}"
        if name not in self.plan.port_sets:
            self.plan.port_sets[name] = sorted({f"{p.ip} . {proto} . {num}" for p in self.pods
                                                for n, pr, num in p.ports if n == port_name and pr == proto})
            self.plan.address_set_comments[name] = f"named port {proto}/{port_name}"
        return name

    def ports(self, rule: Obj, direction: str, target: _Pod) -> list[tuple[PortRange | None, str]]:
        """(port match, named-port set) pairs of a rule: [(None, "")] for every port, [] for none."""
        entries = rule.get("ports") or []
        if not entries:
            return [(None, "")]
        out: list[tuple[PortRange | None, str]] = []
        for e in entries:
            proto = PROTOCOLS.get(e.get("protocol") or "TCP")
            if proto is None:
                continue
            port = e.get("port")
            if port is None:
                out.append((PortRange(proto), ""))
            elif isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
                first = int(port)
                out.append((PortRange(proto, first, max(first, int(e.get("endPort") or first))), ""))
            elif direction == EGRESS:
                out.append((PortRange(proto), self.named_port_set(proto, port)))
            else:
                out += [(PortRange(proto, num, num), "") for n, pr, num in target.ports if n == port and pr == proto]
        return out

    def add_policy(self, pol: Obj) -> None:
        meta, spec = pol.get("metadata") or {}, pol.get("spec") or {}
        ns, pname = meta.get("namespace") or "", meta.get("name") or ""
        sel = self._selector(spec.get("podSelector"))
        targets = [p for p in self.pods if p.namespace == ns and p.node == self.node_name and sel.matches(p.labels)]
        if not targets:
            return
        for direction in _policy_types(spec):
            rules = spec.get(direction) or []
            for t in targets:
                pr = self.local.setdefault((t.namespace, t.name), PodRules(t.namespace, t.name, t.ip))
                allows = getattr(pr, direction)
                if allows is None:
                    allows = []
                    setattr(pr, direction, allows)
                for i, rule in enumerate(rules):
                    peers = rule.get("from" if direction == INGRESS else "to") or []
                    names = [self.peer_set(f"{ns}/{pname}/{direction}/{i}/{j}", ns, peer)
                             for j, peer in enumerate(peers)] or [""]
                    for peer in names:
                        for port, named in self.ports(rule, direction, t):
                            a = Allow(peer, port, named)
                            if a not in allows:
                                allows.append(a)


def build_plan(policies: Iterable[Obj], pods: Iterable[Obj], namespaces: Iterable[Obj], node_name: str) -> Plan:
    """The checks for ``node_name``'s pods (see the module doc). Deterministic: same input, same plan."""
    planner = _Planner(_pods(pods), namespaces, node_name)
    for pol in sorted(policies, key=lambda p: ((p.get("metadata") or {}).get("namespace") or "",
                                               (p.get("metadata") or {}).get("name") or "")):
        planner.add_policy(pol)
    plan = planner.plan
    plan.pods = sorted(planner.local.values(), key=lambda r: r.id)
    return plan


# ---- rendering -------------------------------------------------------------------------------------


def _allow_rule(a: Allow, direction: str) -> str:
    other = "saddr" if direction == INGRESS else "daddr"
    parts = [f"ip {other} @{a.peer}"] if a.peer else []
    if a.port is not None:
        parts.append(a.port.nft())
    if a.named_ports:
        parts.append(f"ip daddr . meta l4proto . th dport @{a.named_ports}")
    return " ".join([*parts, "return"])


def _pod_chain(pod: PodRules, direction: str) -> str:
    return f"{direction}-{_hash(pod.id)}"


def render_table(plan: Plan, table: str) -> str:
    """The whole ``nft -f`` input that replaces the table (see the module doc for the layout)."""
    t = check_table_name(table)
    out = [f"add table inet {t}", f"delete table inet {t}", f"table inet {t} {{",
           f"\tcomment {_q('kybernetes NetworkPolicy enforcement (kube-proxy)')}"]
    for name, elements in sorted(plan.address_sets.items()):
        out += [f"\tset {name} {{", f"\t\tcomment {_q(plan.address_set_comments.get(name, ''))}",
                *_set_body("ipv4_addr", elements, "\n\t\tflags interval\n\t\tauto-merge"), "\t}"]
    for name, elements in sorted(plan.port_sets.items()):
        out += [f"\tset {name} {{", f"\t\tcomment {_q(plan.address_set_comments.get(name, ''))}",
                *_set_body("ipv4_addr . inet_proto . inet_service", elements), "\t}"]
    chains: list[str] = []
    for direction in (INGRESS, EGRESS):
        isolated = [p for p in plan.pods if getattr(p, direction) is not None]
        out += [f"\tmap {direction}-pods {{",
                *_set_body("ipv4_addr : verdict", [f"{p.ip} : jump {_pod_chain(p, direction)}" for p in isolated]),
                "\t}"]
        for p in isolated:
            rules = [_allow_rule(a, direction) for a in getattr(p, direction)]
            chains.append(_chain(_pod_chain(p, direction), [*rules, "drop"], comment=f"{direction} of {p.id}"))
    established = "ct state established,related accept"
    out += [
        _chain("forward", [established, "ip saddr vmap @egress-pods", "ip daddr vmap @ingress-pods"],
               hook="type filter hook forward priority filter; policy accept;"),
        _chain("input", [established, "ip saddr vmap @egress-pods"],
               hook="type filter hook input priority filter; policy accept;"),
        *chains,
        "}",
    ]
    return "\n".join(out) + "\n"


def delete_table_script(table: str) -> str:
    check_table_name(table)
    return f"add table inet {table}\ndelete table inet {table}\n"
