"""``admissionregistration.k8s.io/v1``: ValidatingAdmissionPolicy and ValidatingAdmissionPolicyBinding
(cluster-scoped; the policy has a ``status`` written through ``/status``).

Defaults and validation are Kubernetes 1.32's (``pkg/apis/admissionregistration/v1/defaults.go``,
``pkg/apis/admissionregistration/validation``), with its wording: ``failurePolicy`` defaults to
Fail; ``matchConstraints`` (and a binding's ``matchResources``) default ``matchPolicy`` to
Equivalent and both selectors to ``{}``; a rule's ``scope`` defaults to ``*``. Every CEL expression
(validations, messageExpression, matchConditions, variables, auditAnnotations) must compile in
the admission environment (:mod:`kybernetes.apiserver.cel.admission`). The webhook
configurations of the same group are another module's.
"""

from __future__ import annotations

import re
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.label_selectors import validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.apiserver.cel.admission import compile_error
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj, Strategy

GROUP = "admissionregistration.k8s.io"
FAILURE_POLICIES = ("Fail", "Ignore")
MATCH_POLICIES = ("Equivalent", "Exact")
SCOPES = ("*", "Cluster", "Namespaced")
OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
REASONS = ("Forbidden", "Invalid", "RequestEntityTooLarge", "Unauthorized")
ACTIONS = ("Audit", "Deny", "Warn")
NOT_FOUND_ACTIONS = ("Allow", "Deny")
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")


def _dict(x: Any) -> Obj:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def default_match_resources(match: Any) -> None:
    if not isinstance(match, dict):
        return
    match.setdefault("matchPolicy", "Equivalent")
    match.setdefault("namespaceSelector", {})
    match.setdefault("objectSelector", {})
    for key in ("resourceRules", "excludeResourceRules"):
        for rule in _list(match.get(key)):
            if isinstance(rule, dict):
                rule.setdefault("scope", "*")


