"""``flowcontrol.apiserver.k8s.io/v1``: FlowSchema and PriorityLevelConfiguration.

Defaults and validation are Kubernetes 1.32's (``pkg/apis/flowcontrol/v1/defaults.go`` and
``pkg/apis/flowcontrol/validation``), with its wording:

* FlowSchema: ``matchingPrecedence`` defaults to 1000, must be in 1..10000, and only ``exempt``
  may have 1; rules need subjects and at least one resource or non-resource rule; ``*`` may not
  be combined with other values; the mandatory ``exempt`` and ``catch-all`` schemas must keep
  their fixed spec.
* PriorityLevelConfiguration: ``type`` is ``Exempt`` exactly for ``exempt``; ``limited``
  defaults ``nominalConcurrencyShares`` to 30 (0 is allowed: a "jail") and ``lendablePercent``
  to 0; queuing defaults to 64 queues, hand size 8, queue length limit 50; the hand must fit in
  60 bits of hash. ``catch-all`` is fixed; ``exempt`` may change only ``spec.exempt``.

Both kinds have a ``status`` written only through ``/status`` (the APF controller's Dangling
condition on FlowSchemas).
"""

from __future__ import annotations

import math
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.apiserver.flowcontrol.bootstrap import MANDATORY_FS_SPECS, MANDATORY_PL_SPECS, semantic
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj, Strategy

MAX_MATCHING_PRECEDENCE = 10000
DEFAULT_MATCHING_PRECEDENCE = 1000
DEFAULT_NOMINAL_CONCURRENCY_SHARES = 30
DEFAULT_QUEUES, DEFAULT_HAND_SIZE, DEFAULT_QUEUE_LENGTH_LIMIT = 64, 8, 50
MAX_QUEUES = 10_000_000
MAX_HASH_BITS = 60

SUPPORTED_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "proxy", "update", "watch")
DISTINGUISHER_METHODS = ("ByNamespace", "ByUser")
SUBJECT_KINDS = ("Group", "ServiceAccount", "User")
PRIORITY_LEVEL_TYPES = ("Exempt", "Limited")
LIMIT_RESPONSE_TYPES = ("Queue", "Reject")
_NS_INTRO = "each member of this list must be '*' or a DNS-1123 label; "


def _dict(x: Any) -> Obj:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _int(x: Any) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) else 0


# ----------------------------------------------------------------------------------- FlowSchema


def validate_non_resource_url(path: str, at: Path) -> FieldError | None:
    """Kubernetes' ValidateNonResourceURLPath: "/" or an absolute path, a ``/*`` suffix glob at most."""
    if not path:
        return v.invalid(at, path, "must not be empty")
    if path == "/":
        return None
    if not path.startswith("/"):
        return v.invalid(at, path, "must start with slash")
    if " " in path:
        return v.invalid(at, path, "must not contain white-space")
    if "//" in path:
        return v.invalid(at, path, "must not contain double slash")
    stars = path.count("*")
    if stars > 1 or (stars == 1 and path[-2:] != "/*"):
        return v.invalid(at, path, "wildcard can only do suffix matching")
    return None


def _validate_verbs(verbs: list[Any], at: Path) -> list[FieldError]:
    if not verbs:
        return [v.required(at, "verbs must contain at least one value")]
    if "*" in verbs:
        return [v.invalid(at, verbs, "if '*' is present, must not specify other verbs")] if len(verbs) > 1 else []
    if not set(verbs) <= set(SUPPORTED_VERBS):
        return [v.not_supported(at, verbs, SUPPORTED_VERBS)]
    return []


def _validate_resource_rule(rule: Obj, at: Path) -> list[FieldError]:
    errs = _validate_verbs(_list(rule.get("verbs")), at.child("verbs"))
    groups, resources = _list(rule.get("apiGroups")), _list(rule.get("resources"))
    namespaces = _list(rule.get("namespaces"))
    if not groups:
        errs.append(v.required(at.child("apiGroups"), "resource rules must supply at least one api group"))
    elif len(groups) > 1 and "*" in groups:
        errs.append(v.invalid(at.child("apiGroups"), groups, "if '*' is present, must not specify other api groups"))
    if not resources:
        errs.append(v.required(at.child("resources"), "resource rules must supply at least one resource"))
    elif len(resources) > 1 and "*" in resources:
        errs.append(v.invalid(at.child("resources"), resources, "if '*' is present, must not specify other resources"))
    if not namespaces and not rule.get("clusterScope"):
        errs.append(v.required(at.child("namespaces"),
                               "resource rules that are not cluster scoped must supply at least one namespace"))
    elif "*" in namespaces:
        if len(namespaces) > 1:
            errs.append(v.invalid(at.child("namespaces"), namespaces,
                                  "if '*' is present, must not specify other namespaces"))
    else:
        for i, ns in enumerate(namespaces):
            for msg in v.is_dns1123_label(str(ns)):
                errs.append(v.invalid(at.child("namespaces").index(i), ns, _NS_INTRO + msg))
    return errs


