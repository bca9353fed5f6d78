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
pod -> node, four steps) that never goes through another node's vertex, and never enumerates a
vertex's pods (see :class:`NodeGraph`). Not thread-safe: it is fed and read on the API server's
event loop.
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
    """Vertices and edges, with what each object stated (see the module's contract).

    The walk never enumerates a vertex's pods: an edge into a pod (or straight to a node) is kept
    as a count per destination node in ``reach`` (Kubernetes' destination edge index), so a
    configmap used by 10,000 pods answers in one lookup; only the other edges (secret -> pv ->
    pvc) are in ``hops`` and walked.
    """

    def __init__(self) -> None:
        self.reach: dict[Vertex, dict[str, int]] = {}
        """vertex -> {node: how many of its edges end at that node, directly or through one pod}."""
        self.hops: dict[Vertex, set[Vertex]] = {}
        """vertex -> the neighbours its other edges lead to (pvs, pvcs)."""
        self.degree: dict[Vertex, int] = {}
        self.stated: dict[Vertex, frozenset[tuple[Vertex, Vertex]]] = {}

    def __len__(self) -> int:
        return len(self.degree)

    def set_object(self, owner: Vertex, edges: frozenset[tuple[Vertex, Vertex]]) -> None:
        """``owner`` now states exactly ``edges`` (an empty set deletes it)."""
        old = self.stated.get(owner, frozenset())
        if old == edges:
            return
        old_dest, new_dest = _destination(owner, old), _destination(owner, edges)
        if old_dest == new_dest:
            removed, added = old - edges, edges - old
        else:  # a pod moved: every edge into it now leads elsewhere
            removed, added = old, edges
        for a, b in removed:
            self._change(a, b, old_dest, -1)
        for a, b in added:
            self._change(a, b, new_dest, +1)
        if edges:
            self.stated[owner] = edges
        else:
            self.stated.pop(owner, None)

    def delete_object(self, owner: Vertex) -> None:
        self.set_object(owner, frozenset())

    def owners(self, vertex_type: str) -> list[Vertex]:
        return [v for v in self.stated if v[0] == vertex_type]

    def _change(self, a: Vertex, b: Vertex, dest: str | None, delta: int) -> None:
        if b[0] == NODE or (b[0] == POD and dest is not None):
            node = b[2] if b[0] == NODE else str(dest)
            counts = self.reach.setdefault(a, {})
            counts[node] = counts.get(node, 0) + delta
            if counts[node] <= 0:
                del counts[node]
                if not counts:
                    del self.reach[a]
        elif delta > 0:
            self.hops.setdefault(a, set()).add(b)
        else:
            targets = self.hops.get(a)
            if targets is not None:
                targets.discard(b)
                if not targets:
                    del self.hops[a]
        for v in (a, b):
            self.degree[v] = self.degree.get(v, 0) + delta
            if self.degree[v] <= 0:
                del self.degree[v]

    def has_path(self, node: str, start: Vertex) -> bool:
        """Whether a path leads from ``start`` to node ``node``'s vertex, not through another node."""
        seen = {start}
        stack = [start]
        while stack:
            v = stack.pop()
            if self.reach.get(v, {}).get(node):
                return True
            for w in self.hops.get(v, ()):
                if w not in seen:
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


def _destination(owner: Vertex, edges: frozenset[tuple[Vertex, Vertex]]) -> str | None:
    """The node an owner's own edge leads to (a pod's node), if it states one."""
    for a, b in edges:
        if a == owner and b[0] == NODE:
            return b[2]
    return None
