"""The Node authorizer: its graph, its decisions (Kubernetes 1.32's reasons), and its feeds from a
real registry (SQLite store, no server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.authz import node_graph as g
from kybernetes.apiserver.authz.authorizer import Attributes, Decision, new_chain
from kybernetes.apiserver.authz.node import NodeAuthorizer, NodeDecisions
from kybernetes.apiserver.authz.node_rules import NODE_RULES
from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.request import DeleteOptions, RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.apiserver.transport.requestinfo import RequestInfo
from kybernetes.storage.sqlite import SQLiteStore

Obj = dict[str, Any]
N1 = User("system:node:n1", ("system:nodes", "system:authenticated"))


def pod(name: str, node: str = "n1", ns: str = "default", **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}], **spec}}


def pv(name: str, claim: str, secret: str = "", ns: str = "default") -> Obj:
    spec: Obj = {"claimRef": {"namespace": ns, "name": claim}, "capacity": {"storage": "1Gi"},
                 "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/x"}}
    if secret:
        spec["cephfs"] = {"monitors": ["m"], "secretRef": {"name": secret}}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


ON_N1 = pod("web", imagePullSecrets=[{"name": "pull"}], serviceAccountName="sa",
            volumes=[{"name": "s", "secret": {"secretName": "vol-secret"}},
                     {"name": "c", "configMap": {"name": "vol-cm"}},
                     {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                             {"configMap": {"name": "proj-cm"}}]}},
                     {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                     {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}],
            containers=[{"name": "c", "image": "busybox",
                         "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                                 {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}],
                         "envFrom": [{"secretRef": {"name": "from-secret"}}, {"configMapRef": {"name": "from-cm"}}]}])


def graph_of(*objs: tuple[str, Obj]) -> g.NodeGraph:
    graph = g.NodeGraph()
    edges = {g.POD: g.pod_edges, g.PV: g.pv_edges, g.VOLUME_ATTACHMENT: g.va_edges}
    for vt, obj in objs:
        meta = obj["metadata"]
        graph.set_object((vt, meta.get("namespace", ""), meta["name"]), edges[vt](obj))
    return graph


def ask(verb: str, resource: str, name: str = "", ns: str = "default", sub: str = "", group: str = "",
        user: User = N1, field_selector: str = "") -> tuple[Decision, str]:
    graph = graph_of((g.POD, ON_N1), (g.POD, pod("other", node="n2", volumes=[
        {"name": "s", "secret": {"secretName": "n2-secret"}}])),
        (g.PV, pv("pv1", "data", secret="pv-secret")), (g.PV, pv("pv2", "unused", secret="pv2-secret")),
        (g.VOLUME_ATTACHMENT, {"metadata": {"name": "va1"}, "spec": {"nodeName": "n1"}}))
    return NodeDecisions(graph).authorize(Attributes(user, verb, True, group, "v1", ns, resource, sub, name,
                                                     field_selector=field_selector))


ALLOW = (Decision.ALLOW, "")
NO_REL = (Decision.NO_OPINION, "no relationship found between node 'n1' and this object")


@pytest.mark.parametrize(("request_", "want"), [
    # secrets and configmaps of the node's pods, by every way a pod names them
    *[((v, "secrets", s), ALLOW) for v in ("get", "list", "watch")
      for s in ("pull", "vol-secret", "proj-secret", "env-secret", "from-secret", "pv-secret")],
    *[(("get", "configmaps", c), ALLOW) for c in ("vol-cm", "proj-cm", "env-cm", "from-cm")],
    (("get", "secrets", "n2-secret"), NO_REL),
    (("get", "secrets", "pv2-secret"), NO_REL),
    (("get", "secrets", "pull", "other-ns"), NO_REL),
    (("get", "secrets", "missing"), NO_REL),
    (("list", "secrets", ""), (Decision.NO_OPINION, "No Object name found")),
    (("update", "secrets", "pull"), (Decision.NO_OPINION, "can only read resources of this type")),
    (("get", "secrets", "pull", ""), (Decision.NO_OPINION, "can only read namespaced object of this type")),
    # claims, volumes, attachments: get only
    (("get", "persistentvolumeclaims", "data"), ALLOW),
    (("get", "persistentvolumeclaims", "web-e"), ALLOW),
    (("list", "persistentvolumeclaims", ""), (Decision.NO_OPINION, "can only get individual resources of this type")),
    (("get", "persistentvolumes", "pv1", ""), ALLOW),
    (("get", "persistentvolumes", "pv2", ""), NO_REL),
    (("get", "volumeattachments", "va1", "", "", "storage.k8s.io"), ALLOW),
    (("patch", "persistentvolumeclaims", "data", "default", "status"), ALLOW),
    (("get", "persistentvolumeclaims", "data", "default", "status"),
     (Decision.NO_OPINION, "can only get/update/patch this type")),
    # tokens for the service accounts of its pods
    (("create", "serviceaccounts", "sa", "default", "token"), ALLOW),
    (("create", "serviceaccounts", "default", "default", "token"), NO_REL),
    (("get", "serviceaccounts", "sa"),
     (Decision.NO_OPINION, "can only create tokens for individual service accounts")),
    # its own lease, CSINode and Node
    (("update", "leases", "n1", "kube-node-lease", "", "coordination.k8s.io"), ALLOW),
    (("update", "leases", "n2", "kube-node-lease", "", "coordination.k8s.io"),
     (Decision.NO_OPINION, "can only access node lease with the same name as the requesting node")),
    (("get", "leases", "n1", "default", "", "coordination.k8s.io"),
     (Decision.NO_OPINION, 'can only access leases in the "kube-node-lease" system namespace')),
    (("list", "leases", "", "kube-node-lease", "", "coordination.k8s.io"),
     (Decision.NO_OPINION, "can only get, create, update, patch, or delete a node lease")),
    (("patch", "csinodes", "n2", "", "", "storage.k8s.io"),
     (Decision.NO_OPINION, "can only access CSINode with the same name as the requesting node")),
    (("get", "nodes", "n1", ""), ALLOW),
    (("get", "nodes", "n2", ""), (Decision.NO_OPINION, "node 'n1' cannot read 'n2', only its own Node object")),
    (("list", "nodes", "", ""), (Decision.NO_OPINION, "node 'n1' cannot read all nodes, only its own Node object")),
    (("patch", "nodes", "n2", "", "status"), ALLOW),  # NodeRestriction refuses it
    (("delete", "nodes", "n1", ""), (Decision.NO_OPINION, "")),
    # pods
    (("get", "pods", "web"), ALLOW),
    (("get", "pods", "other"), NO_REL),
    (("list", "pods", "", ""), (Decision.NO_OPINION, "can only list/watch pods with spec.nodeName field selector")),
    (("update", "pods", "web"), (Decision.NO_OPINION, "")),
    (("create", "pods", "", "default", "eviction"), ALLOW),
    # the static rules
    (("list", "services", "", ""), ALLOW),
    (("create", "events", ""), ALLOW),
    (("list", "runtimeclasses", "", "", "", "node.k8s.io"), ALLOW),
    (("delete", "services", "kubernetes"), (Decision.NO_OPINION, "")),
    (("list", "deployments", "", "", "", "apps"), (Decision.NO_OPINION, "")),
])
def test_decisions(request_: tuple[str, ...], want: tuple[Decision, str]) -> None:
    assert ask(*request_) == want


def test_pod_lists_need_the_nodes_own_field_selector() -> None:
    assert ask("watch", "pods", ns="", field_selector="spec.nodeName=n1") == ALLOW
    assert ask("list", "pods", ns="", field_selector="status.phase!=Failed,spec.nodeName==n1") == ALLOW
    assert ask("list", "pods", ns="", field_selector="spec.nodeName=n2")[0] is Decision.NO_OPINION
    assert ask("list", "pods", ns="", field_selector="spec.nodeName!=n1")[0] is Decision.NO_OPINION


def test_only_node_users_get_an_opinion() -> None:
    for user in (User("jane", ("system:authenticated",)), User("system:node:n1", ("system:authenticated",))):
        assert ask("get", "secrets", "pull", user=user) == (Decision.NO_OPINION, "")
    nameless = User("system:node:", ("system:nodes",))
    assert ask("get", "secrets", "pull", user=nameless) == (Decision.NO_OPINION, 'unknown node for user "system:node:"')


def test_a_nodes_decisions_are_never_remembered() -> None:
    """The graph changes without telling the chain: the server's step (``Chain.decide``) asks the
    Node authorizer again for every request of a node."""
    graph = g.NodeGraph()
    chain = new_chain(["Node"], {"Node": lambda: NodeDecisions(graph)})
    pull = RequestInfo(True, "/api/v1/namespaces/default/secrets/pull", "get", "", "v1", "default", "secrets", "", "pull")
    assert chain.decide(N1, pull) == NO_REL
    graph.set_object((g.POD, "default", "web"), g.pod_edges(ON_N1))
    assert chain.decide(N1, pull) == ALLOW
    graph.delete_object((g.POD, "default", "web"))
    assert chain.decide(N1, pull) == NO_REL
    assert chain.decide(User("jane"), pull) == (Decision.NO_OPINION, "")


def test_static_rules_are_kubernetes_node_rules() -> None:
    assert len(NODE_RULES) == 22
    assert {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["secrets", "configmaps"]} in NODE_RULES
    assert all(set(r) == {"verbs", "apiGroups", "resources"} for r in NODE_RULES)


def test_graph_forgets_what_an_object_no_longer_states() -> None:
    graph = graph_of((g.POD, ON_N1), (g.PV, pv("pv1", "data", secret="pv-secret")))
    assert graph.has_path("n1", (g.SECRET, "", "pv-secret")) is False  # a PV secret is in the claim's namespace
    assert graph.has_path("n1", (g.SECRET, "default", "pv-secret"))
    graph.set_object((g.POD, "default", "web"), g.pod_edges(pod("web", volumes=[])))
    assert not graph.has_path("n1", (g.SECRET, "default", "pull"))
    assert not graph.has_path("n1", (g.SECRET, "default", "pv-secret"))
    graph.delete_object((g.POD, "default", "web"))
    graph.delete_object((g.PV, "", "pv1"))
    assert len(graph) == 0 and not graph.stated
    graph.set_object((g.POD, "default", "p"), g.pod_edges(pod("p", node="")))
    assert len(graph) == 0  # an unbound pod states nothing


# --- the feeds, over a real registry -----------------------------------------------------------


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    reg = Registry(store, Catalogue.builtin(), builtin_strategies())
    await reg.start()
    ns = reg.catalogue.get("", "v1", "namespaces")
    assert ns is not None
    await reg.create(ns, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}, RequestContext())
    try:
        yield reg
    finally:
        await reg.stop()
        await store.close()


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


async def test_feeds_list_then_follow_the_watch(registry: Registry) -> None:
    pods = registry.catalogue.get("", "v1", "pods")
    assert pods is not None
    ctx = RequestContext()
    await registry.create(pods, "default", pod("before", volumes=[{"name": "s", "secret": {"secretName": "a"}}]), ctx)
    authz = NodeAuthorizer(registry, registry.catalogue)
    await authz.start()
    try:
        def can(secret: str) -> bool:
            attrs = Attributes(N1, "get", True, "", "v1", "default", "secrets", "", secret)
            return authz.authorize(attrs)[0] is Decision.ALLOW

        assert can("a")  # from the initial list
        await registry.create(pods, "default", pod("after", volumes=[{"name": "s", "secret": {"secretName": "b"}}]), ctx)
        await until(lambda: can("b"))
        await registry.delete(pods, "default", "before", DeleteOptions(grace_period_seconds=0), ctx)
        await until(lambda: not can("a"))
        assert can("b")
    finally:
        await authz.stop()


async def test_feeds_list_again_after_a_watch_error(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch that fails (here: the first pod watch ends with 410 Expired, as a compacted revision
    does) is followed by a new list, which brings what happened meanwhile."""
    pods = registry.catalogue.get("", "v1", "pods")
    assert pods is not None
    real_watch = registry.watch
    failed = asyncio.Event()

    async def watch_failing_once(r: Any, namespace: str, opts: Any, send_initial: bool = True) -> AsyncIterator[Any]:
        if r.plural == "pods" and not failed.is_set():
            await registry.create(pods, "default", pod("meanwhile", volumes=[
                {"name": "s", "secret": {"secretName": "c"}}]), RequestContext())
            failed.set()
            raise errors.Expired("too old resource version: 1 (2)")
        async for ev in real_watch(r, namespace, opts, send_initial=send_initial):
            yield ev

    monkeypatch.setattr(registry, "watch", watch_failing_once)
    authz = NodeAuthorizer(registry, registry.catalogue)
    authz.RETRY_DELAY = 0.01
    await authz.start()
    try:
        attrs = Attributes(N1, "get", True, "", "v1", "default", "secrets", "", "c")
        await until(lambda: authz.authorize(attrs)[0] is Decision.ALLOW)
        assert failed.is_set()
    finally:
        await authz.stop()


