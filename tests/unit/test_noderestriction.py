"""NodeRestriction: every rule of Kubernetes 1.32's plugin with its exact words, over a real registry
(SQLite store, no server) holding two nodes and a pod on each."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.admission import noderestriction
from kybernetes.apiserver.admission.chain import CREATE, DELETE, UPDATE, Attributes, Chain, PluginInit
from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.request import RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.storage.sqlite import SQLiteStore

Obj = dict[str, Any]
N1 = User("system:node:n1", ("system:nodes", "system:authenticated"))


def make_pod(name: str, node: str, **meta: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", **meta},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    reg = Registry(store, Catalogue.builtin(), builtin_strategies())
    reg.admission = Chain()
    await reg.start()
    ctx = RequestContext()

    def r(group: str, plural: str) -> Any:
        return reg.catalogue.get(group, "v1", plural)

    await reg.create(r("", "namespaces"), "", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": "default"}}, ctx)
    for n in ("n1", "n2"):
        await reg.create(r("", "nodes"), "", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": n}}, ctx)
        pod = make_pod(f"on-{n}", n)
        pod["spec"]["automountServiceAccountToken"] = False
        await reg.create(r("", "pods"), "default", pod, ctx)
    try:
        yield reg
    finally:
        await reg.stop()
        await store.close()


async def get(reg: Registry, plural: str, name: str, ns: str = "default") -> Obj:
    r = reg.catalogue.get("", "v1", plural)
    assert r is not None
    return await reg.get(r, ns, name)


async def mirror(reg: Registry, **spec: Any) -> Obj:
    uid = (await get(reg, "nodes", "n1", ""))["metadata"]["uid"]
    pod = make_pod("m", "n1", annotations={"kubernetes.io/config.mirror": "h"},
                   ownerReferences=[{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": uid, "controller": True}])
    pod["spec"].update(spec)
    return pod


async def admit(reg: Registry, op: str, resource: str, name: str, obj: Obj | None = None, old: Obj | None = None,
                sub: str = "", ns: str = "default", group: str = "", user: User = N1) -> str:
    """"" if admitted, else the refusal's message."""
    attrs = Attributes(op, group, "v1", resource, "", ns, name, obj, old, user, sub)
    try:
        await noderestriction.new(PluginInit(reg)).admit(attrs)
    except errors.StatusError as e:
        return e.message
    return ""


async def test_mirror_pods(registry: Registry) -> None:
    assert await admit(registry, CREATE, "pods", "m", await mirror(registry)) == ""
    plain = make_pod("p", "n1")
    assert await admit(registry, CREATE, "pods", "p", plain) == (
        'pods "p" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only '
        "create mirror pods")
    elsewhere = await mirror(registry, nodeName="n2")
    assert await admit(registry, CREATE, "pods", "m", elsewhere) == (
        'pods "m" is forbidden: node "n1" can only create pods with spec.nodeName set to itself')
    for spec, what in (({"serviceAccountName": "sa"}, "a service account"),
                       ({"imagePullSecrets": [{"name": "s"}]}, "secrets"),
                       ({"volumes": [{"name": "v", "configMap": {"name": "c"}}]}, "configmaps"),
                       ({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "c"}}]},
                        "persistentvolumeclaims")):
        assert await admit(registry, CREATE, "pods", "m", await mirror(registry, **spec)) == (
            f'pods "m" is forbidden: node "n1" can not create pods that reference {what}')


