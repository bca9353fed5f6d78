"""The Node authorizer's graph: which objects lead to which node.

Kubernetes' ``plugin/pkg/auth/authorizer/node/graph.go``. Vertices are ``(type, namespace, name)``;
an edge ``a -> b`` says "a is used by b", and a path from an object to ``("node", "", N)`` says
node N may read it:

    secret, configmap, serviceaccount, pvc  -> pod -> node     (a pod bound to the node)
    pvc <- pv <- secret                                         (pv -> its claim; the pv's secrets -> pv)
    volumeattachment -> node

Each object owns its own vertex and the edges it states: a pod its edge to its node and the edges
from what it references; a PV its edge to its claim and the edges from its secrets; a
VolumeAttachment its edge to its node. Setting an object again replaces what it stated; deleting
it removes its vertex and edges, and any neighbour left without edges. A vertex with no edges is
never kept, so the graph's size follows the pods bound to nodes.

:meth:`NodeGraph.has_path` is a depth-first walk from the object (at most secret -> pv -> pvc ->
pod -> node, four steps) that never goes through another node's vertex. Not thread-safe: it is fed
and read on the API server's event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kybernetes.api import podrefs

Vertex = tuple[str, str, str]

POD = "pod"
NODE = "node"
SECRET = "secret"
CONFIGMAP = "configmap"
SERVICE_ACCOUNT = "serviceAccount"
PVC = "pvc"
PV = "pv"
VOLUME_ATTACHMENT = "volumeattachment"


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def pod_edges(pod: Mapping[str, Any]) -> frozenset[tuple[Vertex, Vertex]]:
    """The edges a pod states: none unless it is bound to a node (``AddPod``)."""
    ns, name = _meta(pod)
    node = _spec(pod).get("nodeName")
    if not isinstance(node, str) or not node:
        return frozenset()
    me: Vertex = (POD, ns, name)
    edges = {(me, (NODE, "", node))}
    edges.update(((SECRET, ns, s), me) for s in podrefs.secret_names(pod))
    edges.update(((CONFIGMAP, ns, c), me) for c in podrefs.configmap_names(pod))
    edges.update(((PVC, ns, c), me) for c in podrefs.claim_names(pod))
    if sa := podrefs.service_account_name(pod):
        edges.add(((SERVICE_ACCOUNT, ns, sa), me))
    return frozenset(edges)


def pv_edges(pv: Mapping[str, Any]) -> frozenset[tuple[Vertex, Vertex]]:
    """A bound PV's edge to its claim and its secrets' edges to it (``AddPV``)."""
    spec = _spec(pv)
    ref = spec.get("claimRef")
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return frozenset()
    me: Vertex = (PV, "", _meta(pv)[1])
    edges = {(me, (PVC, str(ref.get("namespace") or ""), str(ref["name"])))}
    for ns, secret in pv_secret_refs(spec):
        edges.add(((SECRET, ns, secret), me))
    return frozenset(edges)


def pv_secret_refs(spec: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(namespace, name)`` of the secrets a PV's source names (``VisitPVSecretNames``; a
    reference without a namespace is in the claim's namespace)."""
    claim_ns = str((spec.get("claimRef") or {}).get("namespace") or "")
    out: set[tuple[str, str]] = set()
    for source in spec.values():
        if not isinstance(source, Mapping):
            continue
        for field, ref in source.items():
            if field == "secretName" and isinstance(ref, str) and ref:
                ns = source.get("secretNamespace")
                out.add((str(ns) if ns else claim_ns, ref))
            elif field.endswith("ecretRef") and isinstance(ref, Mapping) and ref.get("name"):
                out.add((str(ref.get("namespace") or claim_ns), str(ref["name"])))
    return out


def va_edges(va: Mapping[str, Any]) -> frozenset[tuple[Vertex, Vertex]]:
    node = _spec(va).get("nodeName")
    if not isinstance(node, str) or not node:
        return frozenset()
    return frozenset({((VOLUME_ATTACHMENT, "", _meta(va)[1]), (NODE, "", node))})


class NodeGraph:
    """Vertices and edges, with what each object stated (see the module's contract)."""

    def __init__(self) -> None:
        self.out: dict[Vertex, set[Vertex]] = {}
        self.into: dict[Vertex, set[Vertex]] = {}
        self.stated: dict[Vertex, frozenset[tuple[Vertex, Vertex]]] = {}

    def __len__(self) -> int:
        return len(set(self.out) | set(self.into))

    def set_object(self, owner: Vertex, edges: frozenset[tuple[Vertex, Vertex]]) -> None:
        """``owner`` now states exactly ``edges`` (an empty set deletes it)."""
        old = self.stated.get(owner, frozenset())
        if old == edges:
            return
        for edge in old - edges:
            self._remove_edge(*edge)
        for a, b in edges - old:
            self.out.setdefault(a, set()).add(b)
            self.into.setdefault(b, set()).add(a)
        if edges:
            self.stated[owner] = edges
        else:
            self.stated.pop(owner, None)

    def delete_object(self, owner: Vertex) -> None:
        self.set_object(owner, frozenset())

    def owners(self, vertex_type: str) -> list[Vertex]:
        return [v for v in self.stated if v[0] == vertex_type]

    def _remove_edge(self, a: Vertex, b: Vertex) -> None:
        for index, key, other in ((self.out, a, b), (self.into, b, a)):
            targets = index.get(key)
            if targets is not None:
                targets.discard(other)
                if not targets:
                    del index[key]

    def has_path(self, node: str, start: Vertex) -> bool:
        """Whether a path leads from ``start`` to node ``node``'s vertex, not through another node."""
        target: Vertex = (NODE, "", node)
        seen = {start}
        stack = [start]
        while stack:
            v = stack.pop()
            for w in self.out.get(v, ()):
                if w == target:
                    return True
                if w not in seen and w[0] != NODE:
                    seen.add(w)
                    stack.append(w)
        return False

    def replace(self, vertex_type: str, stated: Iterable[tuple[Vertex, frozenset[tuple[Vertex, Vertex]]]]) -> None:
        """After a relist: the objects of one type are exactly ``stated``."""
        fresh = dict(stated)
        for owner in self.owners(vertex_type):
            if owner not in fresh:
                self.delete_object(owner)
        for owner, edges in fresh.items():
            self.set_object(owner, edges)
