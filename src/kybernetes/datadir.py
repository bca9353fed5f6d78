"""The layout of kybernetes' data directories, for the commands that act on one from outside.

    kyb server --data-dir D     D/tls/ca.crt (the cluster CA), D/db/state.db (the embedded store),
                                with --cluster-init D/db/etcd (etcd's member) and D/tls/etcd-* (its CA),
                                D/db/reset-flag after a --cluster-reset until the next start,
                                D/db/snapshots (`kyb snapshot save`'s and scheduled snapshots),
                                D/kubeconfig.yaml; its own node is an agent in D/agent
    kyb agent --data-dir A      A/agent/ca.crt (the pinned cluster CA, credentials), and the node
                                itself: A/containerd, A/cni, A/pods, ...
    kyb kubelet --data-dir N    the node: N/containerd, N/cni/net.d (the CNI config naming the
                                bridge), N/cni/ipam (host-local's leases), N/pods, N/images

`node_dir` maps the first two to the third; `kyb image import`, `kyb killall` and `kyb uninstall`
take whichever directory the user started the server or agent with.
"""

from __future__ import annotations

import os
from pathlib import Path

PID_FILE = "kyb.pid"
"""In a server's or agent's data dir: the PID of the `kyb server` or `kyb agent` running on it."""


def _data_dir(name: str) -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib") / name
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / name


def default_data_dir() -> Path:
    """`kyb server`'s data dir when none is given (its store, PKI, join tokens, and this machine's
    node): /var/lib/kybernetes for root, $XDG_DATA_HOME/kybernetes (~/.local/share) for others."""
    return _data_dir("kybernetes")


def default_agent_data_dir() -> Path:
    """`kyb agent`'s data dir (its pinned CA, node credentials and node state)."""
    return _data_dir("kybernetes-agent")


def proxy_table(bridge: str) -> str:
    """The nftables table (family ip) of the kube-proxy serving the node on `bridge`: the agent
    names it, `kyb killall` removes it."""
    return f"kyb-proxy-{bridge}"


def netpol_table(bridge: str) -> str:
    """The nftables table (family inet) of the NetworkPolicy controller in that kube-proxy."""
    return f"kyb-netpol-{bridge}"


def network_table(bridge: str) -> str:
    """The nftables table (family ip) of the node network daemon (``kyb network``) of the node on
    `bridge`: masquerading of pod traffic leaving the cluster. Removed by `kyb killall` too."""
    return f"kyb-net-{bridge}"


POD_ROUTE_PROTOCOL = 107
"""The route protocol (``ip route ... proto 107``) that marks the host-gw routes ``kyb network``
programs to other nodes' pod CIDRs (no registered routing daemon uses 107): only routes with it
are ever changed or deleted, by that daemon and by `kyb killall`."""


def store_path(data_dir: Path, datastore_endpoint: str = "") -> Path | None:
    """The embedded store's SQLite file for a server started with ``--datastore-endpoint`` (empty:
    ``D/db/state.db``; ``sqlite://PATH``: PATH); None for a store that is not a file here."""
    if not datastore_endpoint:
        return data_dir / "db" / "state.db"
    if datastore_endpoint.startswith("sqlite://"):
        return Path(datastore_endpoint[len("sqlite://"):])
    return None


def snapshot_dir(data_dir: Path) -> Path:
    """Where snapshots of a server's store go unless ``--dir``/``--snapshot-dir`` says otherwise."""
    return data_dir / "db" / "snapshots"


def reset_flag(data_dir: Path) -> Path:
    """k3s's ``db/reset-flag``: written by ``kyb server --cluster-reset``, removed by the next
    ordinary start of the server; while it exists, another plain reset is refused."""
    return data_dir / "db" / "reset-flag"


def running_pid(data_dir: Path) -> int | None:
    """The PID in ``data_dir``'s PID file if that process is alive (a server or agent running on it)."""
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, another user's
    return pid


def is_server_dir(data_dir: Path) -> bool:
    return (data_dir / "tls" / "ca.crt").exists() or (data_dir / "agent" / "containerd").is_dir()


def node_dir(data_dir: Path) -> Path:
    """The node's own directory (its containerd, CNI state, pods) for a server's or agent's data dir."""
    return data_dir / "agent" if is_server_dir(data_dir) else data_dir


def is_data_dir(path: Path) -> bool:
    """Whether `path` is a data directory a kybernetes server, agent or kubelet made."""
    return (is_server_dir(path) or (path / "agent" / "ca.crt").exists()
            or (path / "containerd" / "config.toml").exists())


def write_pid_file(data_dir: Path) -> Path:
    """Records this process as the one running on `data_dir` (for `kyb killall`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PID_FILE
    path.write_text(f"{os.getpid()}\n")
    return path


def remove_pid_file(data_dir: Path) -> None:
    path = data_dir / PID_FILE
    try:
        if path.read_text().strip() == str(os.getpid()):
            path.unlink()
    except (OSError, ValueError):
        pass
