"""Where the cluster's DNS lives: the Service address and the domain every distribution uses.

`kyb server` gives Service `kube-system/kube-dns` the 10th address of the service range (k3s,
kubeadm: 10.43.0.10 for 10.43.0.0/16) and passes it, with the cluster domain, to each kubelet as
`--cluster-dns` / `--cluster-domain`.
"""

from __future__ import annotations

import ipaddress

DEFAULT_CLUSTER_DOMAIN = "cluster.local"


def cluster_dns_ip(service_cidr: str) -> str:
    """The 10th address of `service_cidr` (the first of several comma-separated ranges); ValueError
    when the range is too small to hold it."""
    net = ipaddress.ip_network(service_cidr.split(",")[0].strip(), strict=False)
    if net.num_addresses <= 10:
        raise ValueError(f"service range {net} has no 10th address for the cluster DNS Service")
    return str(net.network_address + 10)


__all__ = ["DEFAULT_CLUSTER_DOMAIN", "cluster_dns_ip"]
