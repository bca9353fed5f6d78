"""Which requests a policy's ``matchConstraints`` (or a binding's ``matchResources``) select.

``k8s.io/apiserver/pkg/admission/plugin/policy/matching`` and ``.../webhook/predicates/rules``:
a request matches when a ``resourceRules`` entry matches it (no rules: every request, as for
a binding's ``matchResources``) and no ``excludeResourceRules`` entry does, its namespace's labels (the object's own for a Namespace; always, for other
cluster-scoped objects) match ``namespaceSelector`` and the object's or old object's labels
match ``objectSelector``. A rule matches on operation, API group, version, resource (``*``,
``*/*``, ``pods``, ``pods/*``, ``*/status``, ``pods/status``), scope and ``resourceNames``.
With ``matchPolicy: Equivalent`` a rule naming another served version of the same resource
matches too. Admission configuration resources themselves are never subject to policies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kybernetes.api.label_selectors import from_label_selector_object
from kybernetes.apiserver.admission.chain import Attributes

EXEMPT = frozenset({
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
    ("admissionregistration.k8s.io", "mutatingadmissionpolicies"),
    ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings"),
})
"""``IsExemptAdmissionConfigurationResource``: policies never apply to these."""


def _has(values: Any, value: str) -> bool:
    return isinstance(values, list) and ("*" in values or value in values)


def _resource_matches(patterns: Any, resource: str, subresource: str) -> bool:
    if not isinstance(patterns, list):
        return False
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        res, _, sub = pattern.partition("/")
        if pattern == "*/*":
            return True
        if "/" not in pattern:
            if not subresource and res in ("*", resource):
                return True
        elif res in ("*", resource) and sub in ("*", subresource) and subresource:
            return True
    return False


def rule_matches(rule: dict[str, Any], attrs: Attributes, version: str, namespaced: bool) -> bool:
    """One NamedRuleWithOperations against the request (at API ``version``)."""
    if not _has(rule.get("operations"), attrs.operation):
        return False
    if not _has(rule.get("apiGroups"), attrs.group) or not _has(rule.get("apiVersions"), version):
        return False
    if not _resource_matches(rule.get("resources"), attrs.resource, attrs.subresource):
        return False
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and namespaced) or (scope == "Namespaced" and not namespaced):
        return False
    names = rule.get("resourceNames")
    return not (isinstance(names, list) and names and attrs.name not in names)


def _any_rule(rules: Any, attrs: Attributes, versions: list[str], namespaced: bool) -> bool:
    return any(isinstance(rule, dict) and any(rule_matches(rule, attrs, ver, namespaced) for ver in versions)
               for rule in rules or ())


def _labels(obj: Any) -> dict[str, str]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return labels if isinstance(labels, dict) else {}


def matches(match: dict[str, Any], attrs: Attributes, *, namespaced: bool,
            other_versions: Callable[[], list[str]], namespace_labels: Callable[[], dict[str, str] | None]) -> bool:
    """Whether ``match`` (MatchResources) selects the request. ``other_versions`` gives the
    resource's other served versions (for Equivalent); ``namespace_labels`` the request
    namespace's labels (None if it does not exist)."""
    versions = [attrs.version]
    rules = match.get("resourceRules")
    if rules and not _any_rule(rules, attrs, versions, namespaced):
        if match.get("matchPolicy", "Equivalent") != "Equivalent":
            return False
        versions = other_versions()
        if not _any_rule(rules, attrs, versions, namespaced):
            return False
        versions = [attrs.version, *versions]
    if _any_rule(match.get("excludeResourceRules"), attrs, versions, namespaced):
        return False
    return _namespace_matches(match, attrs, namespace_labels) and _object_matches(match, attrs)


def _namespace_matches(match: dict[str, Any], attrs: Attributes,
                       namespace_labels: Callable[[], dict[str, str] | None]) -> bool:
    selector = from_label_selector_object(match.get("namespaceSelector"))
    if not selector.requirements:
        return True
    if (attrs.group, attrs.resource) == ("", "namespaces") and not attrs.subresource:
        obj = attrs.object if attrs.object is not None else attrs.old_object
        return selector.matches(_labels(obj))
    if not attrs.namespace:
        return True
    labels = namespace_labels()
    return labels is not None and selector.matches(labels)


def _object_matches(match: dict[str, Any], attrs: Attributes) -> bool:
    selector = from_label_selector_object(match.get("objectSelector"))
    if not selector.requirements:
        return True
    return any(obj is not None and selector.matches(_labels(obj)) for obj in (attrs.object, attrs.old_object))


__all__ = ["EXEMPT", "matches", "rule_matches"]