def _validate_non_resource_rule(rule: Obj, at: Path) -> list[FieldError]:
    errs = _validate_verbs(_list(rule.get("verbs")), at.child("verbs"))
    urls = _list(rule.get("nonResourceURLs"))
    if not urls:
        errs.append(v.required(at.child("nonResourceURLs"), "nonResourceURLs must contain at least one value"))
    elif "*" in urls:
        if len(urls) > 1:
            errs.append(v.invalid(at.child("nonResourceURLs"), urls,
                                  "if '*' is present, must not specify other non-resource URLs"))
    else:
        for i, url in enumerate(urls):
            err = validate_non_resource_url(str(url), at.child("nonResourceURLs").index(i))
            if err is not None:
                errs.append(err)
    return errs


_SUBJECT_FIELDS = {"ServiceAccount": "serviceAccount", "User": "user", "Group": "group"}
_FORBIDDEN_SUBJECT = {"serviceAccount": "serviceAccount is forbidden when subject kind is not 'ServiceAccount'",
                      "user": "user is forbidden when subject kind is not 'User'",
                      "group": "group is forbidden when subject kind is not 'Group'"}


def _validate_subject(subject: Obj, at: Path) -> list[FieldError]:
    kind = subject.get("kind")
    own = _SUBJECT_FIELDS.get(kind) if isinstance(kind, str) else None
    if own is None:
        return [v.not_supported(at.child("kind"), kind, SUBJECT_KINDS)]
    errs: list[FieldError] = []
    body = subject.get(own)
    if not isinstance(body, dict):
        errs.append(v.required(at.child(own), f"{own} is required when subject kind is '{kind}'"))
    elif not body.get("name"):
        errs.append(v.required(at.child(own, "name")))
    elif own == "serviceAccount" and body["name"] != "*":
        for msg in v.is_dns1123_subdomain(str(body["name"])):
            errs.append(v.invalid(at.child(own, "name"), body["name"], msg))
    if own == "serviceAccount" and isinstance(body, dict):
        ns = body.get("namespace")
        if not ns:
            errs.append(v.required(at.child(own, "namespace"), "must specify namespace for service account"))
        else:
            for msg in v.is_dns1123_label(str(ns)):
                errs.append(v.invalid(at.child(own, "namespace"), ns, msg))
    for other in ("serviceAccount", "user", "group"):
        if other != own and subject.get(other) is not None:
            errs.append(v.forbidden(at.child(other), _FORBIDDEN_SUBJECT[other]))
    return errs