def validate_match_resources(match: Any, p: Path, *, require_rules: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(match, dict):
        return [v.required(p, "")] if require_rules else []
    if match.get("matchPolicy") not in MATCH_POLICIES:
        errs.append(v.not_supported(p.child("matchPolicy"), match.get("matchPolicy"), MATCH_POLICIES))
    for key in ("namespaceSelector", "objectSelector"):
        errs.extend(validate_label_selector_object(match.get(key), p.child(key)))
    if require_rules and not _list(match.get("resourceRules")):
        errs.append(v.required(p.child("resourceRules"), ""))
    for key in ("resourceRules", "excludeResourceRules"):
        for i, rule in enumerate(_list(match.get(key))):
            errs.extend(_validate_rule(_dict(rule), p.child(key).index(i)))
    return errs


def _validate_rule(rule: Obj, p: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    for key in ("apiGroups", "apiVersions", "resources", "operations"):
        values = _list(rule.get(key))
        if not values:
            errs.append(v.required(p.child(key), ""))
        if "*" in values and len(values) > 1:
            errs.append(v.invalid(p.child(key), values, "if '*' is present, must not specify other values"))
    for i, op in enumerate(_list(rule.get("operations"))):
        if op not in OPERATIONS:
            errs.append(v.not_supported(p.child("operations").index(i), op, OPERATIONS))
    if rule.get("scope") not in SCOPES:
        errs.append(v.not_supported(p.child("scope"), rule.get("scope"), SCOPES))
    return errs


def _expression(obj: Obj, key: str, p: Path, *, required: bool = True) -> list[FieldError]:
    source = obj.get(key)
    if not isinstance(source, str) or not source.strip():
        return [v.required(p.child(key), "")] if required else []
    why = compile_error(source)
    return [v.invalid(p.child(key), source, why)] if why else []


def _validate_named_expressions(items: list[Any], p: Path, *, kind: str) -> list[FieldError]:
    """matchConditions and variables: unique names (C identifiers for variables), compiling expressions."""
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        ip, item = p.index(i), _dict(item)
        name = item.get("name")
        if not isinstance(name, str) or not name:
            errs.append(v.required(ip.child("name"), ""))
        elif kind == "variable" and not _C_IDENTIFIER.match(name):
            errs.append(v.invalid(ip.child("name"), name, "name is not a valid CEL identifier"))
        elif kind == "matchCondition" and not _QUALIFIED.match(name):
            errs.append(v.invalid(ip.child("name"), name, "name part must consist of alphanumeric characters, '-', "
                                  "'_' or '.', and must start and end with an alphanumeric character"))
        elif name in seen:
            errs.append(v.duplicate(ip.child("name"), name))
        if isinstance(name, str):
            seen.add(name)
        errs.extend(_expression(item, "expression", ip))
    return errs


def _validate_validations(spec: Obj, p: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    validations, audits = _list(spec.get("validations")), _list(spec.get("auditAnnotations"))
    if not validations and not audits:
        errs.append(v.required(p.child("validations"), "validations or auditAnnotations must contain at least one item"))
    for i, item in enumerate(validations):
        ip, item = p.child("validations").index(i), _dict(item)
        errs.extend(_expression(item, "expression", ip))
        errs.extend(_expression(item, "messageExpression", ip, required=False))
        reason = item.get("reason")
        if reason is not None and reason not in REASONS:
            errs.append(v.not_supported(ip.child("reason"), reason, REASONS))
    for i, item in enumerate(audits):
        ip, item = p.child("auditAnnotations").index(i), _dict(item)
        if not item.get("key"):
            errs.append(v.required(ip.child("key"), ""))
        errs.extend(_expression(item, "valueExpression", ip))
    return errs


class ValidatingAdmissionPolicyStrategy(ClusterScoped):
    kind = "ValidatingAdmissionPolicy"
    has_status = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("failurePolicy", "Fail")
            default_match_resources(spec.get("matchConstraints"))

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = _dict(obj.get("spec")), Path("spec")
        errs: list[FieldError] = []
        if spec.get("failurePolicy") not in FAILURE_POLICIES:
            errs.append(v.not_supported(p.child("failurePolicy"), spec.get("failurePolicy"), FAILURE_POLICIES))
        param_kind = spec.get("paramKind")
        if isinstance(param_kind, dict):
            for key in ("apiVersion", "kind"):
                if not param_kind.get(key):
                    errs.append(v.required(p.child("paramKind", key), ""))
        errs.extend(validate_match_resources(spec.get("matchConstraints"), p.child("matchConstraints"),
                                             require_rules=True))
        errs.extend(_validate_named_expressions(_list(spec.get("matchConditions")), p.child("matchConditions"),
                                                kind="matchCondition"))
        errs.extend(_validate_named_expressions(_list(spec.get("variables")), p.child("variables"), kind="variable"))
        return errs + _validate_validations(spec, p)


class ValidatingAdmissionPolicyBindingStrategy(ClusterScoped):
    kind = "ValidatingAdmissionPolicyBinding"

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            default_match_resources(spec.get("matchResources"))

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = _dict(obj.get("spec")), Path("spec")
        errs: list[FieldError] = []
        if not spec.get("policyName"):
            errs.append(v.required(p.child("policyName"), ""))
        errs.extend(_validate_actions(spec.get("validationActions"), p.child("validationActions")))
        ref = spec.get("paramRef")
        if isinstance(ref, dict):
            errs.extend(_validate_param_ref(ref, p.child("paramRef")))
        errs.extend(validate_match_resources(spec.get("matchResources"), p.child("matchResources"),
                                             require_rules=False))
        return errs


class GoStrings:
    """A []string as field.Invalid prints it (Go's ``%#v``): ``[]string{"Deny", "Warn"}``."""

    def __init__(self, values: list[Any]) -> None:
        self.values = [str(x) for x in values]

    def __str__(self) -> str:
        return "[]string{" + ", ".join('"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"'
                                       for x in self.values) + "}"


def _validate_actions(actions: Any, p: Path) -> list[FieldError]:
    values = _list(actions)
    if not values:
        return [v.required(p, "at least one validation action is required")]
    errs: list[FieldError] = []
    seen: set[str] = set()
    for i, action in enumerate(values):
        if action not in ACTIONS:
            errs.append(v.not_supported(p.index(i), action, ACTIONS))
        elif action in seen:
            errs.append(v.duplicate(p.index(i), action))
        seen.add(str(action))
    if {"Deny", "Warn"} <= seen:
        errs.append(v.invalid(p, GoStrings(values), "must not contain both Deny and Warn (repeating the same validation "
                              "failure information in the API response and headers serves no purpose)"))
    return errs


def _validate_param_ref(ref: Obj, p: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    if ref.get("name") and ref.get("selector") is not None:
        errs.append(v.forbidden(p.child("name"), "name and selector are mutually exclusive"))
    elif not ref.get("name") and ref.get("selector") is None:
        errs.append(v.required(p, "one of name or selector must be specified"))
    if ref.get("selector") is not None:
        errs.extend(validate_label_selector_object(ref.get("selector"), p.child("selector")))
    action = ref.get("parameterNotFoundAction")
    if action is None:
        errs.append(v.required(p.child("parameterNotFoundAction"), ""))
    elif action not in NOT_FOUND_ACTIONS:
        errs.append(v.not_supported(p.child("parameterNotFoundAction"), action, NOT_FOUND_ACTIONS))
    return errs


STRATEGIES: dict[tuple[str, str], Strategy] = {
    (GROUP, "ValidatingAdmissionPolicy"): ValidatingAdmissionPolicyStrategy(),
    (GROUP, "ValidatingAdmissionPolicyBinding"): ValidatingAdmissionPolicyBindingStrategy(),
}

__all__ = [
    "STRATEGIES",
    "ValidatingAdmissionPolicyBindingStrategy",
    "ValidatingAdmissionPolicyStrategy",
    "default_match_resources",
    "validate_match_resources",
]
