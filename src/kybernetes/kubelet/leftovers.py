"""What a node puts on the machine outside its processes, found again from its data directory.

A node (the kubelet's data directory NODE: DATA/agent for `kyb server`) creates, and a SIGTERMed
server leaves running on purpose (a restarted kubelet adopts its pods):

- per pod: a `containerd-shim-runc-v2 ... -address NODE/containerd/containerd.sock` whose children
  are the pod's processes; a network namespace /var/run/netns/cni-*; a veth whose host end is a
  port of the node's bridge and whose pod end holds an address leased by host-local IPAM in
  NODE/cni/ipam; libcni's result cache /var/lib/cni/results/NETWORK-SANDBOXID-IFNAME;
- mounts under NODE (sandbox /dev/shm, container root filesystems, tmpfs volumes);
- the bridge and the IPAM directory named in NODE/cni/net.d/10-kybernetes.conflist (the node's
  record of its network), and kube-proxy's table `ip kyb-proxy-BRIDGE` (`datadir.proxy_table`).

A pod on a bridge is told apart by the shim whose process tree sits in its network namespace: the
shim's `-address` names the containerd, so the node, that started it. `pods_on_bridge` finds every
pod on a bridge this way; `foreign_pods` those of other nodes, which is what keeps a new node from
handing out their addresses again (host-local's leases are per data directory). Everything here
only reads, except `remove_*`, which the killall code calls for what it found of its own node.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kybernetes.kubelet.cni import CONFLIST_NAME

NETNS_DIR = Path("/var/run/netns")
CNI_CACHE_DIR = Path("/var/lib/cni/results")
SHIM = b"containerd-shim-runc-v2"


@dataclass(frozen=True)
class NodeNetwork:
    """The node's network as its CNI config records it."""

    bridge: str
    network: str  # the CNI network name (host-local's subdirectory, libcni's cache prefix)
    ipam_dir: Path  # host-local's dataDir: NETWORK/IP files are the leases

    @property
    def leases(self) -> Path:
        return self.ipam_dir / self.network


def node_network(node: Path) -> NodeNetwork | None:
    """The network recorded in NODE/cni/net.d, or None if the node never wrote one."""
    try:
        config = json.loads((node / "cni" / "net.d" / CONFLIST_NAME).read_text())
        bridge = config["plugins"][0]
        return NodeNetwork(bridge["bridge"], config["name"], Path(bridge["ipam"]["dataDir"]))
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def containerd_socket(node: Path) -> str:
    return str(node / "containerd" / "containerd.sock")


# ---- processes ----


def cmdlines() -> dict[int, list[bytes]]:
    """Every process's argv (kernel threads and vanished processes left out)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0]:
                out[int(entry.name)] = argv[:-1] if argv[-1] == b"" else argv
    return out


def parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def descendants(pid: int, argvs: dict[int, list[bytes]] | None = None) -> list[int]:
    """`pid`'s children, their children, ..., in no particular order."""
    children: dict[int, list[int]] = {}
    for p in argvs if argvs is not None else cmdlines():
        children.setdefault(parent_of(p), []).append(p)
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def shim_of(argv: list[bytes]) -> tuple[str, str] | None:
    """(containerd socket, sandbox id) of a runc shim's argv, else None."""
    if not argv[0].endswith(SHIM):
        return None
    args = dict(zip(argv[1::2], argv[2::2], strict=False))
    address, ident = args.get(b"-address"), args.get(b"-id")
    if address is None or ident is None:
        return None
    return os.fsdecode(address), os.fsdecode(ident)


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


# ---- network namespaces, veths, bridges ----


@dataclass(frozen=True)
class PodNet:
    """A pod's network on a bridge: where its namespace is, its address, the veth's host end."""

    netns: Path
    ip: str
    veth: str


def _ip_json(*args: str, netns: Path | None = None) -> list[dict[str, Any]]:
    argv = ["ip", "-j", *args]
    if netns is not None:
        argv = ["nsenter", f"--net={netns}", *argv]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if res.returncode != 0 or not res.stdout.strip():
        return []
    data = json.loads(res.stdout)
    return data if isinstance(data, list) else []


def routes_of_protocol(protocol: int) -> list[str]:
    """The destinations of this network namespace's IPv4 routes with ``proto PROTOCOL``."""
    return [str(r.get("dst")) for r in _ip_json("-4", "route", "show", "proto", str(protocol))]


