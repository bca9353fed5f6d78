"""Does a PolicyRule allow a request? RBAC's matching rules, shared by every authorizer that
evaluates rules (RBAC, the Node authorizer's static node rules, the access reviews).

Kubernetes' ``pkg/apis/rbac/v1/evaluation_helpers.go`` and ``RuleAllows`` in
``plugin/pkg/auth/authorizer/rbac/rbac.go``. A rule allows a resource request when all of
its verbs, apiGroups, resources and resourceNames match:

- verbs: ``*`` or the request's verb (any string: an unknown verb is simply never requested);
- apiGroups: ``*`` or the request's group (``""`` is the core group);
- resources: ``*``, the request's ``resource`` or ``resource/subresource``, or ``*/subresource``
  for that subresource of any resource (``pods`` does *not* cover ``pods/log``);
- resourceNames: empty (every name), or the request's name (so a rule with names never allows a
  list, a watch without ``metadata.name``, or a create, which have no name).

A rule allows a non-resource request when its verbs match and a nonResourceURL is ``*``, the
path, or a prefix ending in ``*`` (``/healthz/*``).

Rules are plain dicts as stored (``PolicyRule`` JSON); absent lists are empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kybernetes.apiserver.authz.authorizer import Attributes

ALL = "*"


def verb_matches(rule: dict[str, Any], verb: str) -> bool:
    verbs = rule.get("verbs") or ()
    return ALL in verbs or verb in verbs


def api_group_matches(rule: dict[str, Any], group: str) -> bool:
    groups = rule.get("apiGroups") or ()
    return ALL in groups or group in groups


def resource_matches(rule: dict[str, Any], combined: str, subresource: str) -> bool:
    for resource in rule.get("resources") or ():
        if resource in (ALL, combined):
            return True
        if subresource and resource.startswith("*/") and resource[2:] == subresource:
            return True
    return False


def resource_name_matches(rule: dict[str, Any], name: str) -> bool:
    names = rule.get("resourceNames")
    return not names or name in names


def non_resource_url_matches(rule: dict[str, Any], path: str) -> bool:
    return url_matches(rule.get("nonResourceURLs") or (), path)


def url_matches(urls: Iterable[str], path: str) -> bool:
    """A nonResourceURL is ``*``, the path, or a prefix ending in ``*``."""
    for url in urls:
        if url in (ALL, path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(attrs: Attributes, rule: dict[str, Any]) -> bool:
    if attrs.resource_request:
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        return (verb_matches(rule, attrs.verb) and api_group_matches(rule, attrs.api_group)
                and resource_matches(rule, combined, attrs.subresource)
                and resource_name_matches(rule, attrs.name))
    return verb_matches(rule, attrs.verb) and non_resource_url_matches(rule, attrs.path)


def rules_allow(attrs: Attributes, rules: Iterable[dict[str, Any]]) -> bool:
    return any(rule_allows(attrs, rule) for rule in rules)


class CompiledRule:
    """One rule with its lists turned into sets, for authorizers that evaluate the same rules on
    every request: :meth:`allows` answers exactly as :func:`rule_allows` does."""

    __slots__ = ("any_group", "any_resource", "any_verb", "groups", "names", "resources", "subresources", "urls",
                 "verbs")

    def __init__(self, rule: dict[str, Any]) -> None:
        verbs = rule.get("verbs") or ()
        groups = rule.get("apiGroups") or ()
        resources = rule.get("resources") or ()
        self.any_verb, self.verbs = ALL in verbs, frozenset(verbs)
        self.any_group, self.groups = ALL in groups, frozenset(groups)
        self.any_resource, self.resources = ALL in resources, frozenset(resources)
        self.subresources = frozenset(r[2:] for r in resources if r.startswith("*/"))
        self.names = frozenset(rule.get("resourceNames") or ())
        self.urls = tuple(rule.get("nonResourceURLs") or ())

    def allows(self, attrs: Attributes, combined: str) -> bool:
        """``combined`` is ``resource`` or ``resource/subresource`` (computed once per request)."""
        if not (self.any_verb or attrs.verb in self.verbs):
            return False
        if not attrs.resource_request:
            return url_matches(self.urls, attrs.path)
        return ((self.any_group or attrs.api_group in self.groups)
                and (self.any_resource or combined in self.resources
                     or (bool(attrs.subresource) and attrs.subresource in self.subresources))
                and (not self.names or attrs.name in self.names))
