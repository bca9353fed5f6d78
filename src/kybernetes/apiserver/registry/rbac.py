"""Strategies of rbac.authorization.k8s.io: Roles, ClusterRoles and their bindings.

Each class mirrors one kind's ``pkg/registry/<group>/<kind>/strategy.go`` together with its
``pkg/apis/<group>/validation`` rules and ``v1`` defaults; field paths and messages are
Kubernetes' own, because clients print them verbatim.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.label_selectors import validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, as_list, names_msgs, path_segment_name_msgs
from kybernetes.apiserver.registry.strategy import Obj, Strategy

# --- rbac.authorization.k8s.io -----------------------------------------------------------------

RBAC_GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")


def validate_policy_rule(rule: Any, path: Path, *, namespaced: bool) -> list[FieldError]:
    """``ValidatePolicyRule``: verbs, and either resources with API groups or non-resource URLs."""
    rule = as_dict(rule)
    errs: list[FieldError] = []
    if not as_list(rule.get("verbs")):
        errs.append(v.required(path.child("verbs"), "verbs must contain at least one value"))
    urls = as_list(rule.get("nonResourceURLs"))
    if urls:
        if namespaced:
            errs.append(v.invalid(path.child("nonResourceURLs"), urls, "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            errs.append(v.invalid(path.child("nonResourceURLs"), urls,
                                  "rules cannot apply to both regular resources and non-resource URLs"))
        return errs
    if not as_list(rule.get("apiGroups")):
        errs.append(v.required(path.child("apiGroups"), "resource rules must supply at least one api group"))
    if not as_list(rule.get("resources")):
        errs.append(v.required(path.child("resources"), "resource rules must supply at least one resource"))
    if as_list(rule.get("resourceNames")) and len(as_list(rule.get("resources"))) > 1:
        errs.append(v.required(path.child("resourceNames"), "resource names cannot apply to multiple resources"))
    return errs


class RoleStrategy(Strategy):
    kind = "Role"
    tracks_generation = False
    name_validator = staticmethod(path_segment_name_msgs)
    namespaced_rules = True

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, rule in enumerate(as_list(obj.get("rules"))):
            errs += validate_policy_rule(rule, Path("rules").index(i), namespaced=self.namespaced_rules)
        return errs


class ClusterRoleStrategy(RoleStrategy):
    kind = "ClusterRole"
    namespaced_rules = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs = super().validate(obj)
        rule = obj.get("aggregationRule")
        if isinstance(rule, dict):
            sp = Path("aggregationRule", "clusterRoleSelectors")
            selectors = as_list(rule.get("clusterRoleSelectors"))
            if not selectors:
                errs.append(v.required(sp, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
            for i, sel in enumerate(selectors):
                errs += validate_label_selector_object(sel, sp.index(i))
        return errs


def _default_subjects(obj: Obj) -> None:
    for subject in as_list(obj.get("subjects")):
        if isinstance(subject, dict) and not subject.get("apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = RBAC_GROUP


class RoleBindingStrategy(Strategy):
    kind = "RoleBinding"
    tracks_generation = False
    name_validator = staticmethod(path_segment_name_msgs)
    role_kinds: tuple[str, ...] = ("Role", "ClusterRole")
    namespaced_subjects = True

    def default(self, obj: Obj) -> None:
        ref = obj.get("roleRef")
        if isinstance(ref, dict) and not ref.get("apiGroup"):
            ref["apiGroup"] = RBAC_GROUP
        _default_subjects(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        ref = as_dict(obj.get("roleRef"))
        rp = Path("roleRef")
        errs: list[FieldError] = []
        if ref.get("apiGroup") != RBAC_GROUP:
            errs.append(v.not_supported(rp.child("apiGroup"), ref.get("apiGroup", ""), (RBAC_GROUP,)))
        if ref.get("kind") not in self.role_kinds:
            errs.append(v.not_supported(rp.child("kind"), ref.get("kind", ""), self.role_kinds))
        name = ref.get("name")
        if not name:
            errs.append(v.required(rp.child("name")))
        else:
            errs += names_msgs(name, rp.child("name"), path_segment_name_msgs)
        for i, subject in enumerate(as_list(obj.get("subjects"))):
            errs += self._validate_subject(as_dict(subject), Path("subjects").index(i))
        return errs

    def _validate_subject(self, subject: dict[str, Any], path: Path) -> list[FieldError]:
        errs: list[FieldError] = []
        name = subject.get("name")
        if not name:
            errs.append(v.required(path.child("name")))
        kind, group = subject.get("kind"), subject.get("apiGroup") or ""
        if kind == "ServiceAccount":
            if name:
                errs += names_msgs(name, path.child("name"), v.is_dns1123_subdomain)
            if group:
                errs.append(v.not_supported(path.child("apiGroup"), group, ("",)))
            if not self.namespaced_subjects and not subject.get("namespace"):
                errs.append(v.required(path.child("namespace")))
        elif kind in ("User", "Group"):
            if not name:
                errs.append(v.invalid(path.child("name"), name or "", f"{kind.lower()} name cannot be empty"))
            if group != RBAC_GROUP:
                errs.append(v.not_supported(path.child("apiGroup"), group, (RBAC_GROUP,)))
        else:
            errs.append(v.not_supported(path.child("kind"), kind or "", SUBJECT_KINDS))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        if new.get("roleRef") != old.get("roleRef"):
            errs.append(v.invalid(Path("roleRef"), new.get("roleRef"), "cannot change roleRef"))
        return errs


class ClusterRoleBindingStrategy(RoleBindingStrategy):
    kind = "ClusterRoleBinding"
    role_kinds = ("ClusterRole",)
    namespaced_subjects = False


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("rbac.authorization.k8s.io", "Role"): RoleStrategy(),
    ("rbac.authorization.k8s.io", "ClusterRole"): ClusterRoleStrategy(),
    ("rbac.authorization.k8s.io", "RoleBinding"): RoleBindingStrategy(),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): ClusterRoleBindingStrategy(),
}
