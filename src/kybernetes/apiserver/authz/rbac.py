"""The RBAC authorizer: kube-apiserver's ``--authorization-mode RBAC``, answered from memory.

Guarantees (``plugin/pkg/auth/authorizer/rbac/rbac.go`` over ``DefaultRuleResolver``):

- ``authorize`` allows a request when a rule of a role bound to the user (by name, by one of its
  groups, or as a service account), cluster-wide or in the request's namespace, allows it
  (:mod:`.rules`); otherwise it has no opinion (RBAC never denies), with the reason
  ``RBAC: <errors>`` when some binding's role could not be resolved
  (``RBAC: clusterrole.rbac.authorization.k8s.io "x" not found``), and "" otherwise. An allowed
  decision's reason names the binding, as Kubernetes' (``RBAC: allowed by ClusterRoleBinding
  "b" of ClusterRole "r" to User "jane"``).
- Its inputs are the four RBAC kinds, listed at :meth:`RBACAuthorizer.start` and followed by
  registry watches that start at the list's resourceVersion (no change is missed); a failed
  watch is re-listed and re-watched. Each change is applied to a :class:`.PolicyIndex` before
  the watch reads on, so the next request sees it (a revoked permission takes effect then).
- Per (user, groups, namespace) the resolved rules are kept, and per request shape (user, groups,
  verb, what, where) the decision; all are dropped on any RBAC change: a repeated decision costs one
  dict lookup, a new one a scan of that user's rules.
- It is :class:`.authorizer.Stable` for every user: a decision depends on the user's name and
  groups and the request's verb, what and where only, and the callbacks given to
  :meth:`RBACAuthorizer.on_change` are called on every RBAC change (so a chain's remembered
  decisions are dropped with the authorizer's own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from kybernetes.api.resources import Catalogue, Resource
from kybernetes.api.validation.govalues import go_quote
from kybernetes.apiserver.authz.authorizer import Attributes, ChangeListeners, Decision, RulesInfo
from kybernetes.apiserver.authz.rbac_policy import RBAC_GROUP, PolicyIndex, Rule, aggregate
from kybernetes.apiserver.authz.rules import CompiledRule
from kybernetes.apiserver.registry.request import ListOptions, User
from kybernetes.apiserver.registry.store import Registry

log = logging.getLogger(__name__)

KINDS = {"roles": "Role", "clusterroles": "ClusterRole", "rolebindings": "RoleBinding",
         "clusterrolebindings": "ClusterRoleBinding"}
MAX_CACHED = 8192
"""Resolved (user, groups, namespace) entries kept; beyond this the cache starts over."""
RETRY_DELAY = 0.5


class Compiled:
    """What one (user, groups, namespace) may do: rules with their source, and the errors."""

    __slots__ = ("compiled", "errors", "reason", "rules", "sources")

    def __init__(self, rules: list[Rule], sources: list[str], errors: list[str]) -> None:
        self.rules = rules
        self.compiled = [CompiledRule(r) for r in rules]
        self.sources = sources
        self.errors = errors
        self.reason = f"RBAC: {aggregate(errors)}" if errors else ""


def describe_subject(subject: dict[str, Any], binding_namespace: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f'{kind} {go_quote(name + "/" + (subject.get("namespace") or binding_namespace))}'
    return f"{kind} {go_quote(name)}"


class RBACAuthorizer:
    """The authorizer and rule resolver of ``--authorization-mode RBAC`` (see the module docstring)."""

    def __init__(self, registry: Registry, catalogue: Catalogue) -> None:
        self.registry = registry
        self.index = PolicyIndex()
        self._resources: dict[str, Resource] = {}
        for plural in KINDS:
            r = catalogue.get(RBAC_GROUP, "v1", plural)
            assert r is not None
            self._resources[plural] = r
        self._compiled: dict[tuple[str, tuple[str, ...], str], Compiled] = {}
        self._decisions: dict[tuple[Any, ...], tuple[Decision, str]] = {}
        self._listeners = ChangeListeners()
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def over(cls, index: PolicyIndex) -> RBACAuthorizer:
        """An authorizer over a policy held in memory, fed by no watch (tests, benchmarks): who
        changes ``index`` calls :meth:`forget`."""
        authz = cls.__new__(cls)
        authz.index, authz._resources, authz._tasks = index, {}, []
        authz._compiled, authz._decisions, authz._listeners = {}, {}, ChangeListeners()
        return authz

    # --- decisions -----------------------------------------------------------------------

    def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        user = attrs.user
        # Clients repeat the same requests: a decision is remembered (until any RBAC change).
        key = (user.name, user.groups, attrs.namespace, attrs.verb, attrs.api_group, attrs.resource,
               attrs.subresource, attrs.name, attrs.path if not attrs.resource_request else "")
        found = self._decisions.get(key)
        if found is not None:
            return found
        compiled = self._compiled.get((user.name, user.groups, attrs.namespace))
        if compiled is None:
            compiled = self.compiled(user.name, user.groups, attrs.namespace)
        sub = attrs.subresource
        combined = f"{attrs.resource}/{sub}" if sub else attrs.resource
        decision = Decision.NO_OPINION, compiled.reason
        for i, rule in enumerate(compiled.compiled):
            if rule.allows(attrs, combined):
                decision = Decision.ALLOW, compiled.sources[i]
                break
        if len(self._decisions) >= MAX_CACHED:
            self._decisions.clear()
        self._decisions[key] = decision
        return decision

    def stable_for(self, user: User) -> bool:
        return True  # the policy decides, and every change to it is reported (forget)

    def on_change(self, callback: Callable[[], None]) -> None:
        self._listeners.add(callback)

    def rules_for(self, user: User, namespace: str) -> RulesInfo:
        compiled = self.compiled(user.name, user.groups, namespace)
        info = RulesInfo(evaluation_error=aggregate(compiled.errors) if compiled.errors else "")
        for rule in compiled.rules:
            if rule.get("resources"):  # ResourceRule's JSON: verbs always, the rest when not empty
                info.resource_rules.append({k: list(rule.get(k) or []) for k in
                                            ("verbs", "apiGroups", "resources", "resourceNames")
                                            if k == "verbs" or rule.get(k)})
            if rule.get("nonResourceURLs"):
                info.non_resource_rules.append({"verbs": list(rule.get("verbs") or []),
                                                "nonResourceURLs": list(rule["nonResourceURLs"])})
        return info

    def compiled(self, name: str, groups: tuple[str, ...], namespace: str) -> Compiled:
        key = (name, groups, namespace)
        found = self._compiled.get(key)
        if found is None:
            if len(self._compiled) >= MAX_CACHED:
                self._drop()
            found = self._compiled[key] = self._compile(name, groups, namespace)
        return found

    def _compile(self, name: str, groups: tuple[str, ...], namespace: str) -> Compiled:
        rules: list[Rule] = []
        sources: list[str] = []
        errs: list[str] = []
        for key in self.index.bindings_for(name, groups, namespace):
            binding = self.index.bindings[key]
            ref = binding.get("roleRef") or {}
            got, err = self.index.role_ref_rules(ref, key[0])
            if got is None:
                errs.append(err)
                continue
            source = self._source(binding, key[0], name, groups)
            rules += got
            sources += [source] * len(got)
        return Compiled(rules, sources, errs)

    @staticmethod
    def _source(binding: dict[str, Any], namespace: str, name: str, groups: tuple[str, ...]) -> str:
        """``RBAC: allowed by ...``: the binding and its first subject that names the user."""
        subject: dict[str, Any] = {}
        for s in binding.get("subjects") or ():
            if not isinstance(s, dict):
                continue
            kind, sname = s.get("kind"), s.get("name")
            ns = s.get("namespace") or namespace
            if ((kind == "User" and sname == name) or (kind == "Group" and sname in groups)
                    or (kind == "ServiceAccount" and ns and name == f"system:serviceaccount:{ns}:{sname}")):
                subject = s
                break
        ref = binding.get("roleRef") or {}
        bname = binding["metadata"]["name"]
        what = (f'RoleBinding {go_quote(bname + "/" + namespace)}' if namespace
                else f"ClusterRoleBinding {go_quote(bname)}")
        return (f'RBAC: allowed by {what} of {ref.get("kind", "")} {go_quote(ref.get("name", ""))} '
                f"to {describe_subject(subject, namespace)}")

    # --- the watch-fed index ----------------------------------------------------------------

    def forget(self) -> None:
        """The policy changed: drop every resolved entry and remembered decision, here and in
        whoever listens (:meth:`on_change`)."""
        self._drop()
        self._listeners.notify()

    def _drop(self) -> None:
        self._compiled.clear()
        self._decisions.clear()

    def apply(self, event_type: str, kind: str, obj: dict[str, Any]) -> None:
        """One watch event: the index changes and every resolved entry is dropped."""
        if event_type == "DELETED":
            self.index.remove(kind, obj)
        else:
            self.index.put(kind, obj)
        self.forget()

    async def _list(self, plural: str) -> str:
        """List one kind into the index (replacing what it held of that kind); its resourceVersion."""
        res = await self.registry.list(self._resources[plural], "", ListOptions())
        kind = KINDS[plural]
        for key in list(self._keys_of(kind)):
            self.index.remove(kind, {"metadata": {"namespace": key[0], "name": key[1]}})
        for obj in res.items:
            self.index.put(kind, obj)
        self.forget()
        return res.resource_version

    def _keys_of(self, kind: str) -> list[tuple[str, str]]:
        if kind == "Role":
            return list(self.index.roles)
        if kind == "ClusterRole":
            return [("", n) for n in self.index.cluster_roles]
        cluster = kind == "ClusterRoleBinding"
        return [k for k in self.index.bindings if (k[0] == "") == cluster]

    async def start(self) -> None:
        """List the four kinds, then follow each from its list's resourceVersion."""
        versions = {plural: await self._list(plural) for plural in KINDS}
        self._tasks = [asyncio.create_task(self._follow(plural, rv), name=f"rbac-watch-{plural}")
                       for plural, rv in versions.items()]

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks = []

    async def _follow(self, plural: str, rv: str) -> None:
        kind, r = KINDS[plural], self._resources[plural]
        while True:
            try:
                async for ev in self.registry.watch(r, "", ListOptions(resource_version=rv), send_initial=False):
                    self.apply(ev.type, kind, ev.obj)
                    rv = str(ev.revision)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("RBAC watch of %s failed; listing again", plural)
                await asyncio.sleep(RETRY_DELAY)
                with contextlib.suppress(Exception):
                    rv = await self._list(plural)
