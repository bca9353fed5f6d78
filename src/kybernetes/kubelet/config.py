"""The kubelet's settings: what ``kyb kubelet`` flags (and the agent) configure.

One dataclass, :class:`KubeletConfig`, with the kubelet's defaults (port 10250, 110 pods, a 1 s
relist, 10 s lease and status intervals, the manifest directory read every 5 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kybernetes.api.obj import Obj

STATIC_SCAN_INTERVAL = 5.0
"""Default seconds between two reads of the static pod manifest directory."""


@dataclass
class KubeletConfig:
    """Everything a kubelet is started with; paths default under ``data_dir``."""

    kubeconfig: Path
    node_name: str
    data_dir: Path
    container_runtime_endpoint: str | None = None
    port: int = 10250
    address: str = "127.0.0.1"
    node_ip: str | None = None
    pod_manifest_path: Path | None = None
    cni_bridge: str = "kyb0"
    default_pod_cidr: str = "10.42.0.0/24"
    cni_conf_dir: Path | None = None  # default: DATA/cni/net.d with our own containerd, none otherwise
    registry_config_dir: Path | None = None  # containerd's hosts.toml directory (registry mirrors, plain HTTP)
    drain_on_exit: bool = False
    stop_runtime_on_exit: bool = True  # our own containerd only; containers outlive it in their shims
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    max_pods: int = 110
    tls_cert_file: Path | None = None
    tls_private_key_file: Path | None = None
    client_ca_file: Path | None = None
    cluster_ca_dir: Path | None = None  # ca.crt + ca.key (the server's DATA/tls): sign our serving cert
    relist_interval: float = 1.0
    import_images: bool = True
    lease_interval: float = 10.0
    status_interval: float = 10.0
    resolv_conf: Path = Path("/etc/resolv.conf")
    file_check_frequency: float = STATIC_SCAN_INTERVAL  # how often the manifest directory is read


__all__ = [
    "STATIC_SCAN_INTERVAL",
    "KubeletConfig",
]
