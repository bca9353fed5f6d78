"""The Node authorizer (``--authorization-mode Node``): what a kubelet may do, and nothing more.

Kubernetes 1.32's ``plugin/pkg/auth/authorizer/node/node_authorizer.go`` with its default feature
gates (AuthorizeNodeWithSelectors on). It has an opinion only on requests from a node, a user
``system:node:NAME`` in ``system:nodes`` (any other user: NO_OPINION, with no reason, a decision
that is :class:`~.authorizer.Stable`; a node's decisions follow the graph and are not); it never
returns DENY, so a later mode (RBAC) may still allow what it refuses. For a node:

- secrets, configmaps: get, list or watch of one named object (a list or watch names it with a
  ``metadata.name`` field selector) in a namespace, related to the node by the graph;
- persistentvolumeclaims, persistentvolumes, volumeattachments: get, related to the node;
  ``persistentvolumeclaims/status``: update or patch, related to the node;
- serviceaccounts: create of the ``token`` subresource of a named account used by a pod of the node;
- leases: get/create/update/patch/delete in ``kube-node-lease`` of the node's own name (create is
  checked by NodeRestriction); csinodes: the same verbs, its own name, no subresource;
- nodes: create/update/patch (NodeRestriction limits them to its own), get/list/watch of its own
  name only, status update/patch;
- pods: get of a pod bound to it, list/watch with ``spec.nodeName=NAME`` (or of one related pod),
  create/delete (mirror pods, checked by NodeRestriction), status update/patch, eviction create;
- anything else: the static :data:`NODE_RULES`.

Refusals carry Kubernetes' reasons (``no relationship found between node 'n1' and this object``,
``can only get individual resources of this type``, ...). The graph (:mod:`.node_graph`) is fed by
watches of pods, persistent volumes and volume attachments: list, then watch from the list's
resourceVersion, and list again after any watch error. :meth:`NodeAuthorizer.start` returns once
every list has been applied; a decision is a few dict lookups and a walk of at most four edges.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kybernetes import errors
from kybernetes.api.field_selectors import parse_field_selector
from kybernetes.apiserver.authz import node_graph as g
from kybernetes.apiserver.authz.authorizer import Attributes, Decision, RulesInfo
from kybernetes.apiserver.authz.node_rules import NODE_RULES
from kybernetes.apiserver.authz.rules import rules_allow
from kybernetes.apiserver.registry.request import ListOptions, User
from kybernetes.join import NODE_LEASE_NAMESPACE, node_identity

if TYPE_CHECKING:
    from kybernetes.api.resources import Catalogue, Resource
    from kybernetes.apiserver.registry.store import Registry

log = logging.getLogger(__name__)

Result = tuple[Decision, str]
_NO = Decision.NO_OPINION
_ALLOW: Result = (Decision.ALLOW, "")
_NOT_A_NODE: Result = (Decision.NO_OPINION, "")
_LEASE_VERBS = frozenset({"get", "create", "update", "patch", "delete"})


def _no(reason: str = "") -> Result:
    return _NO, reason


class NodeDecisions:
    """The decisions, over a :class:`~.node_graph.NodeGraph` (the authorizer without its feeds)."""

    def __init__(self, graph: g.NodeGraph) -> None:
        self.graph = graph
        self._by_resource: dict[tuple[str, str], Callable[[str, Attributes], Result]] = {
            ("", "secrets"): lambda n, a: self._read_namespaced(n, g.SECRET, a),
            ("", "configmaps"): lambda n, a: self._read_namespaced(n, g.CONFIGMAP, a),
            ("", "persistentvolumeclaims"): self._pvc,
            ("", "persistentvolumes"): lambda n, a: self._get(n, g.PV, a),
            ("storage.k8s.io", "volumeattachments"): lambda n, a: self._get(n, g.VOLUME_ATTACHMENT, a),
            ("", "serviceaccounts"): self._create_token,
            ("coordination.k8s.io", "leases"): self._lease,
            ("storage.k8s.io", "csinodes"): self._csinode,
            ("", "nodes"): self._node,
            ("", "pods"): self._pod,
        }

    def authorize(self, attrs: Attributes) -> Result:
        node, is_node = node_identity(attrs.user.name, attrs.user.groups)
        if not is_node:
            return _NOT_A_NODE
        if not node:
            return _no(f'unknown node for user "{attrs.user.name}"')
        if attrs.resource_request:
            decide = self._by_resource.get((attrs.api_group, attrs.resource))
            if decide is not None:
                return decide(node, attrs)
        return _ALLOW if rules_allow(attrs, NODE_RULES) else _no()

    def stable_for(self, user: User) -> bool:
        """Only "not a node" is stable: a node's decisions change with the graph, unreported."""
        return not node_identity(user.name, user.groups)[1]

    def on_change(self, callback: Callable[[], None]) -> None:
        pass  # what is stable (a user is not a node) never changes

    # --- graph-scoped resources ------------------------------------------------------------------

    def _related(self, node: str, vertex_type: str, attrs: Attributes) -> Result:
        if not attrs.name:
            return _no("No Object name found")
        namespace = attrs.namespace if vertex_type not in (g.PV, g.VOLUME_ATTACHMENT) else ""
        if self.graph.has_path(node, (vertex_type, namespace, attrs.name)):
            return _ALLOW
        return _no(f"no relationship found between node '{node}' and this object")

    def _read_namespaced(self, node: str, vertex_type: str, attrs: Attributes) -> Result:
        if attrs.verb not in ("get", "list", "watch"):
            return _no("can only read resources of this type")
        if attrs.subresource:
            return _no("cannot read subresource")
        if not attrs.namespace:
            return _no("can only read namespaced object of this type")
        return self._related(node, vertex_type, attrs)

    def _get(self, node: str, vertex_type: str, attrs: Attributes) -> Result:
        if attrs.verb != "get":
            return _no("can only get individual resources of this type")
        if attrs.subresource:
            return _no("cannot get subresource")
        return self._related(node, vertex_type, attrs)

    def _pvc(self, node: str, attrs: Attributes) -> Result:
        if attrs.subresource != "status":
            return self._get(node, g.PVC, attrs)
        if attrs.verb not in ("update", "patch"):
            return _no("can only get/update/patch this type")
        return self._related(node, g.PVC, attrs)

    def _create_token(self, node: str, attrs: Attributes) -> Result:
        if attrs.verb != "create" or not attrs.name:
            return _no("can only create tokens for individual service accounts")
        if attrs.subresource != "token":
            return _no("can only create token subresource of serviceaccount")
        return self._related(node, g.SERVICE_ACCOUNT, attrs)

    # --- name-scoped resources -------------------------------------------------------------------

    @staticmethod
    def _lease(node: str, attrs: Attributes) -> Result:
        if attrs.verb not in _LEASE_VERBS:
            return _no("can only get, create, update, patch, or delete a node lease")
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return _no(f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        if attrs.verb != "create" and attrs.name != node:
            return _no("can only access node lease with the same name as the requesting node")
        return _ALLOW

    @staticmethod
    def _csinode(node: str, attrs: Attributes) -> Result:
        if attrs.verb not in _LEASE_VERBS:
            return _no("can only get, create, update, patch, or delete a CSINode")
        if attrs.subresource:
            return _no("cannot authorize CSINode subresources")
        if attrs.verb != "create" and attrs.name != node:
            return _no("can only access CSINode with the same name as the requesting node")
        return _ALLOW

    @staticmethod
    def _node(node: str, attrs: Attributes) -> Result:
        if not attrs.subresource:
            if attrs.verb in ("create", "update", "patch"):
                return _ALLOW  # NodeRestriction keeps the node to its own object
            if attrs.verb in ("get", "list", "watch"):
                if attrs.name == node:
                    return _ALLOW
                if not attrs.name:
                    return _no(f"node '{node}' cannot read all nodes, only its own Node object")
                return _no(f"node '{node}' cannot read '{attrs.name}', only its own Node object")
        elif attrs.subresource == "status" and attrs.verb in ("update", "patch"):
            return _ALLOW  # NodeRestriction keeps the node to its own status
        return _no()

    def _pod(self, node: str, attrs: Attributes) -> Result:
        verb, sub = attrs.verb, attrs.subresource
        if not sub:
            if verb == "get":
                return self._get(node, g.POD, attrs)
            if verb in ("list", "watch"):
                if selects_node(attrs.field_selector, node):
                    return _ALLOW
                if attrs.name:
                    return self._related(node, g.POD, attrs)
                return _no("can only list/watch pods with spec.nodeName field selector")
            if verb in ("create", "delete"):
                return _ALLOW  # mirror pods; NodeRestriction checks them
        elif (sub == "status" and verb in ("update", "patch")) or (sub == "eviction" and verb == "create"):
            return _ALLOW  # NodeRestriction keeps the node to its own pods
        return _no()


def selects_node(field_selector: str, node: str) -> bool:
    """Whether a field selector has the requirement ``spec.nodeName=node`` (``=`` or ``==``)."""
    if not field_selector:
        return False
    try:
        requirements = parse_field_selector(field_selector).requirements
    except errors.StatusError:
        return False
    return any(f == "spec.nodeName" and op in ("=", "==") and v == node for f, op, v in requirements)


# --- the feeds -----------------------------------------------------------------------------------

_FEEDS: tuple[tuple[str, str, str, str, Callable[[Any], frozenset[tuple[g.Vertex, g.Vertex]]]], ...] = (
    ("", "v1", "pods", g.POD, g.pod_edges),
    ("", "v1", "persistentvolumes", g.PV, g.pv_edges),
    ("storage.k8s.io", "v1", "volumeattachments", g.VOLUME_ATTACHMENT, g.va_edges),
)


def _owner(vertex_type: str, obj: dict[str, Any]) -> g.Vertex:
    meta = obj.get("metadata") or {}
    return vertex_type, str(meta.get("namespace") or ""), str(meta.get("name") or "")


class NodeAuthorizer(NodeDecisions):
    """The Node authorizer with its graph fed from the registry's watches (see the module doc)."""

    RETRY_DELAY = 0.5

    def __init__(self, registry: Registry, catalogue: Catalogue) -> None:
        super().__init__(g.NodeGraph())
        self.registry = registry
        self._feeds: list[tuple[Resource, str, Callable[[Any], frozenset[tuple[g.Vertex, g.Vertex]]]]] = []
        for group, version, plural, vertex_type, edges in _FEEDS:
            r = catalogue.get(group, version, plural)
            assert r is not None, plural
            self._feeds.append((r, vertex_type, edges))
        self._tasks: list[asyncio.Task[None]] = []

    def rules_for(self, user: User, namespace: str) -> RulesInfo:
        """Nodes' permissions are not enumerable (``RulesFor``)."""
        if node_identity(user.name, user.groups)[1]:
            return RulesInfo(incomplete=True, evaluation_error="node authorizer does not support user rule resolution")
        return RulesInfo()

    async def start(self) -> None:
        """Start the feeds; returns once each has applied its first list."""
        synced = [asyncio.Event() for _ in self._feeds]
        self._tasks = [asyncio.create_task(self._feed(r, vt, edges, ev), name=f"node-authz-{r.plural}")
                       for (r, vt, edges), ev in zip(self._feeds, synced, strict=True)]
        await asyncio.gather(*(ev.wait() for ev in synced))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks = []

    async def _feed(self, r: Resource, vertex_type: str,
                    edges: Callable[[Any], frozenset[tuple[g.Vertex, g.Vertex]]], synced: asyncio.Event) -> None:
        while True:
            try:
                listed = await self.registry.list(r, "", ListOptions())
                self.graph.replace(vertex_type, ((_owner(vertex_type, o), edges(o)) for o in listed.items))
                synced.set()
                opts = ListOptions(resource_version=listed.resource_version)
                async for ev in self.registry.watch(r, "", opts, send_initial=False):
                    owner = _owner(vertex_type, ev.obj)
                    if ev.type == "DELETED":
                        self.graph.delete_object(owner)
                    else:
                        self.graph.set_object(owner, edges(ev.obj))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Node authorizer: the watch of %s failed; listing again", r.plural)
            await asyncio.sleep(self.RETRY_DELAY)