def bridge_ports(bridge: str) -> dict[int, str]:
    """ifindex -> name of the interfaces enslaved to `bridge` (none if it does not exist)."""
    return {int(str(link["ifindex"])): str(link["ifname"]) for link in _ip_json("link", "show", "master", bridge)}


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True, timeout=10).returncode == 0


def netns_files() -> list[Path]:
    try:
        return sorted(p for p in NETNS_DIR.iterdir() if p.is_file())
    except OSError:
        return []


def pods_on_bridge(bridge: str, skip: Collection[int] = ()) -> list[PodNet]:
    """Every network namespace (of /var/run/netns, but those whose inode is in `skip`) with an
    interface whose peer is a port of `bridge`."""
    ports = bridge_ports(bridge)
    if not ports:
        return []
    found = []
    for netns in netns_files():
        with contextlib.suppress(OSError):
            if os.stat(netns).st_ino in skip:
                continue
        for link in _ip_json("addr", "show", netns=netns):
            peer = link.get("link_index")
            if not isinstance(peer, int) or peer not in ports:
                continue
            addrs = [a for a in link.get("addr_info") or [] if a.get("family") == "inet"]
            ip = str(addrs[0]["local"]) if addrs else ""
            found.append(PodNet(netns, ip, ports[peer]))
    return found


def netns_of_processes(pids: list[int]) -> dict[int, Path]:
    """ns inode -> file in /var/run/netns, for the network namespaces `pids` are in."""
    inodes = {i for i in (netns_inode(p) for p in pids) if i is not None}
    out = {}
    for path in netns_files():
        with contextlib.suppress(OSError):
            inode = os.stat(path).st_ino
            if inode in inodes:
                out[inode] = path
    return out


def netns_owners() -> dict[int, str]:
    """ns inode -> socket of the containerd whose shim's processes are in that network namespace."""
    argvs = cmdlines()
    owners: dict[int, str] = {}
    for pid, argv in argvs.items():
        shim = shim_of(argv)
        if shim is None:
            continue
        for child in descendants(pid, argvs):
            inode = netns_inode(child)
            if inode is not None:
                owners.setdefault(inode, shim[0])
    return owners


@dataclass(frozen=True)
class ForeignPod:
    net: PodNet
    owner_socket: str | None  # the containerd that started it; None: no process left in it

    def owner(self) -> str:
        if self.owner_socket is None:
            return "no process left in it"
        node = Path(self.owner_socket).parent.parent
        data = node.parent if node.name == "agent" and (node.parent / "tls").is_dir() else node
        return f"started by the node in {data}"


def foreign_pods(bridge: str, own_socket: str, own_leases: Path | None) -> list[ForeignPod]:
    """Pods on `bridge` that the node with containerd `own_socket` did not start.

    A namespace is the node's own when its processes belong to a shim of that containerd, or, with
    no process left in it, when its address is leased in `own_leases` (host-local's directory).
    """
    if not bridge_ports(bridge):
        return []
    owners = netns_owners()
    # The node's own namespaces need no look inside (a restarted kubelet with many pods starts fast).
    pods = pods_on_bridge(bridge, skip={inode for inode, socket in owners.items() if socket == own_socket})
    foreign = []
    for pod in pods:
        try:
            owner = owners.get(os.stat(pod.netns).st_ino)
        except OSError:
            continue  # removed meanwhile
        if owner == own_socket:
            continue
        if owner is None and own_leases is not None and pod.ip and (own_leases / pod.ip).exists():
            continue
        foreign.append(ForeignPod(pod, owner))
    return foreign


class BridgeInUse(Exception):
    """The node's bridge holds pods of another node (their addresses would be handed out again)."""


def check_bridge(bridge: str, node: Path) -> None:
    """Raises BridgeInUse, saying whose pods they are and what to do, if `bridge` has foreign pods."""
    network = node_network(node)
    foreign = foreign_pods(bridge, containerd_socket(node), network.leases if network else None)
    if not foreign:
        return
    lines = [f"  {p.net.ip or '?'} (veth {p.net.veth}, netns {p.net.netns.name}): {p.owner()}" for p in foreign]
    hints = sorted({p.owner().removeprefix("started by the node in ") for p in foreign if p.owner_socket})
    fix = "; ".join(f"kyb killall --data-dir {h}" for h in hints) or "kyb killall on the data dir that started them"
    raise BridgeInUse(
        f"bridge {bridge} holds pods that this node (data dir {node}) did not start; their addresses are still "
        f"in use and this node would hand them out again:\n" + "\n".join(lines)
        + f"\nremove them ({fix}) or give this node a bridge of its own (--cni-bridge)")


