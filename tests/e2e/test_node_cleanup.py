"""What a stopped node leaves behind, and the next node on the same bridge (`kyb killall`, `kyb uninstall`).

One flow, on a bridge, pod network and Service range of this module's own:

1. server A (its node does not drain on exit, as a user's does not) runs a pod serving "from-A";
   SIGTERM: the pod keeps running, as designed: a server restarted on A's data dir adopts it;
2. server B on a fresh data dir and the same bridge refuses to start: A's pod still holds the
   address B's fresh IPAM would hand out first; the message names it and `kyb killall`;
3. `kyb killall --data-dir A`: the pod's processes, network namespace, veth, address and mounts
   are gone, and the output names each;
4. B starts now, and its own pod answers at the address it got;
5. B dies hard (SIGKILL of every process naming its data dir: kyb processes, containerd, the
   shims): its pod's processes (reparented to init), network namespace and veth, and the nftables
   tables of kube-proxy and the node network are left; `kyb uninstall` removes them, says so, and deletes the data dir.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.apiserver.join.tokens import server_token
from kybernetes.kubelet import cgroups
from kybernetes.kubelet.cm import CgroupManager
from kybernetes.kubelet.containerd import kill_pids, mounts_under, process_alive
from kybernetes.testing import ServerProcess, free_network_octet

from .conftest import require_kubectl, wait_until
from .test_node import _node_missing, bridge_exists, http_get, pids_mentioning, veths_on

pytestmark = pytest.mark.integration

KYB = [sys.executable, "-m", "kybernetes.cli"]


def kyb_pids(data_dir: Path) -> list[int]:
    """The kyb processes (server, agent, kubelet, proxy, ...) whose command lines name `data_dir`."""
    out = []
    for pid in pids_mentioning(data_dir):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kybernetes.cli" in argv:
            out.append(pid)
    return out


def netns_with(ip: str) -> list[Path]:
    """The network namespaces (of /var/run/netns) holding address `ip`."""
    return [p for p in Path("/var/run/netns").iterdir()
            if f" {ip}/" in subprocess.run(["ip", "-n", p.name, "-4", "-o", "addr"], capture_output=True,
                                          text=True).stdout]


def processes_in(netns: Path) -> list[int]:
    inode = netns.stat().st_ino
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.stat(entry / "ns" / "net").st_ino == inode:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def nft_tables() -> str:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout


class Net:
    def __init__(self, octet: int) -> None:
        self.octet = octet
        self.bridge = f"kyk{octet}a"
        self.table = f"kyb-proxy-{self.bridge}"
        self.netpol_table = f"kyb-netpol-{self.bridge}"  # kube-proxy's NetworkPolicy table (family inet)
        self.net_table = f"kyb-net-{self.bridge}"  # the node network's masquerading (kyb network)

    def server(self, data_dir: Path, name: str) -> ServerProcess:
        return ServerProcess.start(
            data_dir, "--cluster-cidr", f"10.{self.octet}.0.0/17",
            "--service-cluster-ip-range", f"10.{self.octet}.128.0/17", "--node-name", name,
            "--kubelet-arg", f"cni-bridge={self.bridge}", "--kubelet-arg", f"default-pod-cidr=10.{self.octet}.0.0/24",
            agent=True, drain=False, timeout=90)


def web_pod(srv: ServerProcess, text: str) -> dict[str, object]:
    """Runs pod `web` (httpd answering `text` on 8080) on the server's node; returns it once Ready."""
    node = wait_until(lambda: srv.kubectl("get", "nodes", "-o", "name", check=False).stdout.strip(), 90, "a node")
    srv.kubectl("wait", "--for=condition=Ready", node, "--timeout=90s", timeout=100)
    wait_until(lambda: srv.kubectl("get", "sa", "default", check=False).returncode == 0, 30, "the default SA")
    srv.kubectl("run", "web", "--image=busybox:1.36", "--image-pull-policy=Never", "--",
                "sh", "-c", f"mkdir /www && echo {text} > /www/index.html && exec httpd -f -p 8080 -h /www")
    srv.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=90s", timeout=100)
    pod: dict[str, object] = json.loads(srv.kubectl("get", "pod", "web", "-o", "json").stdout)
    return pod