def _validate_rules_with_subjects(rule: Obj, at: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    subjects = _list(rule.get("subjects"))
    if not subjects:
        errs.append(v.required(at.child("subjects"), "subjects must contain at least one value"))
    for i, s in enumerate(subjects):
        errs += _validate_subject(_dict(s), at.child("subjects").index(i))
    resource_rules, non_resource_rules = _list(rule.get("resourceRules")), _list(rule.get("nonResourceRules"))
    if not resource_rules and not non_resource_rules:
        errs.append(v.required(at, "at least one of resourceRules and nonResourceRules has to be non-empty"))
    for i, r in enumerate(resource_rules):
        errs += _validate_resource_rule(_dict(r), at.child("resourceRules").index(i))
    for i, r in enumerate(non_resource_rules):
        errs += _validate_non_resource_rule(_dict(r), at.child("nonResourceRules").index(i))
    return errs


def _validate_conditions(status: Any) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[str] = set()
    at = Path("status", "conditions")
    for i, c in enumerate(_list(_dict(status).get("conditions"))):
        t = _dict(c).get("type") or ""
        if t in seen:
            errs.append(v.duplicate(at.index(i).child("type"), t))
        seen.add(t)
        if not t:
            errs.append(v.required(at.index(i).child("type"), "must not be empty"))
    return errs


class FlowSchemaStrategy(ClusterScoped):
    kind = "FlowSchema"
    has_status = True

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict) and not spec.get("matchingPrecedence"):
            spec["matchingPrecedence"] = DEFAULT_MATCHING_PRECEDENCE

    def validate(self, obj: Obj) -> list[FieldError]:
        name = str(_dict(obj.get("metadata")).get("name") or "")
        spec = _dict(obj.get("spec"))
        at = Path("spec")
        errs: list[FieldError] = []
        precedence = _int(spec.get("matchingPrecedence"))
        if precedence <= 0:
            errs.append(v.invalid(at.child("matchingPrecedence"), precedence, "must be a positive value"))
        if precedence > MAX_MATCHING_PRECEDENCE:
            errs.append(v.invalid(at.child("matchingPrecedence"), precedence,
                                  f"must not be greater than {MAX_MATCHING_PRECEDENCE}"))
        if precedence == 1 and name != "exempt":
            errs.append(v.invalid(at.child("matchingPrecedence"), precedence,
                                  "only the schema named 'exempt' may have matchingPrecedence 1"))
        method = spec.get("distinguisherMethod")
        if method is not None and _dict(method).get("type") not in DISTINGUISHER_METHODS:
            errs.append(v.not_supported(at.child("distinguisherMethod", "type"), method, DISTINGUISHER_METHODS))
        pl_name = _dict(spec.get("priorityLevelConfiguration")).get("name")
        if pl_name:
            for msg in v.is_dns1123_subdomain(str(pl_name)):
                errs.append(v.invalid(at.child("priorityLevelConfiguration", "name"), pl_name, msg))
        else:
            errs.append(v.required(at.child("priorityLevelConfiguration", "name"), "must reference a priority level"))
        for i, rule in enumerate(_list(spec.get("rules"))):
            errs += _validate_rules_with_subjects(_dict(rule), at.child("rules").index(i))
        fixed = MANDATORY_FS_SPECS.get(name)
        if fixed is not None and semantic(spec) != semantic(fixed):
            errs.append(v.invalid(at, spec, f"spec of '{name}' must equal the fixed value"))
        return errs + _validate_conditions(obj.get("status"))

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return _validate_conditions(new.get("status"))


# --------------------------------------------------------------------------- PriorityLevelConfiguration


def required_entropy_bits(deck: int, hand: int) -> int:
    """Bits of hash that dealing ``hand`` cards from ``deck`` uses (shufflesharding.RequiredEntropyBits)."""
    return math.ceil(math.log2(deck) * hand)


def _validate_percent(value: Any, at: Path) -> list[FieldError]:
    if value is not None and not 0 <= _int(value) <= 100:
        return [v.invalid(at, value, "must be between 0 and 100, inclusive")]
    return []


