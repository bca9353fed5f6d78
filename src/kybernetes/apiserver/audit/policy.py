"""The audit.k8s.io/v1 ``Policy``: loading, validation and rule matching, as kube-apiserver does them.

Kubernetes' ``audit/policy/reader.go`` (``LoadPolicyFromFile``), ``apis/audit/validation`` and
``audit/policy/checker.go``. Guarantees:

- :func:`load_policy_file` returns a :class:`Policy` or raises :class:`PolicyError` whose text is
  kube-apiserver's (``loading audit policy file: rules[0].level: Required value: from file X``).
  Unknown fields are ignored with a warning (Kubernetes falls back to lenient decoding); a field
  of the wrong JSON type is Go's ``json: cannot unmarshal ...``; a policy with no rules is refused.
- :meth:`Policy.evaluate` gives the first matching rule's level, the union of the policy's and the
  rule's ``omitStages``, and ``omitManagedFields`` (the rule's when set, else the policy's); no
  rule matching is level ``None``. It never raises and reads nothing but its arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kybernetes.api.validation import FieldError, invalid, is_dns1123_subdomain, not_supported, required
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import RequestInfo

log = logging.getLogger(__name__)

NONE, METADATA, REQUEST, REQUEST_RESPONSE = "None", "Metadata", "Request", "RequestResponse"
LEVELS = (NONE, METADATA, REQUEST, REQUEST_RESPONSE)
"""In increasing order of detail (``Level.Less``)."""
RANK = {level: i for i, level in enumerate(LEVELS)}
REQUEST_RECEIVED, RESPONSE_STARTED, RESPONSE_COMPLETE, PANIC = (
    "RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
STAGES = (REQUEST_RECEIVED, RESPONSE_STARTED, RESPONSE_COMPLETE, PANIC)
API_VERSION = "audit.k8s.io/v1"


class PolicyError(ValueError):
    """A policy file kube-apiserver would refuse to start with; the text is Kubernetes'."""


