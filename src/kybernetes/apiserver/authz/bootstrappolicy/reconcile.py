"""The ``rbac/bootstrap-roles`` post-start hook: the bootstrap policy, reconciled on every start.

Kubernetes' ``pkg/registry/rbac/reconciliation`` in its union mode, as kube-apiserver runs it:

* a missing object is created;
* an object whose ``rbac.authorization.kubernetes.io/autoupdate`` annotation is ``"false"`` is
  *protected* and left alone (a warning names what it lacks);
* otherwise the expected labels and annotations are added where the key is missing (existing
  values win), the rules the object does not cover are appended as their breakdown (one verb,
  group, resource, name each; nothing is removed), missing aggregationRule selectors are added
  (or the aggregationRule dropped when the expected role has none), and missing subjects are
  appended to a binding; a binding whose roleRef differs is deleted and created again (roleRef
  is immutable).

Several API servers may start at once: a write that loses a race (Conflict, AlreadyExists,
NotFound) recomputes from what is stored now and tries again.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass, field
from typing import Any

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.apiserver.authz import bootstrappolicy
from kybernetes.apiserver.authz.bootstrappolicy.builders import AUTOUPDATE_ANNOTATION, RBAC_GROUP
from kybernetes.apiserver.authz.covers import uncovered
from kybernetes.apiserver.registry.request import DeleteOptions, RequestContext
from kybernetes.apiserver.registry.store import Registry

log = logging.getLogger(__name__)

NONE, CREATE, UPDATE, RECREATE = "none", "create", "update", "recreate"
_ATTEMPTS = 10


@dataclass
class Reconciliation:
    """What reconciling one object decided: the operation, the object to write, and what was missing."""

    operation: str
    obj: Obj
    protected: bool = False
    missing: list[Any] = field(default_factory=list)


def _protected(existing: Obj) -> bool:
    return (existing.get("metadata", {}).get("annotations") or {}).get(AUTOUPDATE_ANNOTATION) == "false"


def _merge_meta(result: Obj, existing: Obj, expected: Obj) -> bool:
    """Add the expected labels and annotations whose keys are missing; True if anything changed."""
    changed = False
    meta, old = result.setdefault("metadata", {}), existing.get("metadata", {})
    for key in ("annotations", "labels"):
        merged = {**(expected["metadata"].get(key) or {}), **(old.get(key) or {})}
        if merged != (old.get(key) or {}):
            meta[key], changed = merged, True
    return changed


def _selectors(role: Obj) -> list[Obj]:
    return list((role.get("aggregationRule") or {}).get("clusterRoleSelectors") or [])


def reconcile_role(existing: Obj | None, expected: Obj) -> Reconciliation:
    """``computeReconciledRole`` (union: never removes a rule) for a Role or ClusterRole."""
    if existing is None:
        return Reconciliation(CREATE, copy.deepcopy(expected), missing=list(expected.get("rules") or []))
    result = _shallow(existing)
    changed = _merge_meta(result, existing, expected)
    have = existing.get("rules") or []
    # A rule stored as it is expected covers itself: only the others need RBAC's Covers (the
    # breakdown and comparison of every rule is most of an API server's restart otherwise).
    missing = uncovered(have, [r for r in expected.get("rules") or [] if r not in have])
    if missing:
        result["rules"] = list(existing.get("rules") or []) + missing
        changed = True
    wanted, have = _selectors(expected), _selectors(existing)
    if "aggregationRule" not in expected and "aggregationRule" in existing:
        del result["aggregationRule"]
        changed = True
    elif [s for s in wanted if s not in have]:
        result["aggregationRule"] = {"clusterRoleSelectors": have + [s for s in wanted if s not in have]}
        changed = True
    return _decided(changed, result, existing, missing)


def _shallow(existing: Obj) -> Obj:
    """A copy to reconcile into: top level and metadata copied (the only parts changed in place)."""
    return {**existing, "metadata": dict(existing.get("metadata") or {})}


def _decided(changed: bool, result: Obj, existing: Obj, missing: list[Any]) -> Reconciliation:
    """The reconciliation; an object to be written is deep-copied, so that the write owns all of it."""
    return Reconciliation(UPDATE if changed else NONE, copy.deepcopy(result) if changed else result,
                          _protected(existing), missing)


def _subject_key(subject: Obj) -> tuple[str, str, str, str]:
    return (subject.get("kind", ""), subject.get("apiGroup", ""), subject.get("name", ""),
            subject.get("namespace", ""))


def reconcile_binding(existing: Obj | None, expected: Obj) -> Reconciliation:
    """``computeReconciledRoleBinding`` (union: never removes a subject)."""
    if existing is None:
        return Reconciliation(CREATE, copy.deepcopy(expected), missing=list(expected.get("subjects") or []))
    if existing.get("roleRef") != expected.get("roleRef"):
        return Reconciliation(RECREATE, copy.deepcopy(expected), _protected(existing))
    result = _shallow(existing)
    changed = _merge_meta(result, existing, expected)
    have = {_subject_key(s) for s in existing.get("subjects") or []}
    missing = [s for s in expected.get("subjects") or [] if _subject_key(s) not in have]
    if missing:
        result["subjects"] = list(existing.get("subjects") or []) + missing
        changed = True
    return _decided(changed, result, existing, missing)


def _describe(obj: Obj, plural: str) -> str:
    meta = obj["metadata"]
    where = f" in {meta['namespace']}" if meta.get("namespace") else ""
    return f"{plural}.{RBAC_GROUP}/{meta['name']}{where}"


async def _write(registry: Registry, plural: str, expected: Obj, ctx: RequestContext) -> None:
    """Reconcile one object until a write sticks (or nothing needs writing)."""
    r = registry.catalogue.get(RBAC_GROUP, "v1", plural)
    assert r is not None
    namespace, name = expected["metadata"].get("namespace", ""), expected["metadata"]["name"]
    reconcile = reconcile_binding if plural.endswith("bindings") else reconcile_role
    for _attempt in range(_ATTEMPTS):
        existing: Obj | None = None
        with contextlib.suppress(errors.NotFound):
            existing = await registry.get(r, namespace, name)
        result = reconcile(existing, expected)
        if result.protected:
            if result.operation != NONE:
                log.warning("skipped reconcile-protected %s with missing %s", _describe(expected, plural),
                            result.missing)
            return
        try:
            if result.operation == CREATE:
                await registry.create(r, namespace, result.obj, ctx)
            elif result.operation == UPDATE:
                await registry.update(r, namespace, name, result.obj, ctx)
            elif result.operation == RECREATE:
                await registry.delete(r, namespace, name, DeleteOptions(), ctx)
                result.obj["metadata"].pop("resourceVersion", None)
                await registry.create(r, namespace, result.obj, ctx)
        except (errors.Conflict, errors.AlreadyExists, errors.NotFound):
            continue  # another API server wrote it meanwhile: recompute from what is stored now
        if result.operation != NONE:
            log.info("%s %s", {CREATE: "created", UPDATE: "updated", RECREATE: "recreated"}[result.operation],
                     _describe(expected, plural))
        return
    raise errors.Conflict(f"could not reconcile {_describe(expected, plural)}: too many concurrent writes")


async def ensure_rbac_policy(registry: Registry, ctx: RequestContext) -> None:
    """The post-start hook: every bootstrap ClusterRole, ClusterRoleBinding, Role and RoleBinding."""
    plan: list[tuple[str, list[Obj]]] = [
        ("clusterroles", bootstrappolicy.all_cluster_roles()),
        ("clusterrolebindings", bootstrappolicy.all_cluster_role_bindings()),
        ("roles", bootstrappolicy.namespace_roles()),
        ("rolebindings", bootstrappolicy.namespace_role_bindings()),
    ]
    for plural, objects in plan:
        for obj in objects:
            await _write(registry, plural, obj, ctx)
