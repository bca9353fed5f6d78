"""The vocabulary the bootstrap policy is written in: rules, roles and bindings as RBAC v1 JSON.

Mirrors Kubernetes' ``rbacv1helpers`` builders (``NewRule(...).Groups(...).Resources(...)``):
every list of a rule is sorted, as ``PolicyRuleBuilder.Rule`` sorts it, so that a rule reads the
same here, in the golden files and in what the API server stores. Every object carries the
``kubernetes.io/bootstrapping: rbac-defaults`` label and the ``autoupdate: "true"`` annotation
that reconciliation looks at.
"""

from __future__ import annotations

from kybernetes.api.obj import Obj

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
BOOTSTRAP_LABEL = "kubernetes.io/bootstrapping"
BOOTSTRAP_LABEL_VALUE = "rbac-defaults"
AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"

LEGACY = ""
READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
READ_WRITE = READ + WRITE


class Rule:
    """One PolicyRule under construction; :meth:`build` gives its JSON (Go's field order)."""

    def __init__(self, *verbs: str) -> None:
        self._verbs = sorted(verbs)
        self._groups: list[str] = []
        self._resources: list[str] = []
        self._names: list[str] = []
        self._urls: list[str] = []

    def groups(self, *api_groups: str) -> Rule:
        self._groups = sorted(api_groups)
        return self

    def resources(self, *resources: str) -> Rule:
        self._resources = sorted(resources)
        return self

    def names(self, *resource_names: str) -> Rule:
        self._names = sorted(resource_names)
        return self

    def urls(self, *non_resource_urls: str) -> Rule:
        self._urls = sorted(non_resource_urls)
        return self

    def build(self) -> Obj:
        out: Obj = {"verbs": list(self._verbs)}
        for key, values in (("apiGroups", self._groups), ("resources", self._resources),
                            ("resourceNames", self._names), ("nonResourceURLs", self._urls)):
            if values:
                out[key] = list(values)
        return out


def rule(*verbs: str) -> Rule:
    return Rule(*verbs)


def url_rule(*urls: str, verbs: tuple[str, ...] = ("get",)) -> Rule:
    return Rule(*verbs).urls(*urls)


def events_rule() -> Rule:
    """``eventsRule()``: what every component that records events needs (both event APIs)."""
    return rule("create", "update", "patch").groups(LEGACY, "events.k8s.io").resources("events")


def _metadata(name: str, namespace: str = "", labels: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = {BOOTSTRAP_LABEL: BOOTSTRAP_LABEL_VALUE, **(labels or {})}
    meta["annotations"] = {AUTOUPDATE_ANNOTATION: "true"}
    return meta


def cluster_role(name: str, *rules: Rule, labels: dict[str, str] | None = None,
                 aggregate_from: str = "") -> Obj:
    """A ClusterRole; ``aggregate_from`` names the ``aggregate-to-X`` label its aggregationRule selects."""
    out: Obj = {"apiVersion": RBAC_API_VERSION, "kind": "ClusterRole", "metadata": _metadata(name, labels=labels),
                "rules": [r.build() for r in rules]}
    if aggregate_from:
        out["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {f"{RBAC_GROUP}/aggregate-to-{aggregate_from}": "true"}}]}
    return out


def role(name: str, namespace: str, *rules: Rule) -> Obj:
    return {"apiVersion": RBAC_API_VERSION, "kind": "Role", "metadata": _metadata(name, namespace),
            "rules": [r.build() for r in rules]}


def users(*names: str) -> list[Obj]:
    return [{"kind": "User", "apiGroup": RBAC_GROUP, "name": n} for n in names]


def groups(*names: str) -> list[Obj]:
    return [{"kind": "Group", "apiGroup": RBAC_GROUP, "name": n} for n in names]


def service_accounts(namespace: str, *names: str) -> list[Obj]:
    return [{"kind": "ServiceAccount", "name": n, "namespace": namespace} for n in names]


def cluster_role_binding(role_name: str, subjects: list[Obj], name: str = "") -> Obj:
    """A ClusterRoleBinding to the ClusterRole ``role_name`` (named after it unless ``name``)."""
    out: Obj = {"apiVersion": RBAC_API_VERSION, "kind": "ClusterRoleBinding", "metadata": _metadata(name or role_name),
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role_name}}
    if subjects:  # Go's omitempty: a binding without subjects has no subjects field
        out["subjects"] = subjects
    return out


def role_binding(role_name: str, namespace: str, subjects: list[Obj], name: str = "") -> Obj:
    """A RoleBinding in ``namespace`` to the Role ``role_name`` (named after it unless ``name``)."""
    return {"apiVersion": RBAC_API_VERSION, "kind": "RoleBinding",
            "metadata": _metadata(name or role_name, namespace),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role_name},
            "subjects": subjects}
