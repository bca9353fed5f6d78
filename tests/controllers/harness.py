"""The harness every controller test shares: a real API server, controllers running in-process.

The server is the module-scoped ``srv`` fixture of ``conftest.py``. :func:`run_controllers` starts
the given controllers against it as asyncio tasks sharing one informer factory, with the clock and
options a test chooses; the controllers run under their least-privilege identities (informers as
``system:kube-controller-manager``, each controller's writes as its own kube-system ServiceAccount,
through impersonation) and the test uses the admin's client. There is no kubelet and no scheduler, so the
tests play both: they bind pods to Node objects they create (``pods/binding``) and write pod status
themselves (:func:`mark_ready`, :func:`finish`), or let :class:`FakeKubelet` finish every pod that
appears. Every wait polls with a deadline, so a failure is a clear timeout instead of a hang.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from kybernetes import errors
from kybernetes.api.timeutil import format_rfc3339 as rfc3339
from kybernetes.client.events import EventRecorder
from kybernetes.client.informer import SharedInformerFactory, key_of
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import Clock, RealClock
from kybernetes.controllers.base import Controller, ControllerContext
from kybernetes.testing import ServerProcess

Obj = dict[str, Any]
CONTROLLER_MANAGER = "system:kube-controller-manager"
SERVICE_ACCOUNT_GROUPS = ("system:serviceaccounts", "system:serviceaccounts:kube-system")
_ns_counter = itertools.count()


# --- running controllers -------------------------------------------------------------------------


@dataclass
class Env:
    client: Client
    ctx: ControllerContext
    controllers: list[Controller]
    clock: Clock


@asynccontextmanager
async def run_controllers(srv: ServerProcess, *types: type[Controller], clock: Clock | None = None,
                          options: dict[str, Any] | None = None) -> AsyncIterator[Env]:
    """Start ``types`` against ``srv``; yields a separate client for the test's own requests."""
    client = Client.from_kubeconfig(str(srv.kubeconfig))
    admin = Client.from_kubeconfig(str(srv.kubeconfig), user_agent="kube-controller-manager")
    # Least privilege, as `kyb controller-manager --use-service-account-credentials` runs them: the
    # informers and events as system:kube-controller-manager, each controller's writes as its own
    # kube-system ServiceAccount (the admin impersonates them: RBAC decides as for the real ones).
    ctl_client = admin.impersonating(CONTROLLER_MANAGER)
    clients = {t.service_account: admin.impersonating(f"system:serviceaccount:kube-system:{t.service_account}",
                                                      SERVICE_ACCOUNT_GROUPS)
               for t in types if t.service_account}
    factory = SharedInformerFactory(ctl_client)
    clk: Clock = clock or RealClock()
    recorders: list[EventRecorder] = []

    def recorder(name: str) -> EventRecorder:
        recorders.append(EventRecorder(ctl_client, name))
        return recorders[-1]

    ctx = ControllerContext(client=ctl_client, informers=factory, recorder=recorder, clock=clk,
                            options=dict(options or {}), clients=clients)
    ctls = [t(ctx) for t in types]
    await factory.start()
    assert await factory.wait_for_sync(20)
    tasks = [asyncio.create_task(c.run()) for c in ctls]
    try:
        yield Env(client, ctx, ctls, clk)
    finally:
        for c in ctls:
            await c.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for r in recorders:
            await r.close()
        await factory.stop()
        await admin.close()
        await client.close()


@asynccontextmanager
async def running(srv: ServerProcess, *types: type[Controller], clock: Clock | None = None,
                  options: dict[str, Any] | None = None) -> AsyncIterator[Client]:
    """:func:`run_controllers` for tests that need only the client."""
    async with run_controllers(srv, *types, clock=clock, options=options) as env:
        yield env.client


# --- waiting and writing -------------------------------------------------------------------------