@pytest.mark.parametrize(("refs", "want"), [
    ([], 'node "n1" can only create pods with an owner reference set to itself'),
    ([{"apiVersion": "v1", "kind": "Node", "name": "n2", "uid": "x", "controller": True}],
     'node "n1" can only create pods with an owner reference set to itself'),
    ([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "x"}],
     'node "n1" can only create pods with a controller owner reference set to itself'),
    ([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "x", "controller": True, "blockOwnerDeletion": True}],
     'node "n1" must not set blockOwnerDeletion on an owner reference'),
    ([{"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "x", "controller": True}] * 2,
     'node "n1" can only create pods with a single owner reference set to itself'),
])
async def test_mirror_pod_owner(registry: Registry, refs: list[Obj], want: str) -> None:
    pod = await mirror(registry)
    pod["metadata"]["ownerReferences"] = refs
    assert await admit(registry, CREATE, "pods", "m", pod) == f'pods "m" is forbidden: {want}'


async def test_mirror_pod_owner_uid_is_the_nodes(registry: Registry) -> None:
    pod = await mirror(registry)
    pod["metadata"]["ownerReferences"][0]["uid"] = "stale"
    uid = (await get(registry, "nodes", "n1", ""))["metadata"]["uid"]
    assert await admit(registry, CREATE, "pods", "m", pod) == (
        f'pods "m" is forbidden: node n1 UID mismatch: expected stale got {uid}')


async def test_pods_of_other_nodes(registry: Registry) -> None:
    mine, theirs = await get(registry, "pods", "on-n1"), await get(registry, "pods", "on-n2")
    assert await admit(registry, DELETE, "pods", "on-n1", None, mine) == ""
    assert await admit(registry, DELETE, "pods", "on-n2", None, theirs) == (
        'pods "on-n2" is forbidden: node "n1" can only delete pods with spec.nodeName set to itself')
    assert await admit(registry, UPDATE, "pods", "on-n1", mine, mine) == (
        'pods "on-n1" is forbidden: unexpected operation "UPDATE", node "n1" can only create and delete mirror pods')
    assert await admit(registry, UPDATE, "pods", "on-n1", mine, mine, "status") == ""
    assert await admit(registry, UPDATE, "pods", "on-n2", theirs, theirs, "status") == (
        'pods "on-n2" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself')
    relabelled = copy.deepcopy(mine)
    relabelled["metadata"]["labels"] = {"a": "b"}
    assert await admit(registry, UPDATE, "pods", "on-n1", relabelled, mine, "status") == (
        'pods "on-n1" is forbidden: node "n1" cannot update labels through pod status')
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "on-n2"}}
    assert await admit(registry, CREATE, "pods", "on-n2", eviction, sub="eviction") == (
        'pods "on-n2" is forbidden: node n1 can only evict pods with spec.nodeName set to itself')
    assert await admit(registry, CREATE, "pods", "on-n1", eviction, sub="eviction") == ""
    assert await admit(registry, UPDATE, "pods", "on-n1", mine, mine, "ephemeralcontainers") == (
        'pods "on-n1" is forbidden: unexpected pod subresource "ephemeralcontainers", only \'status\' and '
        "'eviction' are allowed")
    with pytest.raises(errors.NotFound):
        await noderestriction.new(PluginInit(registry)).admit(
            Attributes(DELETE, "", "v1", "pods", "Pod", "default", "gone", None, mine, N1))


async def test_nodes(registry: Registry) -> None:
    n1, n2 = await get(registry, "nodes", "n1", ""), await get(registry, "nodes", "n2", "")
    assert await admit(registry, UPDATE, "nodes", "n2", n2, n2, ns="") == (
        'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"')
    ok = copy.deepcopy(n1)
    ok["metadata"]["labels"] = {"kubernetes.io/hostname": "h", "node.kubernetes.io/pool": "x", "example.com/a": "b"}
    assert await admit(registry, UPDATE, "nodes", "n1", ok, n1, ns="") == ""
    bad = copy.deepcopy(n1)
    bad["metadata"]["labels"] = {"node-restriction.kubernetes.io/x": "y", "kubernetes.io/role": "master",
                                 "a.k8s.io/b": "c"}
    assert await admit(registry, UPDATE, "nodes", "n1", bad, n1, ns="") == (
        'nodes "n1" is forbidden: is not allowed to modify labels: a.k8s.io/b, kubernetes.io/role, '
        "node-restriction.kubernetes.io/x")
    assert await admit(registry, CREATE, "nodes", "n1", bad, ns="") == (
        'nodes "n1" is forbidden: node "n1" is not allowed to set the following labels: a.k8s.io/b, '
        "kubernetes.io/role, node-restriction.kubernetes.io/x")
    tainted = copy.deepcopy(n1)
    tainted["spec"]["taints"] = [{"key": "k", "effect": "NoSchedule"}]
    assert await admit(registry, UPDATE, "nodes", "n1", n1, tainted, sub="status", ns="") == (
        'nodes "n1" is forbidden: node "n1" is not allowed to modify taints')


