"""Pods' /etc/resolv.conf from a real container, as the kubelet's flags and the pod's DNS policy say.

A kubelet (`kyb kubelet`, the tests' containerd) started with `--cluster-dns 10.43.0.10
--cluster-domain cluster.local --resolv-conf FILE` (a host file of the test's own, so the
expectations do not depend on this machine's resolver); each pod prints its /etc/resolv.conf.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kybernetes.client import Client
from kybernetes.kubelet.dns import ResolvConf, parse_resolv_conf
from tests.kubelet.test_kubelet_e2e import (
    KubeletProcess,
    delete_pod,
    events_until,
    pod,
    running_kubelet,
    unique,
    wait_node_ready,
    wait_pod,
)
from tests.node.conftest import NodeRuntime

pytestmark = pytest.mark.integration

HOST_RESOLV = "nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example lab.example\noptions timeout:2\n"
CLUSTER_SEARCH = ("default.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example", "lab.example")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, node_runtime: NodeRuntime) -> Iterator[KubeletProcess]:
    data = tmp_path_factory.mktemp("kubelet-dns")
    resolv = data / "host-resolv.conf"
    resolv.write_text(HOST_RESOLV)
    flags = ("--cluster-dns", "10.43.0.10", "--cluster-domain", "cluster.local", "--resolv-conf", str(resolv))
    with running_kubelet(tmp_path_factory, node_runtime, flags, data) as kubelet:
        yield kubelet


@pytest.fixture
async def client(cluster: KubeletProcess) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(cluster.srv.kubeconfig) as c:
        await wait_node_ready(c, cluster)
        yield c


async def resolv_conf_of(client: Client, cluster: KubeletProcess, **spec: Any) -> ResolvConf:
    """Runs a pod printing its /etc/resolv.conf; what the file says."""
    name = unique("dns")
    await client.create("v1", "pods", pod(name, ["cat", "/etc/resolv.conf"], restartPolicy="Never", **spec),
                        "default")
    try:
        await wait_pod(client, name, lambda p: p.get("status", {}).get("phase") == "Succeeded", cluster)
        logs = await asyncio.to_thread(cluster.srv.kubectl, "logs", name)
        return parse_resolv_conf(logs.stdout)
    finally:
        await delete_pod(client, name)


async def test_cluster_first(client: Client, cluster: KubeletProcess) -> None:
    assert await resolv_conf_of(client, cluster) == ResolvConf(("10.43.0.10",), CLUSTER_SEARCH, ("ndots:5",))


async def test_default_is_the_hosts_file(client: Client, cluster: KubeletProcess) -> None:
    assert await resolv_conf_of(client, cluster, dnsPolicy="Default") == parse_resolv_conf(HOST_RESOLV)


async def test_none_with_dns_config(client: Client, cluster: KubeletProcess) -> None:
    got = await resolv_conf_of(client, cluster, dnsPolicy="None", dnsConfig={
        "nameservers": ["192.0.2.99"], "searches": ["only.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    assert got == ResolvConf(("192.0.2.99",), ("only.example",), ("ndots:2", "edns0"))


async def test_cluster_first_merges_dns_config(client: Client, cluster: KubeletProcess) -> None:
    got = await resolv_conf_of(client, cluster, dnsConfig={
        "nameservers": ["192.0.2.99"], "searches": ["extra.example"], "options": [{"name": "ndots", "value": "1"}]})
    assert got == ResolvConf(("10.43.0.10", "192.0.2.99"), (*CLUSTER_SEARCH, "extra.example"), ("ndots:1",))


async def test_host_network(client: Client, cluster: KubeletProcess) -> None:
    # ClusterFirst falls back to Default on the host's network; ClusterFirstWithHostNet does not.
    assert await resolv_conf_of(client, cluster, hostNetwork=True) == parse_resolv_conf(HOST_RESOLV)
    got = await resolv_conf_of(client, cluster, hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    assert got == ResolvConf(("10.43.0.10",), CLUSTER_SEARCH, ("ndots:5",))


async def test_too_many_nameservers_are_cut_with_an_event(client: Client, cluster: KubeletProcess) -> None:
    # The API server allows 3 nameservers in dnsConfig; with the host file's 2 they are 4.
    name = unique("ns4")
    await client.create("v1", "pods", pod(name, ["sleep", "3600"], dnsPolicy="Default", dnsConfig={
        "nameservers": ["192.0.2.1", "192.0.2.2"]}), "default")
    try:
        events = await events_until(client, name, "DNSConfigForming")
        assert ("DNSConfigForming", "Nameserver limits were exceeded, some nameservers have been omitted, the "
                "applied nameserver line is: 192.0.2.53 192.0.2.54 192.0.2.1") in events
    finally:
        await delete_pod(client, name)

