"""kube-proxy for kybernetes: the Service data plane, in nftables.

::

    serviceports  Services + EndpointSlices -> ServicePorts (endpoints for the Cluster and Local
                  traffic policies, externalIPs, affinity, health-check node port)
    nftables   pure rendering: ServicePorts -> the proxy's whole nftables table (text), and applying
               it in one transaction with ``nft -f -`` (affinity state kept across syncs)
    healthcheck   kube-proxy's /healthz and /livez, and the Services' health-check node ports
    proxier    the loop: informers on Services and EndpointSlices -> debounced re-render -> apply;
               periodic full resync; removes the table on stop
    netpol     pure rendering: NetworkPolicies + Pods + Namespaces -> the node's policy plan -> its
               own ``table inet`` (text)
    netpol_sync  the NetworkPolicy controller's loop (informers -> debounced re-render -> apply),
               run by ``kyb proxy`` next to the proxier
    cmd        ``kyb proxy``: flags -> :class:`ProxyConfig` (+ the policy controller's config) -> both loops

The node network (pods across nodes, flannel's host-gw), a process of its own beside kube-proxy::

    routes     Nodes -> {other node's pod CIDR: its InternalIP}; applied with ``ip route`` (proto 107)
    masquerade the node network's table: pod traffic leaving the cluster takes the node's address
    network    the loop: a Node informer and a 2 s resync that repairs what was removed by hand
    netcmd     ``kyb network``: flags -> :class:`~kybernetes.proxy.network.NetworkConfig` -> run
"""

from kybernetes.proxy.nftables import render_table
from kybernetes.proxy.proxier import Proxier, ProxyConfig, run
from kybernetes.proxy.serviceports import ServicePort, build_service_ports

__all__ = ["Proxier", "ProxyConfig", "ServicePort", "build_service_ports", "render_table", "run"]
