"""The pieces of `kyb killall` that read command lines, CNI configs and task bundles."""

from __future__ import annotations

import json
from pathlib import Path

from kybernetes.datadir import is_data_dir, network_table, node_dir, proxy_table
from kybernetes.kubelet import leftovers as lo
from kybernetes.kubelet.cni import write_cni_config
from kybernetes.kubelet.killall import _is_kyb, _names


def test_command_lines_name_a_data_dir_by_whole_path_components() -> None:
    d = Path("/tmp/kyb-a")
    assert _names([b"python", b"-m", b"kybernetes.cli", b"agent", b"--data-dir", b"/tmp/kyb-a/agent"], d)
    assert _names([b"kyb", b"server", b"--data-dir=/tmp/kyb-a"], d)
    assert _names([b"containerd", b"--config", b"/tmp/kyb-a/agent/containerd/config.toml"], d)
    assert not _names([b"kyb", b"server", b"--data-dir", b"/tmp/kyb-ab"], d)
    assert not _names([b"kyb", b"server", b"--data-dir", b"/tmp"], d)
    assert _is_kyb([b"/usr/bin/python3", b"/usr/local/bin/kyb", b"agent"])
    assert _is_kyb([b"python", b"-m", b"kybernetes.cli", b"proxy"])
    assert not _is_kyb([b"tail", b"-f", b"/tmp/kyb-a/logs/agent.log"])


def test_shim_command_line() -> None:
    argv = [b"/usr/bin/containerd-shim-runc-v2", b"-namespace", b"k8s.io", b"-id", b"abc", b"-address",
            b"/d/agent/containerd/containerd.sock"]
    assert lo.shim_of(argv) == ("/d/agent/containerd/containerd.sock", "abc")
    assert lo.shim_of([b"/usr/bin/containerd", b"--config", b"x"]) is None


def test_the_node_network_is_read_from_its_cni_config(tmp_path: Path) -> None:
    node = tmp_path / "agent"
    assert lo.node_network(node) is None
    write_cni_config(node / "cni" / "net.d", "10.9.0.0/24", bridge="kyb9")
    assert lo.node_network(node) == lo.NodeNetwork("kyb9", "kybernetes", node / "cni" / "ipam")
    assert proxy_table("kyb9") == "kyb-proxy-kyb9"
    assert network_table("kyb9") == "kyb-net-kyb9"


def test_task_bundles_name_their_sandbox(tmp_path: Path) -> None:
    root = tmp_path / "containerd" / "state" / "io.containerd.runtime.v2.task" / "k8s.io"
    (root / "sandbox1").mkdir(parents=True)
    (root / "sandbox1" / "config.json").write_text(json.dumps({"annotations": {}}))
    (root / "ctr1").mkdir()
    (root / "ctr1" / "config.json").write_text(
        json.dumps({"annotations": {"io.kubernetes.cri.sandbox-id": "sandbox1"}}))
    assert lo.node_tasks(tmp_path) == {"sandbox1": "sandbox1", "ctr1": "sandbox1"}


def test_data_dir_layouts(tmp_path: Path) -> None:
    server, agent, other = tmp_path / "s", tmp_path / "a", tmp_path / "o"
    (server / "tls").mkdir(parents=True)
    (server / "tls" / "ca.crt").write_text("")
    (agent / "agent").mkdir(parents=True)
    (agent / "agent" / "ca.crt").write_text("")
    other.mkdir()
    assert (node_dir(server), node_dir(agent), node_dir(other)) == (server / "agent", agent, other)
    assert is_data_dir(server) and is_data_dir(agent) and not is_data_dir(other)
