"""kube-proxy for kybernetes: the Service data plane, in nftables.

::

    nftables   pure rendering: Services + EndpointSlices -> the proxy's whole nftables table (text),
               and applying it atomically with ``nft -f -``
    proxier    the loop: informers on Services and EndpointSlices -> debounced re-render -> apply;
               periodic full resync; removes the table on stop
    cmd        ``kyb proxy``: flags -> :class:`ProxyConfig` -> :func:`run`

The node network (pods across nodes, flannel's host-gw), a process of its own beside kube-proxy::

    routes     Nodes -> {other node's pod CIDR: its InternalIP}; applied with ``ip route`` (proto 107)
    masquerade the node network's table: pod traffic leaving the cluster takes the node's address
    network    the loop: a Node informer and a 2 s resync that repairs what was removed by hand
    netcmd     ``kyb network``: flags -> :class:`~kybernetes.proxy.network.NetworkConfig` -> run
"""

from kybernetes.proxy.nftables import ServicePort, build_service_ports, render_table
from kybernetes.proxy.proxier import Proxier, ProxyConfig, run

__all__ = ["Proxier", "ProxyConfig", "ServicePort", "build_service_ports", "render_table", "run"]
