"""RBAC's rule resolution and rule coverage, over Roles, ClusterRoles and their bindings in memory.

Kubernetes' ``pkg/registry/rbac/validation`` (``rule.go``: ``DefaultRuleResolver``,
``appliesTo``; ``policy_comparator.go``: ``Covers``; ``policy_compact.go``; ``ConfirmNoEscalation``).

:class:`PolicyIndex` holds the four kinds as stored objects and indexes every binding by the
subjects it names, so :meth:`PolicyIndex.rules_for` touches only the bindings naming the user,
one of its groups, or (for a service account ``system:serviceaccount:NS:NAME``) that account:

- a ClusterRoleBinding applies in every namespace and at the cluster scope;
- a RoleBinding applies only to requests in its namespace; a ServiceAccount subject without a
  namespace means the binding's namespace (in a ClusterRoleBinding it matches nobody);
- a binding whose role is missing contributes no rules but an error, worded as the informer
  listers word it (``clusterrole.rbac.authorization.k8s.io "x" not found``) or, with
  ``storage_errors``, as the registry does (``clusterroles.rbac.authorization.k8s.io "x" not found``).

:func:`covers` is ``Covers`` (every servant rule broken down to one verb/group/resource/name and
checked against some owner rule) and :func:`escalation_message` is ``ConfirmNoEscalation``'s
error, missing rules compacted and listed one a line, sorted as Go's ``sets.String``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kybernetes.api.validation.govalues import go_quote
from kybernetes.apiserver.authz.covers import uncovered

RBAC_GROUP = "rbac.authorization.k8s.io"
SA_PREFIX = "system:serviceaccount:"
Rule = dict[str, Any]
BindingKey = tuple[str, str]
"""(namespace, name) of a binding; namespace "" for a ClusterRoleBinding."""
SubjectKey = tuple[str, str, str]
"""(scope namespace or "", "u" or "g", user or group name)."""

FULL_AUTHORITY: tuple[Rule, ...] = (
    {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
    {"verbs": ["*"], "nonResourceURLs": ["*"]},
)


@dataclass(frozen=True, slots=True)
class Resolved:
    """The rules that apply to a user in a namespace, and the errors met resolving them."""

    rules: tuple[Rule, ...]
    errors: tuple[str, ...]


def aggregate(errs: Sequence[str]) -> str:
    """``utilerrors.NewAggregate(errs).Error()``: one message alone, several deduplicated in brackets."""
    if len(errs) == 1:
        return errs[0]
    seen = list(dict.fromkeys(errs))
    return seen[0] if len(seen) == 1 else "[" + ", ".join(seen) + "]"


def subject_keys(binding: dict[str, Any], scope: str) -> set[SubjectKey]:
    """The index keys of a binding's subjects (``appliesToUser`` turned into lookups)."""
    keys: set[SubjectKey] = set()
    for s in binding.get("subjects") or ():
        if not isinstance(s, dict):
            continue
        kind, name = s.get("kind"), s.get("name") or ""
        if kind == "User":
            keys.add((scope, "u", name))
        elif kind == "Group":
            keys.add((scope, "g", name))
        elif kind == "ServiceAccount":
            ns = s.get("namespace") or scope
            if ns:
                keys.add((scope, "u", f"{SA_PREFIX}{ns}:{name}"))
    return keys


