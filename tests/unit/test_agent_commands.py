"""The agent runs the kubelet and kube-proxy from their command lines, parsed by their own commands.

The import contract (pyproject.toml, ``lint-imports``) keeps ``kybernetes.agent`` from importing
the API server; what it cannot see is whether the command lines the agent builds are ones ``kyb
kubelet`` and ``kyb proxy`` accept (as child processes, and parsed by the same commands in the
agent's process), nor what ``kyb agent`` loads when it starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest

from kybernetes.agent import (
    AgentConfig,
    Credentials,
    explicit_settings,
    kubelet_args,
    network_args,
    proxy_args,
    with_server_settings,
)
from kybernetes.agent import command as agent_command
from kybernetes.join import NodeSettings
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


def _server_settings() -> NodeSettings:
    return NodeSettings(cloud_provider="external", cluster_dns="10.96.0.10", cluster_domain="corp.local",
                        service_cidr="10.96.0.0/12", cluster_cidr="10.244.0.0/16")


def test_server_settings_are_the_defaults_of_kubelet_and_kube_proxy(tmp_path: Path) -> None:
    """An agent given no flags of its own runs its kubelet and kube-proxy as the server says."""
    creds = _creds(tmp_path)
    cfg = with_server_settings(_config(tmp_path), _server_settings())
    kubelet = _parse(kubelet_command, kubelet_args(cfg, creds), "kubelet")
    assert kubelet["cloud_provider"] == "external"
    assert kubelet["cluster_dns"] == ("10.96.0.10",) and kubelet["cluster_domain"] == "corp.local"
    proxy = _parse(proxy_command, proxy_args(cfg, creds), "proxy")
    assert proxy["cluster_cidr"] == "10.244.0.0/16" and proxy["service_cluster_ip_range"] == "10.96.0.0/12"
    network = _parse(network_command, network_args(cfg, creds), "network")
    assert network["cluster_cidr"] == "10.244.0.0/16" and network["service_cluster_ip_range"] == "10.96.0.0/12"


def test_agent_flags_and_kubelet_args_win_over_the_server(tmp_path: Path) -> None:
    creds = _creds(tmp_path)
    argv = ["--server", "https://127.0.0.1:6443", "--cluster-domain", "mine.local",
            "--service-cluster-ip-range", "10.50.0.0/16"]
    explicit = explicit_settings(agent_command.make_context("agent", argv))
    assert explicit == {"cluster_domain", "service_cidr"}
    mine = AgentConfig(server="https://127.0.0.1:6443", token="unused", data_dir=tmp_path / "data", node_name="n1",
                       cluster_domain="mine.local", service_cidr="10.50.0.0/16", explicit=explicit,
                       kubelet_args=["--cloud-provider="])
    cfg = with_server_settings(mine, _server_settings())
    kubelet = _parse(kubelet_command, kubelet_args(cfg, creds), "kubelet")
    assert kubelet["cloud_provider"] == ""  # --kubelet-arg cloud-provider= says: no cloud provider
    assert kubelet["cluster_domain"] == "mine.local"
    # The DNS address belongs to the agent's own service range, not to the server's.
    assert kubelet["cluster_dns"] == ("10.50.0.10",)
    assert _parse(proxy_command, proxy_args(cfg, creds), "proxy")["cluster_cidr"] == "10.244.0.0/16"
    assert with_server_settings(mine, None) == mine  # an older server says nothing


def test_server_settings_it_leaves_empty_keep_the_agents_defaults(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    assert with_server_settings(cfg, NodeSettings(service_cidr="10.43.0.0/16")) == cfg
    partial = with_server_settings(cfg, NodeSettings(cloud_provider="external"))
    assert partial.cloud_provider == "external" and partial.cluster_cidr == "10.42.0.0/16"


def test_node_settings_wire_format() -> None:
    settings = _server_settings()
    doc = settings.to_json()
    assert doc == {"cloudProvider": "external", "clusterDNS": "10.96.0.10", "clusterDomain": "corp.local",
                   "serviceCIDR": "10.96.0.0/12", "clusterCIDR": "10.244.0.0/16"}
    assert NodeSettings.from_json({**doc, "somethingNewer": True}) == settings
    assert NodeSettings.from_json({}) == NodeSettings()
    for bad in ([], {"clusterDNS": 10}, {"cloudProvider": "aws"}):
        with pytest.raises(ValueError):
            NodeSettings.from_json(bad)


def test_in_process_components_get_the_configuration_of_their_command_lines(tmp_path: Path) -> None:
    """The default layout parses the very command lines the children would get, with their commands."""
    from kybernetes.agent.children import flags_of
    from kybernetes.kubelet.cmd import parse as parse_kubelet
    from kybernetes.proxy.cmd import parse as parse_proxy
    from kybernetes.proxy.netcmd import parse as parse_network

    creds, cfg = _creds(tmp_path), _config(tmp_path)
    kubelet = parse_kubelet(flags_of(kubelet_args(cfg, creds)))
    assert (kubelet.node_name, kubelet.node_ip, kubelet.max_pods) == ("n1", "10.0.0.5", 7)
    assert kubelet.container_runtime_endpoint == "unix:///run/x.sock" and kubelet.cluster_dns == ["10.43.0.10"]
    proxy = parse_proxy(flags_of(proxy_args(cfg, creds)))
    assert proxy.proxy.kubeconfig == creds.proxy_kubeconfig and proxy.proxy.healthz_bind_address == "127.0.0.1:10256"
    assert proxy.netpol is not None and proxy.netpol.node_name == "n1"
    network = parse_network(flags_of(network_args(cfg, creds)))
    assert network.node_name == "n1" and network.kubeconfig == creds.proxy_kubeconfig
    with pytest.raises(click.BadParameter):
        parse_kubelet([*flags_of(kubelet_args(cfg, creds)), "--max-pods", "many"])
    with pytest.raises(ValueError, match="not a kyb command line"):
        flags_of(["kubelet", "--node-name", "n1"])
