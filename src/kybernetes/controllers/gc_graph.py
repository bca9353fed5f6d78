"""The garbage collector's dependency graph: who owns whom, by uid.

Kubernetes' ``GraphBuilder`` (``pkg/controller/garbagecollector/graph_builder.go``) turns the
events of every monitored resource into a graph of nodes keyed by uid. Each node knows its
identity (apiVersion, kind, namespace, name, uid), its ``ownerReferences`` and the nodes that
name it as owner (its dependents). This module is that graph and the event processing, without
any I/O: it tells its user what to look at through two callbacks,

- ``attempt_to_delete(node)``: this node may have lost its owners, or is waiting for its
  dependents (foreground deletion), or is a *virtual* node to verify;
- ``attempt_to_orphan(node)``: this owner is being deleted with the ``orphan`` finalizer.

A *virtual* node stands for an owner that some ownerReference names but no monitor has shown
(yet): its existence is checked by a live read (the worker), and it is dropped (a "virtual
delete", which makes its dependents candidates for collection) when that read says the owner is
absent or has another uid. Event handlers run on the event loop one at a time, so the graph needs
no locks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from kybernetes.api.obj import Obj

log = logging.getLogger(__name__)

ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"


@dataclass(frozen=True)
class Identity:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind}.{self.api_version} {where} ({self.uid})"


@dataclass(eq=False)
class Node:
    identity: Identity
    owners: list[Obj] = field(default_factory=list)
    """The ownerReferences as last observed (empty for virtual nodes)."""
    dependents: dict[str, Node] = field(default_factory=dict)
    """uid -> dependent node."""
    virtual: bool = False
    being_deleted: bool = False
    deleting_dependents: bool = False
    invalid_owner_uids: frozenset[str] = frozenset()
    """Owner uids named by this (cluster-scoped) node that cannot own it (namespaced kinds)."""

    @property
    def uid(self) -> str:
        return self.identity.uid

    def owner_ref(self, owner_uid: str) -> Obj | None:
        return next((r for r in self.owners if r.get("uid") == owner_uid), None)

    def blocking_dependents(self) -> list[Node]:
        """Dependents whose reference to this node has ``blockOwnerDeletion: true``."""
        out = []
        for dep in self.dependents.values():
            ref = dep.owner_ref(self.uid)
            if ref is not None and ref.get("blockOwnerDeletion"):
                out.append(dep)
        return out


def has_finalizer(obj: Obj, name: str) -> bool:
    return name in ((obj.get("metadata") or {}).get("finalizers") or [])


def is_deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


class Graph:
    """The uid -> node map and the rules that keep it in step with observed objects."""

    def __init__(self, attempt_to_delete: Callable[[Node], None], attempt_to_orphan: Callable[[Node], None],
                 is_invalid_owner: Callable[[Obj, str], bool] | None = None) -> None:
        self.nodes: dict[str, Node] = {}
        self.attempt_to_delete = attempt_to_delete
        self.attempt_to_orphan = attempt_to_orphan
        # (ownerReference, dependent namespace) -> whether that ownerReference can never be valid
        # (a namespaced owner of a cluster-scoped dependent). Unknown kinds count as valid.
        self.is_invalid_owner = is_invalid_owner or (lambda _ref, _ns: False)
        self.invalid_refs_seen: list[tuple[Identity, Obj]] = []
        """(dependent, ownerReference) pairs found invalid, for the user to report once each."""

    def __len__(self) -> int:
        return len(self.nodes)

    def get(self, uid: str) -> Node | None:
        return self.nodes.get(uid)

    # -- observed events -----------------------------------------------------------------------

    def observe(self, identity: Identity, obj: Obj) -> Node:
        """An add or update event for ``obj`` (whose identity the monitor computed)."""
        owners = [dict(r) for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("uid")]
        node = self.nodes.get(identity.uid)
        if node is None:
            node = Node(identity, owners=owners)
            self._check_invalid(node)
            self.nodes[identity.uid] = node
            self._link_owners(node, node.owners)
        else:
            if node.virtual:
                node.virtual = False
                if node.identity != identity and node.dependents:
                    # Dependents named this owner by other coordinates than the real ones: have them
                    # re-checked (an ownerReference with a wrong kind or namespace points at nothing).
                    for dep in list(node.dependents.values()):
                        self.attempt_to_delete(dep)
                node.identity = identity
            self._update_owners(node, owners)
        self._process_transitions(node, obj)
        return node

    def forget(self, uid: str) -> None:
        """A delete event (or a virtual delete): the node leaves; its dependents may be orphans."""
        node = self.nodes.pop(uid, None)
        if node is None:
            return
        for ref in node.owners:
            owner = self.nodes.get(ref.get("uid", ""))
            if owner is None:
                continue
            owner.dependents.pop(uid, None)
            if owner.deleting_dependents:
                self.attempt_to_delete(owner)  # one blocking dependent fewer
            elif owner.virtual and not owner.dependents:
                # Nobody names this unobserved owner any more: no reason to keep it.
                self.nodes.pop(owner.uid, None)
        for dep in list(node.dependents.values()):
            self.attempt_to_delete(dep)

    def virtual_delete(self, uid: str) -> bool:
        """The worker found a virtual node's owner absent: drop it unless it was observed meanwhile."""
        node = self.nodes.get(uid)
        if node is None or not node.virtual:
            return False
        self.forget(uid)
        return True

    # -- internals -----------------------------------------------------------------------------

    def _check_invalid(self, node: Node) -> None:
        bad = set()
        for ref in node.owners:
            if self.is_invalid_owner(ref, node.identity.namespace):
                bad.add(ref["uid"])
                self.invalid_refs_seen.append((node.identity, ref))
        node.invalid_owner_uids = frozenset(bad)

    def _link_owners(self, node: Node, refs: list[Obj]) -> None:
        for ref in refs:
            if ref["uid"] in node.invalid_owner_uids:
                continue
            owner = self.nodes.get(ref["uid"])
            if owner is None:
                owner = Node(Identity(str(ref.get("apiVersion", "")), str(ref.get("kind", "")),
                                      node.identity.namespace, str(ref.get("name", "")), ref["uid"]),
                             virtual=True)
                self.nodes[owner.uid] = owner
                self.attempt_to_delete(owner)  # does it exist?
            owner.dependents[node.uid] = node

    def _update_owners(self, node: Node, owners: list[Obj]) -> None:
        old = {r["uid"]: r for r in node.owners}
        new = {r["uid"]: r for r in owners}
        if old == new:
            node.owners = owners
            return
        node.owners = owners
        old_invalid = node.invalid_owner_uids
        self._check_invalid(node)
        added = [r for uid, r in new.items() if uid not in old]
        removed = [r for uid, r in old.items() if uid not in new]
        self._link_owners(node, added)
        for ref in removed:
            owner = self.nodes.get(ref["uid"])
            if owner is None:
                continue
            owner.dependents.pop(node.uid, None)
            if owner.deleting_dependents:
                self.attempt_to_delete(owner)
            elif owner.virtual and not owner.dependents:
                self.nodes.pop(owner.uid, None)
        for uid, ref in new.items():
            before = old.get(uid)
            if before is None:
                continue
            if uid in old_invalid and uid not in node.invalid_owner_uids:
                self._link_owners(node, [ref])
            if before.get("blockOwnerDeletion") and not ref.get("blockOwnerDeletion"):
                owner = self.nodes.get(uid)
                if owner is not None and owner.deleting_dependents:
                    self.attempt_to_delete(owner)  # no longer blocked by this dependent

    def _process_transitions(self, node: Node, obj: Obj) -> None:
        if not is_deleting(obj):
            return
        node.being_deleted = True
        if has_finalizer(obj, ORPHAN_FINALIZER):
            self.attempt_to_orphan(node)
        # Level, not edge: once the finalizer is gone the node is merely being deleted.
        node.deleting_dependents = has_finalizer(obj, FOREGROUND_FINALIZER)
        if node.deleting_dependents:
            for dep in list(node.dependents.values()):
                self.attempt_to_delete(dep)
            self.attempt_to_delete(node)
