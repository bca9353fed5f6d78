"""ResourceQuotas and LimitRanges.

Mirrors ``pkg/registry/core/<resource>`` with the rules of ``pkg/apis/core/validation`` and the
``v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api import quantity
from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import (
    as_dict,
    as_list,
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
        """``ValidateLimitRange``: each item's type (a standard one or fully qualified, no type
        twice), its resource names and quantities, and the order min <= defaultRequest <= default
        <= max, ratio >= 1 and ratio <= max/min, with Kubernetes' paths and messages."""
        errs: list[FieldError] = []
        path = Path("spec", "limits")
        seen: set[Any] = set()
        for i, item in enumerate(as_list(as_dict(obj.get("spec")).get("limits"))):
            item = as_dict(item)
            kind = item.get("type")
            if isinstance(kind, str) and kind in seen:
                errs.append(v.duplicate(path.index(i).child("type"), kind))
            seen.add(kind if isinstance(kind, str) else None)
            errs.extend(self._validate_item(item, path.index(i)))
        return errs

    @staticmethod
    def _validate_item(item: dict[str, Any], path: Path) -> list[FieldError]:
        errs = _validate_limit_type(item.get("type"), path.child("type"))
        fields = ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio")
        for field in fields:
            errs.extend(validate_resource_list(item.get(field), path.child(field)))
        if errs:
            return errs
        if item.get("type") == "Pod":
            for field in ("default", "defaultRequest"):
                if item.get(field):
                    errs.append(v.forbidden(path.child(field), "may not be specified when `type` is 'Pod'"))
        if item.get("type") == "PersistentVolumeClaim" and not ("storage" in as_dict(item.get("min"))
                                                              or "storage" in as_dict(item.get("max"))):
            errs.append(v.required(path.child("limits"),
                                   "either minimum or maximum storage value is required, but neither was provided"))
        errs.extend(_limit_order_errors(item, path))
        return errs


def _validate_limit_type(kind: Any, path: Path) -> list[FieldError]:
    """``validateLimitRangeTypeName``: a qualified name; without a prefix, one of the standard types."""
    if not isinstance(kind, str):
        return [v.invalid(path, kind, "must be a standard limit type or fully qualified")]
    msgs = v.is_qualified_name(kind)
    if msgs:
        return [v.invalid(path, kind, m) for m in msgs]
    if "/" not in kind and kind not in LIMIT_TYPES:
        return [v.invalid(path, kind, "must be a standard limit type or fully qualified")]
    return []


def _overcommit_allowed(name: str) -> bool:
    """``helper.IsOvercommitAllowed``: native resources but hugepages; extended ones may not."""
    native = "/" not in name or "kubernetes.io/" in name
    return native and not name.startswith("hugepages-")


def _limit_order_errors(item: dict[str, Any], path: Path) -> list[FieldError]:
    """The cross-checks of one item's quantities, per resource name (already valid quantities)."""
    pod = item.get("type") == "Pod"
    lists = {f: {k: quantity.parse(quantity.canonical_resource(x)) for k, x in as_dict(item.get(f)).items()}
             for f in ("min", "max", "default", "defaultRequest", "maxLimitRequestRatio")}
    if pod:
        lists["default"], lists["defaultRequest"] = {}, {}
    low, high, dflt, dreq, ratio = (lists[f] for f in ("min", "max", "default", "defaultRequest",
                                                       "maxLimitRequestRatio"))
    errs: list[FieldError] = []
    for k in sorted(set().union(*lists.values())):
        mn, mx, d, dr, r = low.get(k), high.get(k), dflt.get(k), dreq.get(k), ratio.get(k)
        if mn is not None and mx is not None and mn.value > mx.value:
            errs.append(v.invalid(path.child("min").key(k), str(mn), f"min value {mn} is greater than max value {mx}"))
        if dr is not None and mn is not None and mn.value > dr.value:
            errs.append(v.invalid(path.child("defaultRequest").key(k), str(dr),
                                  f"min value {mn} is greater than default request value {dr}"))
        if dr is not None and mx is not None and dr.value > mx.value:
            errs.append(v.invalid(path.child("defaultRequest").key(k), str(dr),
                                  f"default request value {dr} is greater than max value {mx}"))
        if dr is not None and d is not None and dr.value > d.value:
            errs.append(v.invalid(path.child("defaultRequest").key(k), str(dr),
                                  f"default request value {dr} is greater than default limit value {d}"))
        if d is not None and mn is not None and mn.value > d.value:
            errs.append(v.invalid(path.child("default").key(k), str(mn),
                                  f"min value {mn} is greater than default value {d}"))
        if d is not None and mx is not None and d.value > mx.value:
            errs.append(v.invalid(path.child("default").key(k), str(mx),
                                  f"default value {d} is greater than max value {mx}"))
        if r is not None and r.value < 1:
            errs.append(v.invalid(path.child("maxLimitRequestRatio").key(k), str(r), f"ratio {r} is less than 1"))
        if r is not None and mn is not None and mx is not None and mn.value > 0:
            limit = float(mx.value / mn.value)
            if float(r.value) > limit:
                errs.append(v.invalid(path.child("maxLimitRequestRatio").key(k), str(r),
                                      f"ratio {r} is greater than max/min = {limit:f}"))
        if not _overcommit_allowed(k) and d is not None and dr is not None and d.value != dr.value:
            errs.append(v.invalid(path.child("defaultRequest").key(k), str(dr),
                                  f"default value {d} must equal to defaultRequest value {dr} in {k}"))
    return errs