class PolicyIndex:
    """The four RBAC kinds in memory, bindings indexed by subject. Not thread-safe (one loop)."""

    def __init__(self, *, storage_errors: bool = False) -> None:
        self.roles: dict[tuple[str, str], list[Rule]] = {}
        self.cluster_roles: dict[str, list[Rule]] = {}
        self.bindings: dict[BindingKey, dict[str, Any]] = {}
        self.by_subject: dict[SubjectKey, dict[BindingKey, None]] = {}
        self._subjects_of: dict[BindingKey, set[SubjectKey]] = {}
        self.storage_errors = storage_errors

    @classmethod
    def of(cls, roles: Iterable[dict[str, Any]] = (), cluster_roles: Iterable[dict[str, Any]] = (),
           role_bindings: Iterable[dict[str, Any]] = (), cluster_role_bindings: Iterable[dict[str, Any]] = (),
           *, storage_errors: bool = False) -> PolicyIndex:
        index = cls(storage_errors=storage_errors)
        for kind, objs in (("Role", roles), ("ClusterRole", cluster_roles), ("RoleBinding", role_bindings),
                           ("ClusterRoleBinding", cluster_role_bindings)):
            for obj in objs:
                index.put(kind, obj)
        return index

    # --- changes --------------------------------------------------------------------------

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        if kind == "Role":
            self.roles[(ns, name)] = [r for r in obj.get("rules") or () if isinstance(r, dict)]
        elif kind == "ClusterRole":
            self.cluster_roles[name] = [r for r in obj.get("rules") or () if isinstance(r, dict)]
        else:
            scope = ns if kind == "RoleBinding" else ""
            key = (scope, name)
            self._unindex(key)
            self.bindings[key] = obj
            subjects = subject_keys(obj, scope)
            self._subjects_of[key] = subjects
            for sk in subjects:
                self.by_subject.setdefault(sk, {})[key] = None

    def remove(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        ns, name = meta.get("namespace") or "", meta.get("name") or ""
        if kind == "Role":
            self.roles.pop((ns, name), None)
        elif kind == "ClusterRole":
            self.cluster_roles.pop(name, None)
        else:
            key = (ns if kind == "RoleBinding" else "", name)
            self._unindex(key)
            self.bindings.pop(key, None)

    def _unindex(self, key: BindingKey) -> None:
        for sk in self._subjects_of.pop(key, ()):
            entries = self.by_subject.get(sk)
            if entries is not None:
                entries.pop(key, None)
                if not entries:
                    del self.by_subject[sk]

    # --- resolution -----------------------------------------------------------------------

    def role_ref_rules(self, ref: dict[str, Any], namespace: str) -> tuple[list[Rule] | None, str]:
        """``GetRoleReferenceRules``: the rules of a binding's role, or None and the error."""
        kind, name = ref.get("kind"), ref.get("name") or ""
        if kind == "Role":
            rules = self.roles.get((namespace, name))
            what = "roles" if self.storage_errors else "role"
        elif kind == "ClusterRole":
            rules = self.cluster_roles.get(name)
            what = "clusterroles" if self.storage_errors else "clusterrole"
        else:
            return None, f'unsupported role reference kind: "{kind}"'
        if rules is None:
            return None, f'{what}.{RBAC_GROUP} "{name}" not found'
        return rules, ""

    def bindings_for(self, name: str, groups: Sequence[str], namespace: str) -> list[BindingKey]:
        """The bindings naming the user, one of its groups or its service account: cluster
        bindings first, then those of ``namespace`` (``VisitRulesFor``'s order), each once."""
        found: dict[BindingKey, None] = {}
        scopes = ("", namespace) if namespace else ("",)
        for scope in scopes:
            for sk in ((scope, "u", name), *((scope, "g", g) for g in groups)):
                entries = self.by_subject.get(sk)
                if entries:
                    found.update(entries)
        return list(found)

    def rules_for(self, name: str, groups: Sequence[str], namespace: str) -> Resolved:
        rules: list[Rule] = []
        errs: list[str] = []
        for key in self.bindings_for(name, groups, namespace):
            binding = self.bindings[key]
            got, err = self.role_ref_rules(binding.get("roleRef") or {}, key[0])
            if got is None:
                errs.append(err)
            else:
                rules.extend(got)
        return Resolved(tuple(rules), tuple(errs))


# --- the escalation message (coverage itself: authz/covers.py) -----------------------------------


def _list(rule: Rule, field: str) -> list[str]:
    value = rule.get(field)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def compact(rules: Sequence[Rule]) -> list[Rule]:
    """``CompactRules``: rules of one group and one resource (and nothing else) merge their verbs."""
    out: list[Rule] = []
    simple: dict[tuple[str, str], Rule] = {}
    for rule in rules:
        groups, resources = _list(rule, "apiGroups"), _list(rule, "resources")
        is_simple = (len(groups) == 1 and len(resources) == 1 and not _list(rule, "resourceNames")
                     and not _list(rule, "nonResourceURLs"))
        if not is_simple:
            out.append(rule)
        elif (groups[0], resources[0]) in simple:
            simple[(groups[0], resources[0])]["verbs"] += _list(rule, "verbs")
        else:
            simple[(groups[0], resources[0])] = {"apiGroups": groups, "resources": resources,
                                                 "verbs": list(_list(rule, "verbs"))}
    return out + list(simple.values())


def _go_quoted(values: Sequence[str]) -> str:
    """Go's ``%q`` of a []string: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def compact_string(rule: Rule) -> str:
    """``CompactString``: ``{APIGroups:[""], Resources:["pods"], Verbs:["get"]}``."""
    parts = [f"{label}:{_go_quoted(_list(rule, field))}"
             for label, field in (("APIGroups", "apiGroups"), ("Resources", "resources"),
                                  ("NonResourceURLs", "nonResourceURLs"), ("ResourceNames", "resourceNames"),
                                  ("Verbs", "verbs"))
             if _list(rule, field)]
    return "{" + ", ".join(parts) + "}"


def escalation_message(user: str, groups: Sequence[str], owner: Resolved, rules: Iterable[Rule]) -> str:
    """``ConfirmNoEscalation``'s error text, or "" when the owner's rules cover ``rules``."""
    missing = uncovered(owner.rules, rules)
    if not missing:
        return ""
    described = sorted({compact_string(r) for r in compact(missing)})
    msg = (f"user {go_quote(user)} (groups={_go_quoted(groups)}) is attempting to grant RBAC permissions "
           "not currently held:\n" + "\n".join(described))
    if owner.errors:
        msg += "; resolution errors: [" + aggregate(owner.errors) + "]"
    return msg