@dataclass(frozen=True, slots=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PolicyRule:
    level: str
    users: frozenset[str] = frozenset()
    user_groups: frozenset[str] = frozenset()
    verbs: frozenset[str] = frozenset()
    resources: tuple[GroupResources, ...] = ()
    namespaces: frozenset[str] = frozenset()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None

    def matches(self, user: User, info: RequestInfo) -> bool:
        """``ruleMatches``: every field the rule sets must match (an empty field matches all)."""
        if self.users and user.name not in self.users:
            return False
        if self.user_groups and self.user_groups.isdisjoint(user.groups):
            return False
        if self.verbs and info.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            return info.is_resource_request and self._matches_resource(info)
        if self.non_resource_urls:
            return not info.is_resource_request and any(_path_matches(info.path, s) for s in self.non_resource_urls)
        return True

    def _matches_resource(self, info: RequestInfo) -> bool:
        if self.namespaces and info.namespace not in self.namespaces:  # cluster-scoped: ""
            return False
        if not self.resources:
            return True
        sub = info.subresource
        combined = f"{info.resource}/{sub}" if sub else info.resource
        for gr in self.resources:
            if gr.group != info.api_group:
                continue
            if not gr.resources:
                return True
            if gr.resource_names and info.name not in gr.resource_names:
                continue
            for res in gr.resources:
                if res in ("*", combined):
                    return True
                if sub and res.startswith("*/") and res[2:] == sub:
                    return True
                if res.endswith("/*") and res[:-2] == info.resource:
                    return True
        return False


def _path_matches(path: str, spec: str) -> bool:
    return spec in ("*", path) or (spec.endswith("*") and path.startswith(spec.rstrip("*")))


@dataclass(frozen=True, slots=True)
class RequestAuditConfig:
    """What the policy says about one request (``audit.RequestAuditConfig``)."""

    level: str
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False


@dataclass(frozen=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False

    def __post_init__(self) -> None:
        # NewPolicyRuleEvaluator: each rule's result, computed once (its stages joined with the policy's).
        configs = tuple(RequestAuditConfig(
            r.level, self.omit_stages | r.omit_stages,
            self.omit_managed_fields if r.omit_managed_fields is None else r.omit_managed_fields) for r in self.rules)
        object.__setattr__(self, "_configs", configs)
        object.__setattr__(self, "_default", RequestAuditConfig(NONE, self.omit_stages, self.omit_managed_fields))

    def evaluate(self, user: User, info: RequestInfo) -> RequestAuditConfig:
        """The first matching rule's configuration; level None when no rule matches."""
        for rule, config in zip(self.rules, self._configs, strict=True):  # type: ignore[attr-defined]
            if rule.matches(user, info):
                return config  # type: ignore[no-any-return]
        return self._default  # type: ignore[attr-defined,no-any-return]


# --- loading -------------------------------------------------------------------------------------


def load_policy_file(path: str | Path) -> Policy:
    """``LoadPolicyFromFile``, with kube-apiserver's ``loading audit policy file:`` prefix on errors."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        reason = e.strerror.lower() if e.strerror else str(e)
        raise PolicyError(f'loading audit policy file: failed to read file path "{path}": '
                          f"open {path}: {reason}") from None
    try:
        return load_policy(data)
    except PolicyError as e:
        raise PolicyError(f"loading audit policy file: {e}: from file {path}") from None


def load_policy(data: bytes) -> Policy:
    """``LoadPolicyFromBytes``: decode, check the group-version, validate, require rules."""
    try:
        doc = yaml.safe_load(data) if data.strip() else None
    except yaml.YAMLError as e:
        raise PolicyError(f"failed decoding: {_yaml_error(e)}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise PolicyError("failed decoding: couldn't get version/kind; json parse error: json: cannot unmarshal "
                          f"{_json_kind(doc)} into Go value of type "
                          "struct { APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; "
                          "Kind string \"json:\\\"kind,omitempty\\\"\" }")
    _check_group_version(doc)
    unknown = sorted(set(doc) - {"apiVersion", "kind", "metadata", "rules", "omitStages", "omitManagedFields"})
    if unknown:
        log.warning("Audit policy contains errors, falling back to lenient decoding: strict decoding error: %s",
                    ", ".join(f'unknown field "{k}"' for k in unknown))
    raw_rules = _list(doc.get("rules"), "Policy.rules", "[]v1.PolicyRule")
    rules = tuple(_rule(r) for r in raw_rules)
    stages = _strings(doc.get("omitStages"), "Policy.omitStages", "v1.Stage")
    managed = _bool(doc.get("omitManagedFields"), "Policy.omitManagedFields")
    errs = [e for i, r in enumerate(raw_rules) for e in _validate_rule(r, f"rules[{i}]")]
    if errs:
        raise PolicyError(_aggregate(errs))
    if not rules:
        raise PolicyError("loaded illegal policy with 0 rules")
    return Policy(rules, frozenset(stages), bool(managed))


def _check_group_version(doc: dict[str, Any]) -> None:
    api_version, kind = doc.get("apiVersion") or "", doc.get("kind") or ""
    for field, value in (("apiVersion", api_version), ("kind", kind)):
        if not isinstance(value, str):
            raise PolicyError(f"failed decoding: json: cannot unmarshal {_json_kind(value)} into Go struct field "
                              f".{field} of type string")
    if not api_version:  # the decoder defaults a missing group-version to the internal one
        raise PolicyError(f"unknown group version field audit.k8s.io/__internal, Kind={kind or 'Policy'} in policy")
    if api_version != API_VERSION or kind not in ("", "Policy"):
        raise PolicyError(f'failed decoding: no kind "{kind or "Policy"}" is registered for version "{api_version}" '
                          'in scheme "k8s.io/apiserver/pkg/audit/scheme.go:31"')


def _rule(raw: Any) -> PolicyRule:
    if not isinstance(raw, dict):
        raise PolicyError(f"failed decoding: json: cannot unmarshal {_json_kind(raw)} into Go struct field "
                          "Policy.rules of type v1.PolicyRule")
    p = "PolicyRule.rules."
    level = raw.get("level") or ""
    if not isinstance(level, str):
        raise _type_error(level, p + "level", "v1.Level")
    resources = tuple(_group_resources(g) for g in _list(raw.get("resources"), p + "resources",
                                                         "[]v1.GroupResources"))
    return PolicyRule(
        level=level,
        users=frozenset(_strings(raw.get("users"), p + "users")),
        user_groups=frozenset(_strings(raw.get("userGroups"), p + "userGroups")),
        verbs=frozenset(_strings(raw.get("verbs"), p + "verbs")),
        resources=resources,
        namespaces=frozenset(_strings(raw.get("namespaces"), p + "namespaces")),
        non_resource_urls=tuple(_strings(raw.get("nonResourceURLs"), p + "nonResourceURLs")),
        omit_stages=frozenset(_strings(raw.get("omitStages"), p + "omitStages", "v1.Stage")),
        omit_managed_fields=_bool(raw.get("omitManagedFields"), p + "omitManagedFields"),
    )


def _group_resources(raw: Any) -> GroupResources:
    p = "GroupResources.rules.resources."
    if not isinstance(raw, dict):
        raise _type_error(raw, "PolicyRule.rules.resources", "v1.GroupResources")
    group = raw.get("group") or ""
    if not isinstance(group, str):
        raise _type_error(group, p + "group", "string")
    return GroupResources(group, tuple(_strings(raw.get("resources"), p + "resources")),
                          frozenset(_strings(raw.get("resourceNames"), p + "resourceNames")))


def _validate_rule(raw: dict[str, Any], path: str) -> list[FieldError]:
    """``validatePolicyRule``, on the decoded rule (its fields are known to have the right types)."""
    errs: list[FieldError] = []
    level = raw.get("level") or ""
    if not level:
        errs.append(required(f"{path}.level"))
    elif level not in LEVELS:
        errs.append(not_supported(f"{path}.level", level, LEVELS))
    urls = raw.get("nonResourceURLs") or []
    for i, url in enumerate(urls):
        if url == "*":
            continue
        if not url.startswith("/"):
            errs.append(invalid(f"{path}.nonResourceURLs[{i}]", url, "non-resource URL rules must begin with a '/' "
                                                                       "character"))
        if url and "*" in url[:-1]:
            errs.append(invalid(f"{path}.nonResourceURLs[{i}]", url, "non-resource URL wildcards '*' must be the "
                                                                       "final character of the rule"))
    for gr in raw.get("resources") or []:
        group = gr.get("group") or ""
        if group and (msgs := is_dns1123_subdomain(group)):
            errs.append(invalid(f"{path}.resources.group", group, ",".join(msgs)))
        if gr.get("resourceNames") and not gr.get("resources"):
            errs.append(invalid(f"{path}.resources.resourceNames", GoStrings(gr["resourceNames"]),
                                "using resourceNames requires at least one resource"))
    for i, stage in enumerate(raw.get("omitStages") or []):
        if stage not in STAGES:
            errs.append(invalid(f"{path}.omitStages[{i}]", stage, "allowed stages are " + ",".join(STAGES)))
    if urls and (raw.get("resources") or raw.get("namespaces")):
        errs.append(invalid(f"{path}.nonResourceURLs", GoStrings(urls),
                            "rules cannot apply to both regular resources and non-resource URLs"))
    return errs


class GoStrings:
    """A ``[]string`` as Go's ``%#v`` prints it in a field error: ``[]string{"a", "b"}``."""

    def __init__(self, values: Iterable[str]) -> None:
        self.values = list(values)

    def __str__(self) -> str:
        return "[]string{" + ", ".join('"' + v.replace('"', '\\"') + '"' for v in self.values) + "}"


def _aggregate(errs: list[FieldError]) -> str:
    """``ErrorList.ToAggregate().Error()``: one message alone, several in brackets (duplicates once)."""
    msgs = list(dict.fromkeys(str(e) for e in errs))
    return msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"


# --- Go's JSON decoding errors -------------------------------------------------------------------


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _type_error(value: Any, go_field: str, go_type: str) -> PolicyError:
    return PolicyError(f"failed decoding: json: cannot unmarshal {_json_kind(value)} into Go struct field "
                       f"{go_field} of type {go_type}")


def _list(value: Any, go_field: str, go_type: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _type_error(value, go_field, go_type)
    return value


def _strings(value: Any, go_field: str, item_type: str = "string") -> list[str]:
    items = _list(value, go_field, f"[]{item_type}")
    for item in items:
        if not isinstance(item, str):
            raise _type_error(item, go_field, item_type)
    return items


def _bool(value: Any, go_field: str) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise _type_error(value, go_field, "bool")
    return value


def _yaml_error(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    return f"yaml: line {mark.line + 1}: {problem}" if mark is not None else f"yaml: {problem}"