async def test_leases_csinodes_and_tokens(registry: Registry) -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n2"}}
    g = "coordination.k8s.io"
    assert await admit(registry, CREATE, "leases", "", lease, ns="kube-node-lease", group=g) == (
        'leases.coordination.k8s.io "n2" is forbidden: can only access node lease with the same name as the '
        "requesting node")
    assert await admit(registry, UPDATE, "leases", "n1", lease, lease, ns="default", group=g) == (
        'leases.coordination.k8s.io "n1" is forbidden: can only access leases in the "kube-node-lease" system '
        "namespace")
    assert await admit(registry, DELETE, "leases", "n1", None, lease, ns="kube-node-lease", group=g) == ""
    assert await admit(registry, DELETE, "csinodes", "n2", None, {}, ns="", group="storage.k8s.io") == (
        'csinodes.storage.k8s.io "n2" is forbidden: can only access CSINode with the same name as the requesting node')
    on_n2 = await get(registry, "pods", "on-n2")
    on_n1 = await get(registry, "pods", "on-n1")

    def token(pod: Obj | None, uid: str | None = None) -> Obj:
        spec: Obj = {"audiences": ["x"]}
        if pod is not None:
            spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                                      "uid": pod["metadata"]["uid"] if uid is None else uid}
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}

    for body, want in ((token(None), "node requested token not bound to a pod"),
                       (token(on_n1, ""), "node requested token with a pod binding without a uid"),
                       (token(on_n1, "old"), "the UID in the bound object reference (old) does not match the UID in "
                                             "record. The object might have been deleted and then recreated"),
                       (token(on_n2), "node requested token bound to a pod scheduled on a different node"),
                       (token(on_n1), "")):
        got = await admit(registry, CREATE, "serviceaccounts", "default", body, sub="token")
        assert got == (f'serviceaccounts "default" is forbidden: {want}' if want else "")


async def test_only_nodes_are_restricted(registry: Registry) -> None:
    plain = make_pod("p", "n2")
    assert await admit(registry, CREATE, "pods", "p", plain, user=User("jane", ("system:authenticated",))) == ""
    nameless = User("system:node:", ("system:nodes",))
    assert await admit(registry, CREATE, "pods", "p", plain, user=nameless) == (
        'pods "p" is forbidden: could not determine node from user "system:node:"')
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "spec": {}, "status": {}}
    grown = copy.deepcopy(pvc)
    grown["status"]["capacity"] = {"storage": "2Gi"}
    assert await admit(registry, UPDATE, "persistentvolumeclaims", "c", grown, pvc, "status") == ""
    relabelled = copy.deepcopy(pvc)
    relabelled["metadata"]["labels"] = {"a": "b"}
    assert (await admit(registry, UPDATE, "persistentvolumeclaims", "c", relabelled, pvc, "status")).startswith(
        'persistentvolumeclaims "c" is forbidden: node "n1" is not allowed to update fields other than '
        "status.capacity and status.conditions: ")
    assert await admit(registry, UPDATE, "persistentvolumeclaims", "c", pvc, pvc) == (
        'persistentvolumeclaims "c" is forbidden: may only update PVC status')