def test_request_info_carries_the_field_selector_to_the_decision() -> None:
    """``?fieldSelector=spec.nodeName=n1`` on a pod list reaches the authorizer (Kubernetes'
    field selector attributes); a named GET carries none."""
    from kybernetes.apiserver.transport.requestinfo import request_info
    from kybernetes.apiserver.transport.requests import parse_resource_path

    def decide(path: str, query: dict[str, str]) -> Decision:
        info = request_info("GET", path, parse_resource_path(path), query)
        return NodeDecisions(graph_of((g.POD, ON_N1))).authorize(Attributes.of(N1, info))[0]

    assert decide("/api/v1/pods", {"fieldSelector": "spec.nodeName=n1", "watch": "true"}) is Decision.ALLOW
    assert decide("/api/v1/pods", {"fieldSelector": "spec.nodeName=n2"}) is Decision.NO_OPINION
    assert decide("/api/v1/namespaces/default/secrets", {"fieldSelector": "metadata.name=pull"}) is Decision.ALLOW
    assert request_info("GET", "/api/v1/namespaces/default/pods/web", parse_resource_path(
        "/api/v1/namespaces/default/pods/web"), {"fieldSelector": "spec.nodeName=n1"}).field_selector == ""


def test_a_shared_object_answers_without_walking_its_pods() -> None:
    """A configmap used by 1,000 pods on 10 nodes: one count per node, nothing to walk; the
    counts follow pods that go away and a pod that comes back on another node."""
    graph = g.NodeGraph()
    cm: g.Vertex = (g.CONFIGMAP, "default", "shared")
    for i in range(1000):
        p = pod(f"p{i}", node=f"n{i % 10}", volumes=[{"name": "c", "configMap": {"name": "shared"}}])
        graph.set_object((g.POD, "default", f"p{i}"), g.pod_edges(p))
    assert graph.reach[cm] == {f"n{k}": 100 for k in range(10)} and cm not in graph.hops
    assert graph.has_path("n3", cm) and not graph.has_path("n10", cm)
    moved = pod("p3", node="n10", volumes=[{"name": "c", "configMap": {"name": "shared"}}])
    graph.set_object((g.POD, "default", "p3"), g.pod_edges(moved))
    assert graph.reach[cm]["n3"] == 99 and graph.has_path("n10", cm)
    for i in range(1000):
        graph.delete_object((g.POD, "default", f"p{i}"))
    assert len(graph) == 0 and not graph.reach and not graph.hops and not graph.stated