@pytest.fixture
def net() -> Iterator[Net]:
    reason = _node_missing()
    if reason:
        pytest.skip(reason)
    require_kubectl()
    ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    n = Net(free_network_octet(230, 250, "kyk{}a"))
    try:
        yield n
    finally:
        Path("/proc/sys/net/ipv4/ip_forward").write_text(ip_forward)
        if bridge_exists(n.bridge):
            subprocess.run(["ip", "link", "delete", n.bridge], capture_output=True)


def pod_cgroup_dirs(pod: object) -> list[Path]:
    """The pod's cgroup (kybernetes.kubelet.cm) in every hierarchy, wherever its QoS class put it."""
    uid = pod["metadata"]["uid"]  # type: ignore[index]
    return [d for name in CgroupManager().pod_cgroup_candidates(uid) for d in cgroups.cgroup_dirs(name)]


def test_killall_then_a_new_node_on_the_same_bridge_then_uninstall(net: Net) -> None:
    # Short data dirs: containerd's socket path must stay under the 108-byte unix socket limit.
    a = Path(tempfile.mkdtemp(prefix="kyka-", dir="/tmp")).resolve()
    b = Path(tempfile.mkdtemp(prefix="kykb-", dir="/tmp")).resolve()
    servers: list[ServerProcess] = []
    try:
        srv_a = net.server(a, f"kyk-a-{net.octet}")
        servers.append(srv_a)
        pod_a = web_pod(srv_a, "from-A")
        ip_a = str(pod_a["status"]["podIP"])  # type: ignore[index]
        assert http_get(f"http://{ip_a}:8080/") == (200, "from-A\n")
        assert srv_a.stop() == 0
        # 1. Left running on purpose: the pod, its veth on the bridge, its mounts.
        assert http_get(f"http://{ip_a}:8080/") == (200, "from-A\n")
        (veth_a,) = veths_on(net.bridge)
        shims = [p for p in pids_mentioning(a) if b"containerd-shim" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert shims and mounts_under(a)
        netns_a = netns_with(ip_a)
        assert len(netns_a) == 1, netns_a
        # A restart on A's own data dir is no other node: it starts, and adopts the pod as it runs.
        srv_a = net.server(a, f"kyk-a-{net.octet}")
        servers.append(srv_a)
        srv_a.kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=90s", timeout=100)
        again = json.loads(srv_a.kubectl("get", "pod", "web", "-o", "json").stdout)
        assert again["status"]["podIP"] == ip_a and again["status"]["containerStatuses"][0]["restartCount"] == 0
        assert veths_on(net.bridge) == [veth_a] and all(process_alive(p) for p in shims)
        assert srv_a.stop() == 0

        # 2. A new node on the same bridge would hand out A's address again: it refuses, and says why.
        with pytest.raises(RuntimeError) as refused:
            net.server(b, f"kyk-b-{net.octet}")
        message = str(refused.value)
        assert f"bridge {net.bridge} holds pods that this node" in message, message
        assert ip_a in message and veth_a in message and f"kyb killall --data-dir {a}" in message, message
        # So does an agent (before it talks to any server).
        agent_dir = b / "lone-agent"
        res = subprocess.run([*KYB, "agent", "--server", "https://127.0.0.1:1", "--token", server_token(a),
                              "--data-dir", str(agent_dir), "--cni-bridge", net.bridge, "--node-name", "lone"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 1 and f"bridge {net.bridge} holds pods" in res.stderr, res.stderr
        shutil.rmtree(agent_dir, ignore_errors=True)

        # 3. killall on A removes exactly A's leftovers and names them.
        res = subprocess.run([*KYB, "killall", "--data-dir", str(a)], capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, (res.stdout, res.stderr)
        out = res.stdout
        assert "removed pod default/web" in out and f"veth {veth_a}" in out and f"address {ip_a}" in out, out
        assert f"netns {netns_a[0].name}" in out and "unmounted " in out, out
        assert all(str(pid) in out for pid in shims), (shims, out)
        assert not pids_mentioning(a), "processes of A left"
        assert not mounts_under(a) and not netns_a[0].exists() and not veths_on(net.bridge)
        assert not any(process_alive(p) for p in shims)
        assert not pod_cgroup_dirs(pod_a), "A's pod cgroup left"

        # 4. Now B starts on the same bridge, and its pod answers at its own address.
        srv_b = net.server(b, f"kyk-b-{net.octet}")
        servers.append(srv_b)
        pod_b = web_pod(srv_b, "from-B")
        ip_b = str(pod_b["status"]["podIP"])  # type: ignore[index]
        assert wait_until(lambda: http_get(f"http://{ip_b}:8080/") == (200, "from-B\n"), 20, "B's pod")
        assert f"table ip {net.table}" in nft_tables()

        # 5. B dies hard: the pod's processes and kube-proxy's table outlive it; uninstall removes all, then B.
        (netns_b,) = netns_with(ip_b)
        pod_pids = processes_in(netns_b)
        assert pod_pids
        kill_pids(kyb_pids(b))
        srv_b.proc.wait(30)
        wait_until(lambda: not kyb_pids(b), 30, "B's kyb processes to die")
        kill_pids(pids_mentioning(b))  # containerd and the shims
        wait_until(lambda: not pids_mentioning(b), 30, "B's containerd and shims to die")
        assert f"table ip {net.table}" in nft_tables() and all(process_alive(p) for p in pod_pids)
        assert f"table inet {net.netpol_table}" in nft_tables()
        assert f"table ip {net.net_table}" in nft_tables()
        res = subprocess.run([*KYB, "uninstall", "--data-dir", str(b)], capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, (res.stdout, res.stderr)
        out = res.stdout
        assert all(str(p) in out for p in pod_pids), (pod_pids, out)
        for said in (f"stopped containerd of {b}/agent", "removed pod default/web", f"address {ip_b}",
                     f"netns {netns_b.name}",
                     f"deleted nftables table ip {net.table}", f"deleted nftables table inet {net.netpol_table}",
                     f"deleted nftables table ip {net.net_table}", f"deleted bridge {net.bridge}", f"deleted {b}"):
            assert said in out, (said, out)
        assert not b.exists() and not pids_mentioning(b) and f"table ip {net.table}" not in nft_tables()
        assert f"table inet {net.netpol_table}" not in nft_tables()
        assert f"table ip {net.net_table}" not in nft_tables()
        assert not any(process_alive(p) for p in pod_pids) and not netns_b.exists()
        assert not pod_cgroup_dirs(pod_b), "B's pod cgroup left"
        assert not bridge_exists(net.bridge)
    finally:
        for srv in servers:
            if srv.proc.poll() is None:
                srv.proc.send_signal(signal.SIGTERM)
                srv.stop()
        for d in (a, b):
            if d.exists():
                subprocess.run([*KYB, "killall", "--data-dir", str(d)], capture_output=True, timeout=180)
                kill_pids(pids_mentioning(d))
                shutil.rmtree(d, ignore_errors=True)
        for family, table in (("ip", net.table), ("inet", net.netpol_table), ("ip", net.net_table)):
            if f"table {family} {table}" in nft_tables():
                subprocess.run(["nft", "delete", "table", family, table], capture_output=True)


def test_killall_stops_a_running_server_and_its_pods(net: Net) -> None:
    data = Path(tempfile.mkdtemp(prefix="kykc-", dir="/tmp")).resolve()
    try:
        srv = net.server(data, f"kyk-c-{net.octet}")
        pod_c = web_pod(srv, "from-C")
        ip = str(pod_c["status"]["podIP"])  # type: ignore[index]
        (netns,) = netns_with(ip)
        res = subprocess.run([*KYB, "killall", "--data-dir", str(data)], capture_output=True, text=True, timeout=180)
        assert res.returncode == 0, (res.stdout, res.stderr)
        assert f"stopped process {srv.proc.pid}: " in res.stdout, res.stdout
        assert "removed pod default/web" in res.stdout and f"netns {netns.name}" in res.stdout, res.stdout
        assert srv.proc.wait(10) == 0  # the server was stopped, not killed
        assert not pids_mentioning(data) and not netns.exists() and not mounts_under(data)
        assert not pod_cgroup_dirs(pod_c), "the pod cgroup left"
        assert f"table ip {net.table}" not in nft_tables() and not bridge_exists(net.bridge)
        assert f"table inet {net.netpol_table}" not in nft_tables()
        assert f"table ip {net.net_table}" not in nft_tables()
    finally:
        subprocess.run([*KYB, "uninstall", "--data-dir", str(data)], capture_output=True, timeout=180)
        kill_pids(pids_mentioning(data))
        shutil.rmtree(data, ignore_errors=True)


def test_uninstall_refuses_what_is_not_a_data_dir(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep me")
    res = subprocess.run([*KYB, "uninstall", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 1 and "is not a kybernetes data directory" in res.stderr, res.stderr
    assert (tmp_path / "precious").read_text() == "keep me"
    assert os.path.isdir(tmp_path)