def _validate_queuing(q: Obj, at: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    length, queues, hand = _int(q.get("queueLengthLimit")), _int(q.get("queues")), _int(q.get("handSize"))
    if length <= 0:
        errs.append(v.invalid(at.child("queueLengthLimit"), length, "must be positive"))
    if queues <= 0:
        errs.append(v.invalid(at.child("queues"), queues, "must be positive"))
    elif queues > MAX_QUEUES:
        errs.append(v.invalid(at.child("queues"), queues, f"must not be greater than {MAX_QUEUES}"))
    if hand <= 0:
        errs.append(v.invalid(at.child("handSize"), hand, "must be positive"))
    elif hand > queues:
        errs.append(v.invalid(at.child("handSize"), hand, f"should not be greater than queues ({queues})"))
    elif required_entropy_bits(queues, hand) > MAX_HASH_BITS:
        errs.append(v.invalid(at.child("handSize"), hand, f"required entropy bits of deckSize {queues} and "
                                                           f"handSize {hand} should not be greater than {MAX_HASH_BITS}"))
    return errs


def _validate_limited(limited: Obj, at: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    shares = limited.get("nominalConcurrencyShares")
    if shares is not None and _int(shares) < 0:
        errs.append(v.invalid(at.child("nominalConcurrencyShares"), shares, "must be a non-negative integer"))
    errs += _validate_percent(limited.get("lendablePercent"), at.child("lendablePercent"))
    borrowing = limited.get("borrowingLimitPercent")
    if borrowing is not None and _int(borrowing) < 0:
        errs.append(v.invalid(at.child("borrowingLimitPercent"), borrowing,
                              "if specified, must be a non-negative integer"))
    response = _dict(limited.get("limitResponse"))
    rat = at.child("limitResponse")
    rtype, queuing = response.get("type"), response.get("queuing")
    if rtype == "Reject":
        if queuing is not None:
            errs.append(v.forbidden(rat.child("queuing"), "must be nil if limited.limitResponse.type is not Limited"))
    elif rtype == "Queue":
        if queuing is None:
            errs.append(v.required(rat.child("queuing"), "must not be empty if limited.limitResponse.type is Limited"))
        else:
            errs += _validate_queuing(_dict(queuing), rat.child("queuing"))
    else:
        errs.append(v.not_supported(rat.child("type"), rtype, LIMIT_RESPONSE_TYPES))
    return errs


def _validate_pl_spec(name: str, spec: Obj) -> list[FieldError]:
    at = Path("spec")
    errs: list[FieldError] = []
    ptype = spec.get("type")
    if (name == "exempt") != (ptype == "Exempt"):
        errs.append(v.invalid(at.child("type"), ptype, "type must be 'Exempt' if and only if name is 'exempt'"))
    if ptype == "Exempt":
        if spec.get("limited") is not None:
            errs.append(v.forbidden(at.child("limited"), "must be nil if the type is not Limited"))
        exempt = spec.get("exempt")
        if exempt is not None:
            shares = _dict(exempt).get("nominalConcurrencyShares")
            if shares is not None and _int(shares) < 0:
                errs.append(v.invalid(at.child("exempt", "nominalConcurrencyShares"), shares,
                                      "must be a non-negative integer"))
            errs += _validate_percent(_dict(exempt).get("lendablePercent"), at.child("exempt", "lendablePercent"))
    elif ptype == "Limited":
        if spec.get("exempt") is not None:
            errs.append(v.forbidden(at.child("exempt"), "must be nil if the type is Limited"))
        if spec.get("limited") is None:
            errs.append(v.required(at.child("limited"), "must not be empty when type is Limited"))
        else:
            errs += _validate_limited(_dict(spec["limited"]), at.child("limited"))
    else:
        errs.append(v.not_supported(at.child("type"), ptype, PRIORITY_LEVEL_TYPES))
    fixed = MANDATORY_PL_SPECS.get(name)
    if fixed is not None:
        if name == "exempt":
            have = dict(spec)
            have["exempt"] = fixed["exempt"]
            if semantic(have) != semantic(fixed):
                errs.append(v.invalid(at, spec, "spec of 'exempt' except the 'spec.exempt' field must equal "
                                                "the fixed value"))
        elif semantic(spec) != semantic(fixed):
            errs.append(v.invalid(at, spec, f"spec of '{name}' must equal the fixed value"))
    return errs


class PriorityLevelConfigurationStrategy(ClusterScoped):
    kind = "PriorityLevelConfiguration"
    has_status = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        exempt = spec.get("exempt")
        if isinstance(exempt, dict):
            for k in ("nominalConcurrencyShares", "lendablePercent"):
                if exempt.get(k) is None:
                    exempt[k] = 0
        limited = spec.get("limited")
        if isinstance(limited, dict):
            if limited.get("nominalConcurrencyShares") is None:
                limited["nominalConcurrencyShares"] = DEFAULT_NOMINAL_CONCURRENCY_SHARES
            if limited.get("lendablePercent") is None:
                limited["lendablePercent"] = 0
            queuing = _dict(limited.get("limitResponse")).get("queuing")
            if isinstance(queuing, dict):
                for key, default in (("handSize", DEFAULT_HAND_SIZE), ("queues", DEFAULT_QUEUES),
                                     ("queueLengthLimit", DEFAULT_QUEUE_LENGTH_LIMIT)):
                    if not queuing.get(key):
                        queuing[key] = default

    def validate(self, obj: Obj) -> list[FieldError]:
        name = str(_dict(obj.get("metadata")).get("name") or "")
        return _validate_pl_spec(name, _dict(obj.get("spec"))) + _validate_conditions(obj.get("status"))

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return _validate_conditions(new.get("status"))


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"): FlowSchemaStrategy(),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"): PriorityLevelConfigurationStrategy(),
}
