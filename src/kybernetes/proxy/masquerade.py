"""Masquerading of pod traffic that leaves the cluster: the node network's own nftables table.

As flannel's ``--ip-masq`` rules, in ``table ip kyb-net-<bridge>`` (``datadir.network_table``)::

    chain postrouting   hook postrouting, srcnat + 10 (after kube-proxy's own masquerading)
        ip saddr CLUSTER ip daddr CLUSTER return        pod to pod, on this node or another: no NAT
        ip saddr CLUSTER ip daddr SERVICES return       a ClusterIP not DNATed (no endpoint): rejected anyway
        ip saddr CLUSTER ip daddr 224.0.0.0/4 return    multicast
        ip saddr CLUSTER masquerade fully-random        anything else: the node's address

Pod traffic to other nodes' pods keeps the pod's address (the host-gw routes carry it); only
what leaves the cluster networks takes the node's address, so replies find their way back
without the outside knowing any pod CIDR. Nothing outside this table is read or changed; the
table is replaced whole and atomically (``add``; ``delete``; ``table { ... }`` in one ``nft -f``).
"""

from __future__ import annotations

import ipaddress

from kybernetes.proxy.nftables import _chain, check_table_name

MULTICAST = "224.0.0.0/4"


def render_masquerade_table(table: str, cluster_cidr: str, service_cidr: str) -> str:
    """The whole ``nft -f`` input that replaces ``table`` (see the module doc)."""
    t = check_table_name(table)
    cluster = str(ipaddress.IPv4Network(cluster_cidr, strict=False))
    services = str(ipaddress.IPv4Network(service_cidr, strict=False))
    rules = [
        f"ip saddr {cluster} ip daddr {cluster} return",
        f"ip saddr {cluster} ip daddr {services} return",
        f"ip saddr {cluster} ip daddr {MULTICAST} return",
        f"ip saddr {cluster} masquerade fully-random",
    ]
    return "\n".join([
        f"add table ip {t}",
        f"delete table ip {t}",
        f"table ip {t} {{",
        '\tcomment "kybernetes node network: masquerading of pod traffic leaving the cluster"',
        _chain("postrouting", rules, hook="type nat hook postrouting priority srcnat + 10; policy accept;"),
        "}",
    ]) + "\n"
