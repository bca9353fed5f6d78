"""The pod network: a CNI configuration for containerd's CRI plugin.

Each node gets one Linux bridge (default `kyb0`) whose address is the first IP of the node's pod
CIDR; every pod sandbox gets a veth on it and an address from host-local IPAM. That gives, with no
other moving part:

- pod to pod on the node: same L2 segment;
- host to pod and pod to host: the bridge holds the gateway address (`isGateway`), the host routes
  the pod CIDR to the bridge;
- pod to a hairpinned Service address (later, kube-proxy): `hairpinMode`.

The host firewall is left alone: `ipMasq` is false (no NAT rules; pods are not meant to reach the
outside world here) and `portmap` only writes rules for pods that ask for host ports. Note that the
bridge plugin turns on `net.ipv4.ip_forward` when it is the gateway, and portmap (plugins 1.1.1)
programs host ports through the `iptables` command (iptables-nft on Debian 12).

host-local's allocation state lives under the caller's directory (`ipam_data_dir`, normally
DATA/cni/ipam) instead of /var/lib/cni, so nodes sharing a machine do not share leases and a removed
data directory leaves nothing behind.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

CNI_VERSION = "1.0.0"  # understood by Debian's containernetworking-plugins 1.1.1 and containerd 1.6
CONFLIST_NAME = "10-kybernetes.conflist"


def gateway_ip(pod_cidr: str) -> str:
    """The bridge's (gateway's) address: the first host address of the pod CIDR."""
    network = ipaddress.ip_network(pod_cidr, strict=False)
    return str(network.network_address + 1)


def cni_config(pod_cidr: str, *, bridge: str = "kyb0", network_name: str = "kybernetes", mtu: int = 1500,
               ipam_data_dir: Path | None = None) -> dict[str, Any]:
    """The conflist as a dict (see `write_cni_config`)."""
    if len(bridge) > 15:
        raise ValueError(f"bridge name {bridge!r} is longer than 15 characters")
    network = ipaddress.ip_network(pod_cidr, strict=False)
    default_route = "0.0.0.0/0" if network.version == 4 else "::/0"
    ipam: dict[str, Any] = {
        "type": "host-local",
        "ranges": [[{"subnet": str(network), "gateway": gateway_ip(pod_cidr)}]],
        "routes": [{"dst": default_route}],
    }
    if ipam_data_dir is not None:
        ipam["dataDir"] = str(ipam_data_dir)
    return {
        "cniVersion": CNI_VERSION,
        "name": network_name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "mtu": mtu,
                "ipam": ipam,
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def write_cni_config(conf_dir: Path, pod_cidr: str, *, bridge: str = "kyb0", network_name: str = "kybernetes",
                     mtu: int = 1500, ipam_data_dir: Path | None = None) -> Path:
    """Writes the node's conflist into `conf_dir` (atomically: containerd watches that directory).

    `ipam_data_dir` defaults to `conf_dir/../ipam` (with the usual layout, DATA/cni/ipam).
    """
    conf_dir = Path(conf_dir)
    conf_dir.mkdir(parents=True, exist_ok=True)
    if ipam_data_dir is None:
        ipam_data_dir = conf_dir.parent / "ipam"
    ipam_data_dir.mkdir(parents=True, exist_ok=True)
    config = cni_config(pod_cidr, bridge=bridge, network_name=network_name, mtu=mtu,
                        ipam_data_dir=ipam_data_dir)
    path = conf_dir / CONFLIST_NAME
    tmp = conf_dir / ("." + CONFLIST_NAME + ".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(path)
    return path
