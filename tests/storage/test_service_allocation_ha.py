"""Two API servers on one etcd allocate Service ClusterIPs and NodePorts without handing one out
twice: many Services created at once through both, from a service range so small that two servers
picking on their own views would collide, get distinct values; deleting them frees every value."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import ipaddress
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.apiserver.registry.core import serviceallocations as held
from kybernetes.testing import EtcdCluster, ServerProcess

from .test_etcd_server import _require_tools

pytest.importorskip("kubernetes")
from kubernetes import client, config

SERVICE_RANGE = "10.96.0.0/26"  # 61 addresses to pick from
SERVICES = 48


@pytest.fixture
def two_servers(tmp_path: Path) -> Iterator[tuple[EtcdCluster, ServerProcess, ServerProcess]]:
    _require_tools()
    etcd = EtcdCluster(tmp_path / "etcd")
    etcd.start()
    servers: list[ServerProcess] = []
    try:
        asyncio.run(etcd.wait_healthy())
        store = ("--datastore-endpoint", etcd.endpoints, "--datastore-cafile", etcd.tls.cafile,
                 "--datastore-certfile", etcd.tls.certfile, "--datastore-keyfile", etcd.tls.keyfile,
                 "--service-cluster-ip-range", SERVICE_RANGE)
        for i in range(2):
            data = tmp_path / f"server-{i}"
            if servers:  # one cluster's PKI, as a joining server has
                shutil.copytree(servers[0].data_dir / "tls", data / "tls")
            servers.append(ServerProcess.start(data, *store, service_accounts=False, timeout=90.0))
        yield etcd, servers[0], servers[1]
    finally:
        for srv in servers:
            srv.stop(timeout=30.0)
        etcd.stop()


def _keys(etcd: EtcdCluster, prefix: str) -> list[str]:
    async def go() -> list[str]:
        from kybernetes.storage.etcd import EtcdStore

        store = await EtcdStore.open(etcd.connection(), compact_interval=0)
        try:
            return [kv.key for kv in (await store.list(prefix)).items]
        finally:
            await store.close()

    return asyncio.run(go())


def test_two_api_servers_never_hand_out_one_value_twice(
        two_servers: tuple[EtcdCluster, ServerProcess, ServerProcess]) -> None:
    etcd, a, b = two_servers
    apis = [config.new_client_from_config(config_file=str(s.kubeconfig)) for s in (a, b)]
    cores = [client.CoreV1Api(api) for api in apis]
    try:
        def create(i: int) -> Any:
            body = {"metadata": {"name": f"s{i}"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
            return cores[i % 2].create_namespaced_service("default", body, _request_timeout=60)

        with cf.ThreadPoolExecutor(16) as pool:
            made = list(pool.map(create, range(SERVICES)))
        ips = [s.spec.cluster_ip for s in made]
        ports = [s.spec.ports[0].node_port for s in made]
        assert all(ipaddress.ip_address(ip) in ipaddress.ip_network(SERVICE_RANGE) for ip in ips)
        assert len(set(ips)) == SERVICES, sorted(ips)
        assert len(set(ports)) == SERVICES, sorted(ports)
        listed = cores[1].list_namespaced_service("default").items
        assert len({s.spec.cluster_ip for s in listed}) == len(listed) == SERVICES + 1  # and `kubernetes`
        assert len(_keys(etcd, held.IP_PREFIX)) == SERVICES + 1
        assert len(_keys(etcd, held.PORT_PREFIX)) == SERVICES

        # Deleting frees the values at once: the range, nearly full, serves new Services again.
        with cf.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: cores[i % 2].delete_namespaced_service(f"s{i}", "default"), range(SERVICES)))
        assert _keys(etcd, held.IP_PREFIX) == [held.key_of(str(ipaddress.ip_network(SERVICE_RANGE)[1]))]
        assert _keys(etcd, held.PORT_PREFIX) == []
        with cf.ThreadPoolExecutor(16) as pool:
            again = list(pool.map(create, range(SERVICES)))
        assert len({s.spec.cluster_ip for s in again}) == SERVICES
    finally:
        for api in apis:
            api.close()
