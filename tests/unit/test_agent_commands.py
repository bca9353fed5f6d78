"""The agent runs the kubelet and kube-proxy through their command lines, not their code.

The import contract (pyproject.toml, ``lint-imports``) keeps ``kybernetes.agent`` from importing
the kubelet or the API server; what it cannot see is whether the command lines the agent builds
are ones ``kyb kubelet`` and ``kyb proxy`` accept, nor what ``kyb agent`` loads when it starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from kybernetes.agent import AgentConfig, Credentials, kubelet_args, network_args, proxy_args
from kybernetes.kubelet.cmd import command as kubelet_command
from kybernetes.proxy.cmd import command as proxy_command
from kybernetes.proxy.netcmd import command as network_command


def _creds(tmp_path: Path) -> Credentials:
    names = ("ca", "client_cert", "client_key", "serving_cert", "serving_key", "kubeconfig", "proxy_kubeconfig")
    files = {name: tmp_path / name for name in names}
    for path in files.values():
        path.write_text("")  # --kubeconfig must exist; the contents are not read while parsing flags
    return Credentials(**files)


def _config(tmp_path: Path) -> AgentConfig:
    # Every optional value set, so every optional flag is passed.
    return AgentConfig(server="https://127.0.0.1:6443", token="unused", data_dir=tmp_path / "data",
                       node_name="n1", node_ip="10.0.0.5", container_runtime_endpoint="unix:///run/x.sock",
                       verbose=2, kubelet_args=["--max-pods=7"])


def _parse(command: click.Command, argv: list[str], name: str) -> dict[str, object]:
    assert argv[1:4] == ["-m", "kybernetes.cli", name]
    return command.make_context(name, argv[4:]).params


def test_kyb_kubelet_accepts_every_flag_the_agent_passes(tmp_path: Path) -> None:
    creds = _creds(tmp_path)
    params = _parse(kubelet_command, kubelet_args(_config(tmp_path), creds), "kubelet")
    assert params["node_name"] == "n1"
    assert params["node_ip"] == params["address"] == "10.0.0.5"
    assert params["container_runtime_endpoint"] == "unix:///run/x.sock"
    assert params["tls_cert_file"] == creds.serving_cert
    assert params["client_ca_file"] == creds.ca
    assert params["max_pods"] == 7
    assert params["verbose"] == 2
    # Pods' cluster DNS: the 10th service address and the domain, unless a --kubelet-arg says otherwise.
    assert params["cluster_dns"] == ("10.43.0.10",) and params["cluster_domain"] == "cluster.local"
    own = AgentConfig(server="https://127.0.0.1:6443", token="unused", data_dir=tmp_path / "data", node_name="n1",
                      service_cidr="10.96.0.0/12", kubelet_args=["--cluster-dns=10.96.0.53"])
    params = _parse(kubelet_command, kubelet_args(own, creds), "kubelet")
    assert params["cluster_dns"] == ("10.96.0.53",)


def test_kyb_proxy_accepts_every_flag_the_agent_passes(tmp_path: Path) -> None:
    creds = _creds(tmp_path)
    params = _parse(proxy_command, proxy_args(_config(tmp_path), creds), "proxy")
    assert params["kubeconfig"] == creds.proxy_kubeconfig  # kube-proxy's own identity, not the node's
    assert params["cni_bridge"] == "kyb0"
    assert params["verbose"] == 2


def test_kyb_network_accepts_every_flag_the_agent_passes(tmp_path: Path) -> None:
    creds = _creds(tmp_path)
    cfg = _config(tmp_path)
    params = _parse(network_command, network_args(cfg, creds), "network")
    # kube-proxy's identity: system:node-proxier may watch every Node, a node only its own.
    assert params["kubeconfig"] == creds.proxy_kubeconfig
    assert params["node_name"] == "n1" and params["cni_bridge"] == "kyb0"
    assert params["cluster_cidr"] == "10.42.0.0/16" and params["service_cluster_ip_range"] == "10.43.0.0/16"
    assert params["ip_masq"] is True and params["verbose"] == 2
    cfg.ip_masq = False
    assert _parse(network_command, network_args(cfg, creds), "network")["ip_masq"] is False


def test_kyb_agent_starts_without_the_api_server() -> None:
    """`kyb agent` runs on every node: loading the API server (registry, OpenAPI) would cost it seconds."""
    code = ("import sys, click\n"
            "from kybernetes.cli import main\n"
            "main.get_command(click.Context(main), 'agent')\n"
            "print(sorted(m for m in sys.modules if m.startswith('kybernetes.')))\n")
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "kybernetes.agent" in loaded
    for component in ("apiserver", "storage", "kubelet", "client"):
        assert f"'kybernetes.{component}" not in loaded, loaded
