"""EtcdStore: the shared Store suite against a real etcd (TLS, loopback), plus etcd's own cases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from kybernetes.storage.etcd import EtcdStore
from kybernetes.storage.etcdpb import rpc_pb2 as rpc

from .etcd_cluster import EtcdCluster
from .store_suite import StoreSuite


@pytest.fixture(scope="session")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"))
    cluster.start()
    try:
        asyncio.run(cluster.wait_healthy())
        yield cluster
    finally:
        cluster.stop()


async def _wipe(store: EtcdStore) -> None:
    """Delete every key the suite uses (it assumes an empty /registry/ and /other/)."""

    async def go(kv, timeout):  # type: ignore[no-untyped-def]
        for p in (b"/registry/", b"/other/", b"/crash/"):
            await kv.DeleteRange(rpc.DeleteRangeRequest(key=p, range_end=p[:-1] + b"0"), timeout=timeout)

    await store.conn.call(go)


@pytest.fixture
async def store(etcd: EtcdCluster) -> AsyncIterator[EtcdStore]:
    s = await EtcdStore.open(etcd.connection(), compact_interval=0)
    await _wipe(s)
    yield s
    await s.close()


class TestEtcdStore(StoreSuite):
    pass
