"""kube-proxy for kybernetes: the Service data plane, in nftables.

::

    nftables   pure rendering: Services + EndpointSlices -> the proxy's whole nftables table (text),
               and applying it atomically with ``nft -f -``
    proxier    the loop: informers on Services and EndpointSlices -> debounced re-render -> apply;
               periodic full resync; removes the table on stop
    netpol     pure rendering: NetworkPolicies + Pods + Namespaces -> the node's policy plan -> its
               own ``table inet`` (text)
    netpol_sync  the NetworkPolicy controller's loop (informers -> debounced re-render -> apply),
               run by ``kyb proxy`` next to the proxier
    cmd        ``kyb proxy``: flags -> :class:`ProxyConfig` (+ the policy controller's config) -> both loops
"""

from kybernetes.proxy.nftables import ServicePort, build_service_ports, render_table
from kybernetes.proxy.proxier import Proxier, ProxyConfig, run

__all__ = ["Proxier", "ProxyConfig", "ServicePort", "build_service_ports", "render_table", "run"]
