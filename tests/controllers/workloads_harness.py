"""Test harness of the workload controller tests: a real server, controllers running in-process.

There is no kubelet and no scheduler, so tests play both: they bind pods to fake Nodes
(``pods/binding``) and write pod status (Running, Ready) themselves. Every wait polls with a
deadline, so a failure is a clear timeout instead of a hang.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from kybernetes.client.events import EventRecorder

from kybernetes import errors
from kybernetes.client.informer import SharedInformerFactory
from kybernetes.client.rest import Client
from kybernetes.controllers.base import Controller, ControllerContext
from kybernetes.testing import ServerProcess

Obj = dict[str, Any]


@asynccontextmanager
async def running(srv: ServerProcess, *controller_types: type[Controller]) -> AsyncIterator[Client]:
    """Start the given controllers against ``srv``; yields a client for the test's own requests."""
    client = Client.from_kubeconfig(str(srv.kubeconfig))
    ctl_client = Client.from_kubeconfig(str(srv.kubeconfig), user_agent="kube-controller-manager")
    factory = SharedInformerFactory(ctl_client)
    ctx = ControllerContext(client=ctl_client, informers=factory,
                            recorder=lambda name: EventRecorder(ctl_client, name))
    controllers = [t(ctx) for t in controller_types]
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
        await ctl_client.close()
        await client.close()


async def make_namespace(client: Client, name: str) -> str:
    await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def wait_for(pred: Callable[[], Awaitable[Any]], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await pred()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


async def patch(client: Client, api_version: str, plural: str, name: str, body: Any, ns: str = "",
                **kw: Any) -> Obj:
    """A patch retried on Conflict: the controllers write the same objects concurrently (and the
    server, as of writing, returns a lost compare-and-swap as 409 even for unpinned patches)."""
    for attempt in range(20):
        try:
            return await client.patch(api_version, plural, name, body, ns, **kw)
        except errors.Conflict:
            if attempt == 19:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def list_pods(client: Client, ns: str, selector: str = "", *, include_terminating: bool = False) -> list[Obj]:
    items, _ = await client.list_all("v1", "pods", ns, label_selector=selector)
    if include_terminating:
        return items
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def mark_ready(client: Client, pod: Obj, ready: bool = True) -> None:
    """Play kubelet: phase Running and the Ready condition."""
    m = pod["metadata"]
    status = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now()}]}
    try:
        await patch(client, "v1", "pods", m["name"], {"status": status}, m["namespace"], subresource="status")
    except errors.NotFound:
        pass


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


async def make_node(client: Client, name: str, labels: dict[str, str] | None = None,
                    taints: list[dict[str, str]] | None = None) -> Obj:
    node: Obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
                 "spec": {"taints": taints} if taints else {}}
    try:
        return await client.create("v1", "nodes", node)
    except errors.AlreadyExists:
        return await client.get("v1", "nodes", name)


async def bind(client: Client, pod: Obj, node: str) -> None:
    m = pod["metadata"]
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": m["name"], "namespace": m["namespace"]},
               "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    await client.create("v1", "pods", binding, m["namespace"], subresource="binding", name=m["name"])


def container_template(labels: dict[str, str], image: str = "nginx:1") -> Obj:
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": image}]}}