# ---- removal (of what killall found to be its node's) ----


def run_quiet(*argv: str) -> bool:
    return subprocess.run(list(argv), capture_output=True, timeout=30).returncode == 0


def remove_netns(path: Path) -> bool:
    """Unmounts and deletes a network namespace file (the namespace goes with its last user)."""
    from kybernetes.kubelet.containerd import cleanup_mounts

    if not path.exists():
        return False
    cleanup_mounts(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True


def nft_table_exists(table: str, family: str = "ip") -> bool:
    return run_quiet("nft", "list", "table", family, table)


def remove_cni_cache(network: str, sandbox_id: str) -> list[Path]:
    """libcni's cached results of a sandbox (what a later CNI DEL would have read)."""
    removed = []
    for path in (CNI_CACHE_DIR.glob(f"*-{sandbox_id}-*") if CNI_CACHE_DIR.is_dir() else []):
        if path.name.startswith((f"{network}-", "cni-loopback-")):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


# ---- tasks and their cgroups (what outlives a killed shim) ----

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_NAMESPACE = "k8s.io"  # runc's cgroup for a CRI task without a cgroup parent: /k8s.io/ID
SANDBOX_ID_ANNOTATION = "io.kubernetes.cri.sandbox-id"


def _bundles(node: Path) -> dict[str, dict[str, Any]]:
    """Task ID -> its bundle's OCI config (empty if unreadable), for the node's containerd state."""
    out: dict[str, dict[str, Any]] = {}
    root = node / "containerd" / "state" / "io.containerd.runtime.v2.task" / CGROUP_NAMESPACE
    for bundle in (root.iterdir() if root.is_dir() else []):
        config: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads((bundle / "config.json").read_text())
            config = loaded if isinstance(loaded, dict) else {}
        out[bundle.name] = config
    return out


def node_tasks(node: Path) -> dict[str, str]:
    """Task ID -> its sandbox's ID, for every task bundle in the node's containerd state.

    A bundle stays until containerd deletes the task, so it names the node's containers even when
    their shims were killed and containerd is not running.
    """
    tasks: dict[str, str] = {}
    for task, config in _bundles(node).items():
        annotations = config.get("annotations") if isinstance(config.get("annotations"), dict) else {}
        tasks[task] = (annotations or {}).get(SANDBOX_ID_ANNOTATION) or task
    return tasks


def task_pod_cgroups(node: Path) -> dict[str, str]:
    """Task ID -> the pod cgroup its bundle names as the parent of its own (``/kubepods/.../pod<uid>``),
    for the tasks placed under one (kybernetes.kubelet.cm): runc removes a task's cgroup, not its pod's."""
    out: dict[str, str] = {}
    for task, config in _bundles(node).items():
        linux = config.get("linux") if isinstance(config.get("linux"), dict) else {}
        path = str((linux or {}).get("cgroupsPath") or "")
        parent = path.rstrip("/").rpartition("/")[0]
        if parent.rpartition("/")[2].startswith("pod"):
            out[task] = parent
    return out


TASK_CGROUP_PARENTS = (CGROUP_NAMESPACE, "kubepods/pod*", "kubepods/*/pod*")
"""Where runc puts a CRI task: /k8s.io/ID without a cgroup parent, else under the pod's cgroup
(kybernetes.kubelet.cm, the default cgroupRoot)."""


def cgroup_dirs(task_id: str) -> list[Path]:
    """The task's cgroup in every hierarchy (cgroup v1 controllers, or the one v2 tree)."""
    from kybernetes.kubelet.cgroups import hierarchies

    found: list[Path] = []
    for tree in hierarchies(CGROUP_ROOT):
        for parent in TASK_CGROUP_PARENTS:
            found += [p for p in tree.glob(f"{parent}/{task_id}") if p.is_dir()]
    return found


def cgroup_pids(task_id: str) -> set[int]:
    pids: set[int] = set()
    for directory in cgroup_dirs(task_id):
        with contextlib.suppress(OSError, ValueError):
            pids |= {int(line) for line in (directory / "cgroup.procs").read_text().split()}
    return pids


def remove_cgroup(task_id: str) -> bool:
    """Removes the task's (empty) cgroups; False if one is still there."""
    ok = True
    for directory in cgroup_dirs(task_id):
        try:
            directory.rmdir()
        except OSError:
            ok = False
            continue
        if directory.parent.name.startswith("pod"):
            with contextlib.suppress(OSError):  # the pod's cgroup, once its last task is gone
                directory.parent.rmdir()
    return ok
