"""RBAC privilege-escalation prevention: nobody grants what it does not hold.

Kubernetes' ``pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased``
and ``escalation_check.go``, as registry create/update hooks (:func:`install`). Guarantees, for a
request whose user is not in ``system:masters`` and when the server authorizes requests
(``authorizer()`` is not None; with ``AlwaysAllow`` alone nothing is checked):

- A Role or ClusterRole may be created or updated when the user is allowed ``escalate`` on it
  (the request's group, resource and namespace; its name on update, none on create), or when
  the rules the user holds in the role's namespace (cluster-wide for a ClusterRole) cover every
  rule of the role. Otherwise 403: ``roles.rbac.authorization.k8s.io "r" is forbidden: user
  "jane" (groups=[...]) is attempting to grant RBAC permissions not currently held:`` and the
  missing rules, compacted, one a line. A ClusterRole with an ``aggregationRule`` (before or
  after the update) further needs full authority: ``must have cluster-admin privileges to use
  the aggregationRule``.
- A RoleBinding or ClusterRoleBinding may be created or updated when the user is allowed
  ``bind`` on the referenced role (resource ``roles``/``clusterroles``, its name, the binding's
  namespace), or holds every rule of it; a missing role is 404 in the registry's words.
- An update that changes only ownerReferences, finalizers or managedFields is not checked
  (``IsOnlyMutatingGCFields``), so the garbage collector can always do its work.

The user's rules are resolved from a consistent read of the store (as Kubernetes' registry-backed
resolver), not the authorizer's cache, so a grant just written counts at once. A roleRef of an
unsupported kind is left to validation (422) rather than failing as Kubernetes' internal error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kybernetes import errors
from kybernetes.api.resources import Resource
from kybernetes.apiserver.authz.authorizer import PRIVILEGED_GROUP, Attributes, Authorizer, Decision
from kybernetes.apiserver.authz.rbac_policy import (
    FULL_AUTHORITY,
    RBAC_GROUP,
    PolicyIndex,
    Resolved,
    escalation_message,
)
from kybernetes.apiserver.registry.request import ListOptions, RequestContext, User
from kybernetes.apiserver.registry.store import Registry

Obj = dict[str, Any]
ROLE_RESOURCES = {"Role": "roles", "ClusterRole": "clusterroles"}
AGGREGATION_MESSAGE = "must have cluster-admin privileges to use the aggregationRule"


def only_gc_fields_changed(new: Obj, old: Obj | None) -> bool:
    """``IsOnlyMutatingGCFields``: the update differs from ``old`` only in GC-owned metadata."""
    if old is None:
        return False
    copied = copy.deepcopy(new)
    meta, old_meta = copied.setdefault("metadata", {}), old.get("metadata") or {}
    for f in ("ownerReferences", "finalizers", "managedFields", "selfLink"):
        meta.pop(f, None)
        if f in old_meta:
            meta[f] = old_meta[f]
    return copied == old


def has_aggregation_rule(obj: Obj | None) -> bool:
    rule = (obj or {}).get("aggregationRule")
    return isinstance(rule, dict) and bool(rule.get("clusterRoleSelectors"))


def forbidden(plural: str, name: str, message: str) -> errors.Forbidden:
    """``errors.NewForbidden(rbac.Resource(plural), name, err)``."""
    return errors.Forbidden(f'{plural}.{RBAC_GROUP} "{name}" is forbidden: {message}',
                            details={"name": name, "group": RBAC_GROUP, "kind": plural} if name
                            else {"group": RBAC_GROUP, "kind": plural})


class EscalationCheck:
    """The create/update hooks of the four RBAC kinds (see the module docstring)."""

    def __init__(self, authorizer: Callable[[], Authorizer | None]) -> None:
        self.authorizer = authorizer

    def _checked(self, user: User) -> Authorizer | None:
        """The authorizer to ask, or None when this request is not checked at all."""
        if PRIVILEGED_GROUP in user.groups:
            return None
        return self.authorizer()

    @staticmethod
    async def resolve(registry: Registry, user: User, namespace: str) -> Resolved:
        """The user's rules in ``namespace``, from a consistent read (``RulesFor``)."""
        def res(plural: str) -> Resource:
            r = registry.catalogue.get(RBAC_GROUP, "v1", plural)
            assert r is not None
            return r

        async def items(plural: str, ns: str = "") -> list[Obj]:
            return (await registry.list(res(plural), ns, ListOptions())).items

        index = PolicyIndex.of(
            roles=await items("roles", namespace) if namespace else (),
            cluster_roles=await items("clusterroles"),
            role_bindings=await items("rolebindings", namespace) if namespace else (),
            cluster_role_bindings=await items("clusterrolebindings"),
            storage_errors=True)
        return index.rules_for(user.name, user.groups, namespace)

    async def _confirm(self, registry: Registry, user: User, namespace: str, plural: str, name: str,
                       rules: list[Obj]) -> Resolved:
        owner = await self.resolve(registry, user, namespace)
        if msg := escalation_message(user.name, user.groups, owner, rules):
            raise forbidden(plural, name, msg)
        return owner

    async def role(self, registry: Registry, r: Resource, obj: Obj, old: Obj | None, ctx: RequestContext) -> None:
        authz = self._checked(ctx.user)
        if authz is None:
            return
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        escalate = Attributes(ctx.user, "escalate", True, RBAC_GROUP, "*", ns, r.plural, "",
                              name if old is not None else "")
        if authz.authorize(escalate)[0] is Decision.ALLOW or only_gc_fields_changed(obj, old):
            return
        rules = [rule for rule in obj.get("rules") or () if isinstance(rule, dict)]
        owner = await self._confirm(registry, ctx.user, ns, r.plural, name, rules)
        aggregating = r.kind == "ClusterRole" and (has_aggregation_rule(obj) or has_aggregation_rule(old))
        if aggregating and escalation_message(ctx.user.name, ctx.user.groups, owner, FULL_AUTHORITY):
            raise forbidden(r.plural, name, AGGREGATION_MESSAGE)

    async def binding(self, registry: Registry, r: Resource, obj: Obj, old: Obj | None,
                      ctx: RequestContext) -> None:
        authz = self._checked(ctx.user)
        if authz is None or only_gc_fields_changed(obj, old):
            return
        meta, ref = obj.get("metadata") or {}, obj.get("roleRef") or {}
        ns = meta.get("namespace") or "" if r.kind == "RoleBinding" else ""
        role_plural = ROLE_RESOURCES.get(ref.get("kind") or "")
        if role_plural is None or not ref.get("name"):
            return  # no role named: validation answers 422
        bind = Attributes(ctx.user, "bind", True, ref.get("apiGroup") or "", "", ns, role_plural, "",
                          ref.get("name") or "")
        if authz.authorize(bind)[0] is Decision.ALLOW:
            return
        role_resource = registry.catalogue.get(RBAC_GROUP, "v1", role_plural)
        assert role_resource is not None
        role = await registry.get(role_resource, ns if role_plural == "roles" else "", ref.get("name") or "")
        rules = [rule for rule in role.get("rules") or () if isinstance(rule, dict)]
        await self._confirm(registry, ctx.user, ns, r.plural, meta.get("name") or "", rules)


def install(registry: Registry, authorizer: Callable[[], Authorizer | None]) -> EscalationCheck:
    """Register the escalation checks of the four RBAC kinds (create and update)."""
    check = EscalationCheck(authorizer)
    for kind, hook in (("Role", check.role), ("ClusterRole", check.role), ("RoleBinding", check.binding),
                       ("ClusterRoleBinding", check.binding)):
        registry.create_hooks.setdefault((RBAC_GROUP, kind), []).append(hook)
        registry.update_hooks.setdefault((RBAC_GROUP, kind), []).append(hook)
    return check