async def wait_for(pred: Callable[[], Awaitable[Any]], timeout: float = 20.0, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something truthy (returned); AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await pred()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def seen(env: Env, api_version: str, plural: str, obj: Obj) -> Callable[[], bool]:
    """Whether the controllers' informer cache holds ``obj`` at its resourceVersion or later (its
    handlers have then run: they are called right after the store is updated, synchronously)."""
    key, rv = key_of(obj), int(obj["metadata"]["resourceVersion"])

    def check() -> bool:
        return any((got := inf.store.get(key)) is not None and int(got["metadata"]["resourceVersion"]) >= rv
                   for inf in env.ctx.informers.informers if (inf.api_version, inf.plural) == (api_version, plural))
    return check


def seen_deleted(env: Env, api_version: str, plural: str, key: str) -> Callable[[], bool]:
    """Whether every informer of the controllers for that resource has dropped ``key``."""
    def check() -> bool:
        return all(key not in inf.store for inf in env.ctx.informers.informers
                   if (inf.api_version, inf.plural) == (api_version, plural))
    return check


async def settled(env: Env, *seen_first: Callable[[], bool], within: float = 2.0, timeout: float = 20.0,
                  what: str = "the controllers to settle") -> None:
    """Wait until the controllers have processed what the test wrote: each ``seen_first`` check
    holds (the events reached the handlers, which queued their keys), and then no controller has
    a key queued, processing, or delayed to come due within ``within`` seconds (retries; not
    periodic resyncs further out). What a controller did not do by then, it was not going to do
    for these events: this is how a test proves that nothing happened, without sleeping."""
    async def idle() -> bool:
        return (all(check() for check in seen_first)
                and all(c.queue.pending(within) == 0 for c in env.controllers))
    await wait_for(idle, timeout=timeout, what=what)


async def patch(client: Client, api_version: str, plural: str, name: str, body: Any, ns: str = "",
                **kw: Any) -> Obj:
    """A patch retried on Conflict: the controllers write the same objects concurrently (and the
    server, as of writing, returns a lost compare-and-swap as 409 even for unpinned patches)."""
    for _ in range(20):
        try:
            return await client.patch(api_version, plural, name, body, ns, **kw)
        except errors.Conflict:
            await asyncio.sleep(0.05)
    return await client.patch(api_version, plural, name, body, ns, **kw)


async def get_or_none(client: Client, api_version: str, plural: str, name: str, ns: str = "") -> Obj | None:
    try:
        return await client.get(api_version, plural, name, ns)
    except errors.NotFound:
        return None


# --- objects -------------------------------------------------------------------------------------


async def make_namespace(client: Client, name: str) -> str:
    await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


async def namespace(client: Client, prefix: str) -> str:
    """A new namespace with a unique name starting with ``prefix``."""
    return await make_namespace(client, f"{prefix}-{next(_ns_counter)}-{int(time.time() * 1000) % 100000}")


def namespaced_crd(plural: str, kind: str, group: str = "example.com") -> Obj:
    """A CustomResourceDefinition of a namespaced ``v1`` kind that keeps any fields."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object",
                                                              "x-kubernetes-preserve-unknown-fields": True}}}]},
    }


async def make_node(client: Client, name: str, labels: dict[str, str] | None = None,
                    taints: list[dict[str, str]] | None = None) -> Obj:
    node: Obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
                 "spec": {"taints": taints} if taints else {}}
    try:
        return await client.create("v1", "nodes", node)
    except errors.AlreadyExists:
        return await client.get("v1", "nodes", name)


def container_template(labels: dict[str, str], image: str = "nginx:1") -> Obj:
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": image}]}}


def job_body(name: str, *, completions: int | None = 1, parallelism: int | None = 1, **spec: Any) -> Obj:
    template = spec.pop("template", None) or {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}
    body_spec: Obj = {"template": template, **spec}
    if completions is not None:
        body_spec["completions"] = completions
    if parallelism is not None:
        body_spec["parallelism"] = parallelism
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": body_spec}


def condition(obj: Obj, type_: str) -> Obj | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return dict(c)
    return None


async def events_for(client: Client, ns: str, name: str) -> list[Obj]:
    items, _ = await client.list_all("v1", "events", ns)
    return [e for e in items if (e.get("involvedObject") or {}).get("name") == name]


# --- pods, and playing kubelet -------------------------------------------------------------------


async def list_pods(client: Client, ns: str, selector: str = "", *, include_terminating: bool = False) -> list[Obj]:
    items, _ = await client.list_all("v1", "pods", ns, label_selector=selector)
    if include_terminating:
        return items
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def pods_of(client: Client, ns: str, selector: str = "") -> list[Obj]:
    """Every pod of ``ns``, those being deleted included."""
    return await list_pods(client, ns, selector, include_terminating=True)


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def is_active(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") \
        and not pod["metadata"].get("deletionTimestamp")


async def bind(client: Client, pod: Obj, node: str) -> None:
    m = pod["metadata"]
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": m["name"], "namespace": m["namespace"]},
               "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
    await client.create("v1", "pods", binding, m["namespace"], subresource="binding", name=m["name"])


async def mark_ready(client: Client, pod: Obj, ready: bool = True) -> None:
    """Play kubelet: phase Running and the Ready condition."""
    m = pod["metadata"]
    status = {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": rfc3339()}]}
    try:
        await patch(client, "v1", "pods", m["name"], {"status": status}, m["namespace"], subresource="status")
    except errors.NotFound:
        pass


async def finish(client: Client, pod: Obj, phase: str = "Succeeded", exit_code: int | None = None,
                 container: str = "c", conditions: list[Obj] | None = None) -> None:
    """Play kubelet: the pod's containers terminated with ``exit_code``, the pod in ``phase``."""
    m = pod["metadata"]
    code = exit_code if exit_code is not None else (0 if phase == "Succeeded" else 1)
    now = rfc3339()
    status: Obj = {"phase": phase, "containerStatuses": [{
        "name": container, "image": "busybox", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                 "startedAt": now, "finishedAt": now}}}]}
    if conditions:
        status["conditions"] = conditions
    try:
        await client.patch("v1", "pods", m["name"], {"status": status}, m["namespace"], subresource="status")
    except errors.NotFound:
        pass


@dataclass
class FakeKubelet:
    """Finish pods as they appear, per ``policy(pod) -> (phase, exit_code) | None`` (None: leave it).

    Pods being deleted are finished as Failed (what a kubelet does after killing them). Tracks
    the most pods ever active at once.
    """

    client: Client
    ns: str
    policy: Callable[[Obj], tuple[str, int] | None] = lambda pod: ("Succeeded", 0)
    max_active: int = 0
    seen: set[str] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            pods = await pods_of(self.client, self.ns)
            active = [p for p in pods if is_active(p)]
            self.max_active = max(self.max_active, len(active))
            for p in pods:
                self.seen.add(p["metadata"]["name"])
                phase = (p.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed"):
                    continue
                if p["metadata"].get("deletionTimestamp"):
                    await finish(self.client, p, "Failed", 137)
                    continue
                decision = self.policy(p)
                if decision is not None:
                    await finish(self.client, p, decision[0], decision[1])
            await asyncio.sleep(0.05)

    def __enter__(self) -> FakeKubelet:
        self._task = asyncio.create_task(self._loop())
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._task is not None:
            self._task.cancel()
