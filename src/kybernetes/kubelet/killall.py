"""`kyb killall` and `kyb uninstall`: k3s-killall.sh and k3s-uninstall.sh for one data directory.

`killall(DATA)` stops everything the server or agent on DATA started, and nothing else:

1. its kyb processes (server, agent, kubelet, kube-proxy, scheduler, controller manager): the PID
   in DATA/kyb.pid and every kyb command line naming DATA; SIGTERM, SIGKILL after a timeout;
2. its pods, through its own containerd (the running one, or one started for the purpose on the
   node's directories): StopPodSandbox and RemovePodSandbox, so the CNI plugins delete each veth,
   release each address and remove each network namespace as they would for a deleted pod;
   containerd is stopped after;
3. whatever is still there of what step 2 listed (containerd would not start, or failed): the
   pods' processes and shims (found by the node's socket in the shims' command lines), network
   namespaces, veths, neighbour entries and leases, libcni's cached results;
4. mounts under DATA, kube-proxy's tables (Services, NetworkPolicies) and the node network's
   nftables table for the node's bridge, the node network's routes (proto 107), and the bridge
   itself once no port is left on it.

Each removal is said as it is done; what could not be removed is said too, and makes the command
fail. `uninstall(DATA)` is killall, then the data directory is deleted (only a directory that a
kybernetes server, agent or kubelet made, and only once nothing is mounted under it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click

from kybernetes.datadir import (
    PID_FILE,
    POD_ROUTE_PROTOCOL,
    default_data_dir,
    is_data_dir,
    netpol_table,
    network_table,
    node_dir,
    proxy_table,
)
from kybernetes.kubelet import cgroups
from kybernetes.kubelet import leftovers as lo
from kybernetes.kubelet.cm import CgroupManager
from kybernetes.kubelet.containerd import (
    Containerd,
    ContainerdError,
    cleanup_mounts,
    mounts_under,
    process_alive,
)

Say = Callable[[str], None]


@dataclass
class Sandbox:
    """One pod of the node, as found before removing it."""

    id: str
    pod: str = ""  # namespace/name, when containerd could say
    shim: int | None = None
    pids: list[int] = field(default_factory=list)
    tasks: set[str] = field(default_factory=set)  # its own and its containers' task IDs (cgroups)
    pod_cgroups: set[str] = field(default_factory=set)  # the pod's cgroup (kubepods/.../pod<uid>)
    netns: Path | None = None
    ip: str = ""
    veth: str = ""

    def describe(self) -> str:
        parts = [f"pod {self.pod or '?'} (sandbox {self.id[:12]})"]
        if self.pids:
            parts.append("processes " + " ".join(map(str, sorted(self.pids))))
        if self.shim:
            parts.append(f"shim {self.shim}")
        if self.netns:
            parts.append(f"netns {self.netns.name}")
        if self.veth:
            parts.append(f"veth {self.veth}")
        if self.ip:
            parts.append(f"address {self.ip}")
        return ", ".join(parts)


class KillallError(Exception):
    """Something of the node could not be removed (the message says what)."""


# ---- 1. the node's own processes ----


def _is_kyb(argv: list[bytes]) -> bool:
    return b"kybernetes.cli" in argv or any(os.path.basename(a) == b"kyb" for a in argv[:2])


def _names(argv: list[bytes], directory: Path) -> bool:
    want = os.fsencode(str(directory))
    for arg in argv:
        value = arg.split(b"=", 1)[1] if arg.startswith(b"--") and b"=" in arg else arg
        if value == want or value.startswith(want + b"/"):
            return True
    return False


def node_processes(data_dir: Path) -> dict[int, str]:
    """PID -> command line of the kyb processes running for `data_dir` (not this one, nor its parents)."""
    mine = {0, 1}
    pid = os.getpid()
    while pid > 1:
        mine.add(pid)
        pid = lo.parent_of(pid)
    argvs = lo.cmdlines()
    found = {p for p, argv in argvs.items() if _is_kyb(argv) and _names(argv, data_dir)}
    for pid_file in (data_dir / PID_FILE, node_dir(data_dir) / PID_FILE):
        with contextlib.suppress(OSError, ValueError):
            recorded = int(pid_file.read_text().strip())
            if recorded in argvs and _is_kyb(argvs[recorded]):
                found.add(recorded)
    return {p: b" ".join(argvs[p]).decode(errors="replace")[:160] for p in sorted(found - mine)}


def stop_processes(pids: dict[int, str], timeout: float, say: Say) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(process_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid, cmd in pids.items():
        how = "stopped"
        if process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            how = "killed"
        say(f"{how} process {pid}: {cmd}")


# ---- 2. the pods, through containerd ----


def find_sandboxes(node: Path) -> dict[str, Sandbox]:
    """The node's pods as its shims and task cgroups show them: processes and network namespaces.

    Processes are the shim's descendants and whatever is in the cgroups of the node's tasks (a
    container's processes outlive a killed shim, reparented to init).
    """
    socket = lo.containerd_socket(node)
    argvs = lo.cmdlines()
    found: dict[str, Sandbox] = {}
    for pid, argv in argvs.items():
        shim = lo.shim_of(argv)
        if shim is not None and shim[0] == socket:
            box = found.setdefault(shim[1], Sandbox(shim[1]))
            box.shim = pid
            box.pids = lo.descendants(pid, argvs)
    pod_cgroups = lo.task_pod_cgroups(node)
    for task, sandbox in lo.node_tasks(node).items():
        box = found.setdefault(sandbox, Sandbox(sandbox))
        box.tasks |= {task, sandbox}
        box.pids = sorted(set(box.pids) | lo.cgroup_pids(task))
        if task in pod_cgroups:
            box.pod_cgroups.add(pod_cgroups[task])
    for box in found.values():
        netns = lo.netns_of_processes(box.pids)
        if netns:
            box.netns = next(iter(netns.values()))
    return found


def _fill_network(boxes: dict[str, Sandbox], bridge: str | None) -> None:
    """Each pod's address and veth, from inside its network namespace."""
    if not bridge:
        return
    on_bridge = {pod.netns: pod for pod in lo.pods_on_bridge(bridge)}
    for box in boxes.values():
        pod = on_bridge.get(box.netns) if box.netns is not None else None
        if pod is not None:
            box.ip, box.veth = pod.ip, pod.veth


async def remove_through_cri(node: Path, boxes: dict[str, Sandbox], bridge: str | None, say: Say) -> None:
    """Adds containerd's view to `boxes`, then stops and removes every sandbox; stops containerd."""
    import json

    from kybernetes.kubelet.cri import CRIClient, CRIError, NotFoundError

    runtime = Containerd(node)
    await runtime.start(timeout=30)
    try:
        async with CRIClient(runtime.endpoint, timeout=60) as client:
            for sandbox in await client.list_pod_sandbox():
                box = boxes.setdefault(sandbox.id, Sandbox(sandbox.id))
                box.pod = f"{sandbox.metadata.namespace}/{sandbox.metadata.name}"
                # A stopped sandbox has no task bundle left: its pod cgroup by the kubelet's default names.
                box.pod_cgroups |= {name for name in CgroupManager().pod_cgroup_candidates(sandbox.metadata.uid)
                                    if cgroups.cgroup_dirs(name)}
                with contextlib.suppress(CRIError, ValueError, KeyError, TypeError):
                    status = await client.pod_sandbox_status(sandbox.id, verbose=True)
                    box.ip = box.ip or status.status.network.ip
                    spec = json.loads(status.info.get("info", "{}")).get("runtimeSpec") or {}
                    for ns in (spec.get("linux") or {}).get("namespaces") or []:
                        if ns.get("type") == "network" and ns.get("path") and box.netns is None:
                            box.netns = Path(ns["path"])
            _fill_network(boxes, bridge)
            for box in boxes.values():
                with contextlib.suppress(NotFoundError):
                    await client.stop_pod_sandbox(box.id)
                with contextlib.suppress(NotFoundError):
                    await client.remove_pod_sandbox(box.id)
    finally:
        await runtime.stop()
        say(f"stopped containerd of {node}")


# ---- 3. whatever is still there ----


def sweep(box: Sandbox, network: lo.NodeNetwork | None) -> list[str]:
    """Removes what is left of one pod; returns what could not be removed."""
    from kybernetes.kubelet.containerd import kill_pids

    kill_pids([p for p in [*box.pids, box.shim] if p is not None and process_alive(p)])
    for task in box.tasks:
        kill_pids(lo.cgroup_pids(task))
    if box.netns is not None:
        lo.remove_netns(box.netns)
    if box.veth and lo.link_exists(box.veth):
        lo.run_quiet("ip", "link", "delete", box.veth)
    if network is not None:
        if box.ip:
            lo.run_quiet("ip", "neigh", "del", box.ip, "dev", network.bridge)
            lease = network.leases / box.ip
            with contextlib.suppress(OSError):
                if lease.read_text().split()[0] == box.id:
                    lease.unlink()
        lo.remove_cni_cache(network.network, box.id)
    deadline = time.monotonic() + 5
    while any(process_alive(p) for p in box.pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [f"process {p}" for p in [*box.pids, box.shim] if p is not None and process_alive(p)]
    left += [f"cgroup {task}" for task in sorted(box.tasks) if not lo.remove_cgroup(task)]
    left += [f"cgroup {name}" for name in sorted(box.pod_cgroups) if not cgroups.remove(name)]
    if box.netns is not None and box.netns.exists():
        left.append(f"netns {box.netns}")
    if box.veth and lo.link_exists(box.veth):
        left.append(f"veth {box.veth}")
    return left


def remove_bridge_and_table(bridge: str, say: Say) -> list[str]:
    """Deletes kube-proxy's tables for `bridge` (Services, NetworkPolicies), the node network's table
    and routes (``proto 107``: another node sharing this machine's routing table gets its own back at
    its next resync), and the bridge once nothing is on it; returns failures."""
    problems = []
    tables = (("ip", proxy_table(bridge)), ("inet", netpol_table(bridge)), ("ip", network_table(bridge)))
    for family, table in tables:
        if lo.nft_table_exists(table, family):
            if lo.run_quiet("nft", "delete", "table", family, table):
                say(f"deleted nftables table {family} {table}")
            else:
                problems.append(f"nftables table {family} {table}")
    pod_routes = lo.routes_of_protocol(POD_ROUTE_PROTOCOL)
    if pod_routes:
        if lo.run_quiet("ip", "-4", "route", "flush", "proto", str(POD_ROUTE_PROTOCOL)):
            say(f"deleted the routes to other nodes' pods: {', '.join(pod_routes)}")
        else:
            problems.append(f"routes proto {POD_ROUTE_PROTOCOL}")
    if lo.link_exists(bridge):
        ports = lo.bridge_ports(bridge)
        if ports:
            say(f"kept bridge {bridge}: other interfaces are on it ({', '.join(sorted(ports.values()))})")
        elif lo.run_quiet("ip", "link", "delete", bridge):
            say(f"deleted bridge {bridge}")
    return problems


# ---- the commands ----


async def killall(data_dir: Path, *, say: Say = print, stop_timeout: float = 30.0) -> None:
    """Stops and removes everything the node on `data_dir` started (see the module doc)."""
    data_dir = data_dir.resolve()
    node = node_dir(data_dir)
    network = lo.node_network(node)
    bridge = network.bridge if network else None

    stop_processes(node_processes(data_dir), stop_timeout, say)
    boxes = find_sandboxes(node)
    _fill_network(boxes, bridge)
    problems: list[str] = []
    if (node / "containerd" / "config.toml").exists():
        try:
            await remove_through_cri(node, boxes, bridge, say)
        except (ContainerdError, OSError) as err:
            say(f"containerd of {node} did not serve ({err}); removing its pods by hand")
    for box in boxes.values():
        left = sweep(box, network)
        problems += [f"{box.pod or box.id[:12]}: {what}" for what in left]
        if not left:
            say(f"removed {box.describe()}")
    for shim in find_sandboxes(node).values():  # started meanwhile, or unknown to containerd
        problems += [f"{shim.id[:12]}: {what}" for what in sweep(shim, network)]

    for point in cleanup_mounts(data_dir):
        say(f"unmounted {point}")
    problems += [f"mount {m}" for m in mounts_under(data_dir)]
    if bridge is not None:
        problems += remove_bridge_and_table(bridge, say)
    if problems:
        raise KillallError("could not remove: " + "; ".join(problems))


async def uninstall(data_dir: Path, *, say: Say = print) -> None:
    """killall, then deletes `data_dir`; refuses a directory that is not a kybernetes data dir."""
    data_dir = data_dir.resolve()
    if not data_dir.is_dir():
        raise KillallError(f"{data_dir} does not exist")
    if not is_data_dir(data_dir):
        raise KillallError(f"{data_dir} is not a kybernetes data directory (no tls/ca.crt, agent/ca.crt or "
                           f"containerd/config.toml in it): not deleting it")
    await killall(data_dir, say=say)
    mounted = mounts_under(data_dir)
    if mounted:  # killall raised already; a mount made meanwhile must not be deleted through
        raise KillallError(f"not deleting {data_dir}: still mounted under it: {mounted}")
    shutil.rmtree(data_dir)
    say(f"deleted {data_dir}")


def _run(action: Callable[..., object], data_dir: Path | None) -> None:
    say: Say = click.echo
    try:
        asyncio.run(action((data_dir or default_data_dir()), say=say))  # type: ignore[arg-type]
    except KillallError as err:
        raise click.ClickException(str(err)) from None


_DATA_DIR_HELP = ("The data directory of `kyb server` or `kyb agent`. Default: the server's, /var/lib/kybernetes "
                  "as root, ~/.local/share/kybernetes otherwise.")


@click.command("killall")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None, help=_DATA_DIR_HELP)
def killall_command(data_dir: Path | None) -> None:
    """Stop the node of a data directory and everything it started, and say what was removed.

    Its kyb processes, pods (processes, shims, network namespaces, veths, addresses), mounts,
    kube-proxy's nftables table and its bridge; nothing of another data directory's node.
    """
    _run(killall, data_dir)


@click.command("uninstall")
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False), default=None, help=_DATA_DIR_HELP)
def uninstall_command(data_dir: Path | None) -> None:
    """kyb killall, then delete the data directory (only a kybernetes one). Asks nothing."""
    _run(uninstall, data_dir)
