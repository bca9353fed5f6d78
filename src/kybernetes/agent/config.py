"""The agent's configuration and the errors of joining (shared by the agent's modules)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

HTTP_TIMEOUT = 15.0
RETRY_MAX = 30.0



class JoinError(Exception):
    """The join cannot succeed as asked (bad token, wrong CA, refused CSR): do not retry."""


class Unreachable(Exception):
    """The server did not answer (or answered 5xx): worth retrying."""


class NotServed(JoinError):
    """404: the server has no such endpoint (an older server)."""


@dataclass
class AgentConfig:
    server: str
    token: str
    data_dir: Path
    node_name: str
    node_ip: str = ""
    kubelet_port: int = 10250
    cni_bridge: str = "kyb0"
    default_pod_cidr: str = "10.42.0.0/24"
    container_runtime_endpoint: str = ""
    kubelet_args: list[str] = field(default_factory=list)
    verbose: int = 0
    stop_timeout: float = 90.0
    kube_proxy: bool = True
    flannel_backend: str = "host-gw"
    """``host-gw``: run ``kyb network`` (routes to other nodes' pod CIDRs); ``none``: do not."""
    ip_masq: bool = True
    cluster_cidr: str = "10.42.0.0/16"
    service_cidr: str = "10.43.0.0/16"
    cluster_dns: str = ""
    """The kubelet's --cluster-dns (default: the 10th address of service_cidr)."""
    cluster_domain: str = "cluster.local"
    bootstrap_token: str = ""
    """kubeadm's ``--token ID.SECRET``: join through the CSR API instead of the K10 token."""
    discovery_hash: str = ""
    """kubeadm's ``--discovery-token-ca-cert-hash sha256:HEX`` (the CA's public key) with it."""
    cloud_provider: str = ""
    """The kubelet's ``--cloud-provider`` (the server's ``external`` when it runs a cloud-controller-manager)."""
    lb_server_port: int = 6444
    """The API server load balancer's port on 127.0.0.1 (0: any free one); see ``loadbalancer``."""
    split_node_components: bool = False
    """Run the kubelet, kube-proxy and the node network as child processes (``kyb kubelet`` ...)
    instead of in the agent's own process (``inprocess``, the default)."""
    explicit: frozenset[str] = frozenset()
    """The fields above set by the agent's own flags: the server's node settings do not replace them."""

    @property
    def agent_dir(self) -> Path:
        return self.data_dir / "agent"
