"""The default ServiceAccount and the kube-root-ca.crt ConfigMap, against a real API server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.client.events import EventRecorder
from kybernetes.client.informer import SharedInformerFactory
from kybernetes.client.rest import Client
from kybernetes.controllers.base import ControllerContext
from kybernetes.controllers.serviceaccounts import CONTROLLERS
from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    s = ServerProcess.start(tmp_path_factory.mktemp("kyb-sa"))
    try:
        yield s
    finally:
        s.stop()


@asynccontextmanager
async def running(srv: ServerProcess, **options: Any) -> AsyncIterator[Client]:
    client = Client.from_kubeconfig(str(srv.kubeconfig))
    factory = SharedInformerFactory(client)
    ctx = ControllerContext(client=client, informers=factory, recorder=lambda n: EventRecorder(client, n),
                            options=options)
    controllers = [cls(ctx) for cls in CONTROLLERS]
    await factory.start()
    assert await factory.wait_for_sync(20)
    tasks = [asyncio.create_task(c.run()) for c in controllers]
    try:
        yield client
    finally:
        for c in controllers:
            await c.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await factory.stop()
        await client.close()


async def wait_for(pred: Callable[[], Awaitable[Any]], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await pred()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def get_or_none(client: Client, plural: str, name: str, ns: str) -> Obj | None:
    try:
        return await client.get("v1", plural, name, ns)
    except errors.NotFound:
        return None


async def test_default_service_account_and_root_ca(srv: ServerProcess) -> None:
    ca = (srv.data_dir / "tls" / "ca.crt").read_text()
    async with running(srv, **{"root-ca-file": str(srv.data_dir / "tls" / "ca.crt")}) as client:
        # Namespaces that existed before the controllers started are covered too.
        await wait_for(lambda: get_or_none(client, "serviceaccounts", "default", "default"), what="default/default")
        await wait_for(lambda: get_or_none(client, "configmaps", "kube-root-ca.crt", "kube-system"),
                       what="kube-system root CA")

        await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "team-a"}})
        sa = await wait_for(lambda: get_or_none(client, "serviceaccounts", "default", "team-a"), what="default SA")
        cm = await wait_for(lambda: get_or_none(client, "configmaps", "kube-root-ca.crt", "team-a"), what="root CA")
        assert cm["data"] == {"ca.crt": ca}
        assert "kubernetes.io/description" in cm["metadata"]["annotations"]

        # Deleted: both come back (as new objects).
        await client.delete("v1", "serviceaccounts", "default", "team-a")
        await client.delete("v1", "configmaps", "kube-root-ca.crt", "team-a")

        async def sa_back() -> Obj | None:
            new = await get_or_none(client, "serviceaccounts", "default", "team-a")
            return new if new is not None and new["metadata"]["uid"] != sa["metadata"]["uid"] else None

        async def cm_back() -> Obj | None:
            new = await get_or_none(client, "configmaps", "kube-root-ca.crt", "team-a")
            return new if new is not None and new["metadata"]["uid"] != cm["metadata"]["uid"] else None

        await wait_for(sa_back, what="default SA re-created")
        cm = await wait_for(cm_back, what="root CA re-created")
        assert cm["data"] == {"ca.crt": ca}

        # Changed: put right.
        await client.patch("v1", "configmaps", "kube-root-ca.crt", {"data": {"ca.crt": "bogus", "extra": "x"}},
                           "team-a")

        async def cm_fixed() -> bool:
            now = await get_or_none(client, "configmaps", "kube-root-ca.crt", "team-a")
            return now is not None and now["data"] == {"ca.crt": ca}

        await wait_for(cm_fixed, what="root CA restored")


async def test_terminating_namespace_is_left_alone(srv: ServerProcess) -> None:
    async with running(srv, **{"root-ca-file": str(srv.data_dir / "tls" / "ca.crt")}) as client:
        await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "going"}})
        await wait_for(lambda: get_or_none(client, "serviceaccounts", "default", "going"), what="default SA")
        await client.delete("v1", "namespaces", "going")  # no namespace controller: stays Terminating
        await client.delete("v1", "serviceaccounts", "default", "going")
        await asyncio.sleep(0.5)
        assert await get_or_none(client, "serviceaccounts", "default", "going") is None
