"""The kubelet's settings: what ``kyb kubelet`` flags (and the agent) configure.

One dataclass, :class:`KubeletConfig`, with the kubelet's defaults (port 10250, 110 pods, a 1 s
relist, 10 s lease and status intervals, the manifest directory read every 5 s).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kybernetes.api.obj import Obj

STATIC_SCAN_INTERVAL = 5.0
"""Default seconds between two reads of the static pod manifest directory."""

DEFAULT_EVICTION_HARD: dict[str, str] = {
    "memory.available": "100Mi", "nodefs.available": "10%", "nodefs.inodesFree": "5%",
    "imagefs.available": "15%", "imagefs.inodesFree": "5%"}
"""The kubelet 1.32's evictionHard default on Linux (replaced whole when one is given, as there)."""


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
    import_system_image: bool = True  # the kybernetes system image too (in the background), for add-on pods
    lease_interval: float = 10.0
    status_interval: float = 10.0
    resolv_conf: Path | None = Path("/etc/resolv.conf")  # None: --resolv-conf "" (pods get 127.0.0.1)
    cluster_dns: list[str] = field(default_factory=list)  # --cluster-dns / KubeletConfiguration clusterDNS
    cluster_domain: str = ""  # --cluster-domain / clusterDomain
    file_check_frequency: float = STATIC_SCAN_INTERVAL  # how often the manifest directory is read
    # ---- resources and eviction (kybernetes.kubelet.cm, kybernetes.kubelet.eviction) ----
    cgroups_per_qos: bool = True  # cgroupsPerQOS: kubepods/{burstable,besteffort}/pod<uid>
    cgroup_root: str = "/"  # cgroupRoot: where kubepods goes
    kube_reserved: dict[str, str] = field(default_factory=dict)  # kubeReserved: cpu=100m,memory=1Gi,...
    system_reserved: dict[str, str] = field(default_factory=dict)  # systemReserved
    enforce_node_allocatable: list[str] = field(default_factory=lambda: ["pods"])
    eviction_hard: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_EVICTION_HARD))
    eviction_soft: dict[str, str] = field(default_factory=dict)
    eviction_soft_grace_period: dict[str, str] = field(default_factory=dict)  # signal -> Go duration
    eviction_pressure_transition_period: float = 300.0  # seconds a pressure condition outlasts its signal
    eviction_max_pod_grace_period: int = 0  # seconds; the cap on a pod's grace in soft evictions
    eviction_minimum_reclaim: dict[str, str] = field(default_factory=dict)
    eviction_monitoring_period: float = 10.0  # the kubelet's fixed 10 s; a kybernetes flag for tests
    pod_pids_limit: int = -1  # podPidsLimit: pids.max of each pod cgroup (-1: unlimited)
    # Housekeeping, named as the KubeletConfiguration fields (durations in seconds), kubelet's defaults.
    image_gc_high_threshold_percent: int = 85  # imageGCHighThresholdPercent
    image_gc_low_threshold_percent: int = 80  # imageGCLowThresholdPercent
    image_minimum_gc_age: float = 120.0  # imageMinimumGCAge (2m)
    image_maximum_gc_age: float = 0.0  # imageMaximumGCAge (0: images are not removed for age)
    image_gc_period: float = 300.0  # not in KubeletConfiguration: the kubelet's fixed ImageGCPeriod (5m)
    container_log_max_size: str = "10Mi"  # containerLogMaxSize
    container_log_max_files: int = 5  # containerLogMaxFiles
    container_log_monitor_interval: float = 10.0  # containerLogMonitorInterval
    shutdown_grace_period: float = 0.0  # shutdownGracePeriod (0: graceful node shutdown off)
    shutdown_grace_period_critical_pods: float = 0.0  # shutdownGracePeriodCriticalPods


KUBELET_CONFIGURATION_VERSIONS = ("kubelet.config.k8s.io/v1beta1", "kubelet.config.k8s.io/v1")


def load_kubelet_configuration(path: Path) -> dict[str, Any]:
    """The fields of a KubeletConfiguration file (YAML or JSON); ValueError if it is not one."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(str(err)) from None
    if not isinstance(doc, dict):
        raise ValueError("not a KubeletConfiguration object")
    if doc.get("kind") != "KubeletConfiguration" or doc.get("apiVersion") not in KUBELET_CONFIGURATION_VERSIONS:
        raise ValueError(f'no kind "{doc.get("kind")}" is registered for version "{doc.get("apiVersion")}"')
    return doc


def apply_dns_settings(config: KubeletConfig, file_settings: dict[str, Any], *, cluster_dns: Sequence[str] = (),
                       cluster_domain: str | None = None, resolv_conf: str | None = None) -> None:
    """Sets the DNS fields from the file's clusterDNS/clusterDomain/resolvConf, then from the flags
    given (a flag wins, as in the kubelet); `--cluster-dns` values may be comma-separated."""
    servers = [s.strip() for value in cluster_dns for s in value.split(",") if s.strip()]
    if servers:
        config.cluster_dns = servers
    elif file_settings.get("clusterDNS"):
        config.cluster_dns = [str(s) for s in file_settings["clusterDNS"]]
    for ip in config.cluster_dns:
        ipaddress.ip_address(ip)  # ValueError: not an address
    domain = cluster_domain if cluster_domain is not None else file_settings.get("clusterDomain")
    if domain is not None:
        config.cluster_domain = str(domain).removesuffix(".")
    resolver = resolv_conf if resolv_conf is not None else file_settings.get("resolvConf")
    if resolver is not None:
        config.resolv_conf = Path(resolver) if resolver else None


__all__ = [
    "DEFAULT_EVICTION_HARD",
    "KUBELET_CONFIGURATION_VERSIONS",
    "STATIC_SCAN_INTERVAL",
    "KubeletConfig",
    "apply_dns_settings",
    "load_kubelet_configuration",
]
