"""Classifying requests: which FlowSchema (and so which priority level) a request belongs to.

The rules are Kubernetes' (``apf_filter``'s matching): FlowSchemas are tried by ascending
``matchingPrecedence``, then name; the first whose rule matches wins. A rule matches when one of
its subjects matches the user (a ``User`` by name, a ``Group`` by membership, a
``ServiceAccount`` by ``system:serviceaccount:NS:NAME``; ``*`` for any name) and, for a resource
request, one of its resource rules matches verb, API group, resource (``pods/log`` for a
subresource) and namespace (a cluster-scoped request needs ``clusterScope``), or for a
non-resource request one of its non-resource rules matches verb and path (``/x/*`` is a prefix).
FlowSchemas whose priority level does not exist are skipped.

The cost per request is a dict lookup: a :class:`Classifier` is built (compiled to frozensets)
once per configuration change, and remembers the answer per (user, groups, verb, group,
resource, namespace, path); the subjects are matched once per user.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.httpserver.messages import header_lines

SA_PREFIX = "system:serviceaccount:"
_CACHE_LIMIT = 8192


def _names(values: Any) -> frozenset[str] | None:
    """The set of allowed values, or None for ``*`` (anything)."""
    vals = [str(x) for x in values or []]
    return None if "*" in vals else frozenset(vals)


class _Subjects:
    __slots__ = ("all_groups", "all_users", "groups", "service_accounts", "users")

    def __init__(self, subjects: list[Obj]) -> None:
        self.users: set[str] = set()
        self.groups: set[str] = set()
        self.all_users = self.all_groups = False
        self.service_accounts: dict[str, set[str] | None] = {}
        for s in subjects:
            kind = s.get("kind")
            if kind == "User":
                name = str((s.get("user") or {}).get("name") or "")
                self.all_users |= name == "*"
                self.users.add(name)
            elif kind == "Group":
                name = str((s.get("group") or {}).get("name") or "")
                self.all_groups |= name == "*"
                self.groups.add(name)
            elif kind == "ServiceAccount":
                sa = s.get("serviceAccount") or {}
                ns, name = str(sa.get("namespace") or ""), str(sa.get("name") or "")
                if name == "*":
                    self.service_accounts[ns] = None
                elif ns not in self.service_accounts or self.service_accounts[ns] is not None:
                    self.service_accounts.setdefault(ns, set()).add(name)  # type: ignore[union-attr]

    def match(self, user: str, groups: tuple[str, ...]) -> bool:
        if self.all_users or user in self.users:
            return True
        if self.all_groups or any(g in self.groups for g in groups):
            return True
        if self.service_accounts and user.startswith(SA_PREFIX):
            ns, _, name = user[len(SA_PREFIX):].partition(":")
            if ns in self.service_accounts:
                names = self.service_accounts[ns]
                return names is None or name in names
        return False


class _ResourceRule:
    __slots__ = ("cluster_scope", "groups", "namespaces", "resources", "verbs")

    def __init__(self, r: Obj) -> None:
        self.verbs = _names(r.get("verbs"))
        self.groups = _names(r.get("apiGroups"))
        self.resources = _names(r.get("resources"))
        self.namespaces = _names(r.get("namespaces"))
        self.cluster_scope = bool(r.get("clusterScope"))

    def match(self, verb: str, group: str, resource: str, namespace: str) -> bool:
        if self.verbs is not None and verb not in self.verbs:
            return False
        if self.groups is not None and group not in self.groups:
            return False
        if self.resources is not None and resource not in self.resources:
            return False
        if not namespace:
            return self.cluster_scope
        return self.namespaces is None or namespace in self.namespaces


class _NonResourceRule:
    __slots__ = ("exact", "prefixes", "verbs")

    def __init__(self, r: Obj) -> None:
        self.verbs = _names(r.get("verbs"))
        urls = [str(u) for u in r.get("nonResourceURLs") or []]
        self.exact: frozenset[str] | None = None if "*" in urls else frozenset(u for u in urls if not u.endswith("*"))
        self.prefixes = tuple(u[:-1] for u in urls if u.endswith("*") and u != "*")

    def match(self, verb: str, path: str) -> bool:
        if self.verbs is not None and verb not in self.verbs:
            return False
        if self.exact is None or path in self.exact:
            return True
        return any(path.startswith(p) for p in self.prefixes)


class _Rule:
    __slots__ = ("non_resource", "resource", "subjects")

    def __init__(self, rule: Obj) -> None:
        self.subjects = _Subjects(list(rule.get("subjects") or []))
        self.resource = tuple(_ResourceRule(r) for r in rule.get("resourceRules") or [])
        self.non_resource = tuple(_NonResourceRule(r) for r in rule.get("nonResourceRules") or [])


class Match:
    """The classification of a request: its FlowSchema, priority level and how flows are told apart."""

    __slots__ = ("distinguisher", "flow_schema", "flow_schema_uid", "headers", "level", "priority_level",
                 "priority_level_uid", "stats")

    def __init__(self, fs: Obj, pl_name: str, pl_uid: str, level: Any) -> None:
        meta = fs.get("metadata") or {}
        spec = fs.get("spec") or {}
        self.flow_schema = str(meta.get("name") or "")
        self.flow_schema_uid = str(meta.get("uid") or "")
        self.priority_level, self.priority_level_uid = pl_name, pl_uid
        self.distinguisher = str((spec.get("distinguisherMethod") or {}).get("type") or "")
        self.level = level
        self.stats: Any = None
        """This classification's metrics series (``flowcontrol.metrics.FlowStats``) when metrics are on."""
        self.headers = header_lines({"X-Kubernetes-PF-FlowSchema-UID": self.flow_schema_uid,
                                     "X-Kubernetes-PF-PriorityLevel-UID": pl_uid})
        """The two response headers, encoded once for every response of this classification."""

    def flow(self, user: str, namespace: str) -> str:
        """The flow distinguisher: the user, the namespace, or one flow for the whole schema."""
        if self.distinguisher == "ByUser":
            return user
        if self.distinguisher == "ByNamespace":
            return namespace
        return ""


