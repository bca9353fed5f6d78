"""ResourceQuotas and LimitRanges.

Mirrors ``pkg/registry/core/<resource>`` with the rules of ``pkg/apis/core/validation`` and the
``v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import (
    as_dict,
    as_list,
    quantity_or_none,
    validate_enum,
    validate_resource_list,
)
from kybernetes.apiserver.registry.strategy import Obj, Strategy

# --- ResourceQuota and LimitRange ------------------------------------------------------------

QUOTA_SCOPES = ("Terminating", "NotTerminating", "BestEffort", "NotBestEffort", "PriorityClass",
                "CrossNamespacePodAffinity")
SCOPE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
LIMIT_TYPES = ("Pod", "Container", "PersistentVolumeClaim")


def _quota_name_msgs(name: str) -> list[str]:
    # Quota names are compute names (cpu), prefixed ones (requests.cpu) and counts (count/pods).
    return v.is_qualified_name(name)


class ResourceQuotaStrategy(Strategy):
    kind = "ResourceQuota"
    has_status = True
    tracks_generation = False

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = as_dict(obj.get("spec"))
        path = Path("spec")
        errs = validate_resource_list(spec.get("hard"), path.child("hard"), name_msgs=_quota_name_msgs)
        for i, scope in enumerate(as_list(spec.get("scopes"))):
            errs.extend(validate_enum(scope, path.child("scopes").index(i), QUOTA_SCOPES))
        exprs_path = path.child("scopeSelector", "matchExpressions")
        for i, expr in enumerate(as_list(as_dict(spec.get("scopeSelector")).get("matchExpressions"))):
            expr = as_dict(expr)
            errs.extend(validate_enum(expr.get("scopeName"), exprs_path.index(i).child("scopeName"), QUOTA_SCOPES))
            errs.extend(validate_enum(expr.get("operator"), exprs_path.index(i).child("operator"), SCOPE_OPERATORS))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = as_dict(new.get("status"))
        errs: list[FieldError] = []
        for field in ("hard", "used"):
            errs.extend(validate_resource_list(status.get(field), Path("status", field), name_msgs=_quota_name_msgs))
        return errs


def default_limit_range_item(item: dict[str, Any]) -> None:
    """Container limits: default limit from max, default request from the default limit or min."""
    if item.get("type") != "Container":
        return
    default = dict(as_dict(item.get("default")))
    request = dict(as_dict(item.get("defaultRequest")))
    for name, qty in as_dict(item.get("max")).items():
        default.setdefault(name, qty)
    for name, qty in default.items():
        request.setdefault(name, qty)
    for name, qty in as_dict(item.get("min")).items():
        request.setdefault(name, qty)
    # Empty maps are omitted on the wire, so only non-empty ones are written.
    if default:
        item["default"] = default
    if request:
        item["defaultRequest"] = request


class LimitRangeStrategy(Strategy):
    kind = "LimitRange"
    tracks_generation = False

    def default(self, obj: Obj) -> None:
        for item in as_list(as_dict(obj.get("spec")).get("limits")):
            if isinstance(item, dict):
                default_limit_range_item(item)

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        path = Path("spec", "limits")
        for i, item in enumerate(as_list(as_dict(obj.get("spec")).get("limits"))):
            errs.extend(self._validate_item(as_dict(item), path.index(i)))
        return errs

    @staticmethod
    def _validate_item(item: dict[str, Any], path: Path) -> list[FieldError]:
        errs = validate_enum(item.get("type"), path.child("type"), LIMIT_TYPES)
        fields = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")
        for field in fields:
            errs.extend(validate_resource_list(item.get(field), path.child(field)))
        if errs:
            return errs
        if item.get("type") == "Pod":
            for field in ("default", "defaultRequest"):
                if item.get(field):
                    errs.append(v.forbidden(path.child(field), "may not be specified when `type` is 'Pod'"))
        maxes, mins = as_dict(item.get("max")), as_dict(item.get("min"))
        for name, low in mins.items():
            high = maxes.get(name)
            low_q, high_q = quantity_or_none(low), quantity_or_none(high)
            if high is not None and low_q is not None and high_q is not None and low_q > high_q:
                errs.append(v.invalid(path.child("min").key(name), low,
                                      f"min value {low} is greater than max value {high}"))
        return errs
