"""Do some PolicyRules cover others? RBAC's ``Covers`` (``pkg/apis/rbac/validation`` and
``component-helpers/auth/rbac/validation/policy_comparator.go``), with ``BreakdownRule``.

A rule is broken down into single-verb, single-group, single-resource (and single-name) rules,
or single-URL, single-verb rules; a breakdown rule is covered when one owner rule has all of:

- verbs: ``*`` or the verb; apiGroups: ``*`` or the group;
- resources: ``*``, the resource itself, or ``*/sub`` for a subresource ``x/sub``;
- resourceNames: none on the owner, or (when the rule names some) all of them;
- nonResourceURLs: the URL, or a prefix ending in ``*``.

Used by the bootstrap-policy reconciliation (missing rules are added as their breakdown, as
Kubernetes adds them) and fit for the escalation check of RBAC writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kybernetes.apiserver.authz.rules import url_matches

ALL = "*"
Rule = dict[str, Any]


def _items(rule: Rule, key: str) -> list[str]:
    return list(rule.get(key) or ())


def breakdown_rule(rule: Rule) -> list[Rule]:
    """``BreakdownRule``: one rule per (group, resource, verb[, name]) and per (URL, verb)."""
    out: list[Rule] = []
    names = _items(rule, "resourceNames")
    for group in _items(rule, "apiGroups"):
        for resource in _items(rule, "resources"):
            for verb in _items(rule, "verbs"):
                base = {"verbs": [verb], "apiGroups": [group], "resources": [resource]}
                out += [{**base, "resourceNames": [n]} for n in names] if names else [base]
    for url in _items(rule, "nonResourceURLs"):
        out += [{"verbs": [verb], "nonResourceURLs": [url]} for verb in _items(rule, "verbs")]
    return out


def _has_all(owned: Sequence[str], wanted: Iterable[str]) -> bool:
    return all(w in owned for w in wanted)


def _resources_covered(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    if ALL in owned or _has_all(owned, wanted):
        return True
    for path in wanted:
        if path in owned:
            continue
        if "/" not in path or f"*/{path.split('/', 1)[1]}" not in owned:
            return False
    return True


def rule_covers(owner: Rule, sub: Rule) -> bool:
    """``ruleCovers``: does ``owner`` allow everything ``sub`` allows (sub usually a breakdown rule)."""
    verbs, groups = _items(owner, "verbs"), _items(owner, "apiGroups")
    owner_names, sub_names = _items(owner, "resourceNames"), _items(sub, "resourceNames")
    owner_urls = _items(owner, "nonResourceURLs")
    return ((ALL in verbs or _has_all(verbs, _items(sub, "verbs")))
            and (ALL in groups or _has_all(groups, _items(sub, "apiGroups")))
            and _resources_covered(_items(owner, "resources"), _items(sub, "resources"))
            and (not owner_names or (bool(sub_names) and _has_all(owner_names, sub_names)))
            and all(url_matches(owner_urls, p) for p in _items(sub, "nonResourceURLs")))


def uncovered(owner_rules: Sequence[Rule], servant_rules: Iterable[Rule]) -> list[Rule]:
    """``Covers``' second result: the breakdown rules of ``servant_rules`` no owner rule covers."""
    return [sub for rule in servant_rules for sub in breakdown_rule(rule)
            if not any(rule_covers(owner, sub) for owner in owner_rules)]


def covers(owner_rules: Sequence[Rule], servant_rules: Iterable[Rule]) -> bool:
    return not uncovered(owner_rules, servant_rules)