class Classifier:
    """FlowSchemas compiled for matching; immutable once built (build a new one on change)."""

    def __init__(self, flow_schemas: list[Obj], levels: dict[str, tuple[str, Any]]) -> None:
        """``levels``: priority level name -> (uid, the caller's per-level state)."""
        usable = [fs for fs in flow_schemas
                  if ((fs.get("spec") or {}).get("priorityLevelConfiguration") or {}).get("name") in levels]
        usable.sort(key=lambda fs: (int((fs.get("spec") or {}).get("matchingPrecedence") or 0),
                                    str(fs["metadata"]["name"])))
        self._schemas: list[tuple[Match, tuple[_Rule, ...]]] = []
        for fs in usable:
            pl_name = fs["spec"]["priorityLevelConfiguration"]["name"]
            uid, level = levels[pl_name]
            rules = tuple(_Rule(r) for r in (fs.get("spec") or {}).get("rules") or [] if isinstance(r, dict))
            self._schemas.append((Match(fs, pl_name, uid, level), rules))
        self._by_user: dict[tuple[str, tuple[str, ...]], list[tuple[Match, tuple[_Rule, ...]]]] = {}
        self._results: dict[tuple[str, tuple[str, ...], str, str, str, str, str], Match | None] = {}

    @property
    def matches(self) -> list[Match]:
        """Every classification this classifier can return, one per usable FlowSchema."""
        return [m for m, _rules in self._schemas]

    def classify(self, user: str, groups: tuple[str, ...], verb: str, api_group: str, resource: str,
                 namespace: str, path: str, is_resource: bool) -> Match | None:
        """The matching schema (None only if even catch-all is gone and nothing matches).

        For a resource request ``path`` is ignored (pass ""), for a non-resource request the
        group, resource and namespace are.
        """
        key = (user, groups, verb, api_group, resource, namespace, path)
        found = self._results.get(key, False)
        if found is not False:
            return found  # type: ignore[return-value]
        result = self._slow(user, groups, verb, api_group, resource, namespace, path, is_resource)
        if len(self._results) >= _CACHE_LIMIT:
            self._results.clear()
        self._results[key] = result
        return result

    def _slow(self, user: str, groups: tuple[str, ...], verb: str, api_group: str, resource: str,
              namespace: str, path: str, is_resource: bool) -> Match | None:
        candidates = self._by_user.get((user, groups))
        if candidates is None:
            if len(self._by_user) >= _CACHE_LIMIT:
                self._by_user.clear()
            candidates = self._by_user[(user, groups)] = [
                (m, tuple(r for r in rules if r.subjects.match(user, groups))) for m, rules in self._schemas]
        for m, rules in candidates:
            for r in rules:
                if is_resource:
                    if any(rr.match(verb, api_group, resource, namespace) for rr in r.resource):
                        return m
                elif any(nr.match(verb, path) for nr in r.non_resource):
                    return m
        return None
