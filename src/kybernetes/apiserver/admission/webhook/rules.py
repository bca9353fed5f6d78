"""A webhook rule against a request: ``k8s.io/apiserver/pkg/admission/plugin/webhook/predicates/rules``.

A rule matches when each of its parts does: the operation (or ``*``), the group and version (or
``*``), the resource with its subresource (``pods`` matches only the resource itself, ``pods/*`` pods
and each of their subresources, ``*`` every resource without a subresource, ``*/status`` every resource's
status, ``*/*`` everything)
and the scope (``*``, ``Cluster``: no namespace or a Namespace itself, ``Namespaced``: a
namespaced object).
"""

from __future__ import annotations

from typing import Any

_EXEMPT_GROUP = "admissionregistration.k8s.io"
_EXEMPT_RESOURCES = frozenset({
    "validatingwebhookconfigurations", "mutatingwebhookconfigurations", "validatingadmissionpolicies",
    "validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings",
})


def is_exempt(group: str, resource: str) -> bool:
    """``IsExemptAdmissionConfigurationResource``: webhooks never see writes of admission
    configuration, so that a broken webhook cannot lock its own repair out."""
    return group == _EXEMPT_GROUP and resource in _EXEMPT_RESOURCES


def _split(res: str) -> tuple[str, str]:
    parts = res.split("/", 1)
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")


def _one_of(values: Any, value: str) -> bool:
    return isinstance(values, list) and ("*" in values or value in values)


def rule_matches(rule: dict[str, Any], operation: str, group: str, version: str, resource: str,
                 subresource: str, namespace: str) -> bool:
    """Whether ``rule`` (a RuleWithOperations, defaulted) covers the request so described."""
    if not (_one_of(rule.get("operations"), operation) and _one_of(rule.get("apiGroups"), group)
            and _one_of(rule.get("apiVersions"), version)):
        return False
    for res in rule.get("resources") or []:
        rule_res, rule_sub = _split(str(res))
        if rule_res in ("*", resource) and rule_sub in ("*", subresource):
            break
    else:
        return False
    scope = rule.get("scope") or "*"
    is_namespace = group == "" and resource == "namespaces"
    if scope == "Namespaced":
        return not is_namespace and namespace != ""
    if scope == "Cluster":
        return is_namespace or namespace == ""
    return True
