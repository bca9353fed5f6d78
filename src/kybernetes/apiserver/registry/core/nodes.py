"""Nodes: the strategy and taint validation.

Mirrors ``pkg/registry/core/<resource>`` with the rules of ``pkg/apis/core/validation`` and the
``v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

import copy
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, as_list, is_cidr, validate_enum, validate_resource_list
from kybernetes.apiserver.registry.core.common import field_reader
from kybernetes.apiserver.registry.core.podvalidation import TAINT_EFFECTS
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj

# --- Node -----------------------------------------------------------------------------------


def validate_taints(taints: Any, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(as_list(taints)):
        p = path.index(i)
        if not isinstance(taint, dict):
            errs.append(v.type_invalid(p, taint, "must be an object"))
            continue
        key, effect = str(taint.get("key") or ""), str(taint.get("effect") or "")
        if not key:
            errs.append(v.required(p.child("key")))
        else:
            errs.extend(v.invalid(p.child("key"), key, m) for m in v.is_qualified_name(key))
        errs.extend(v.invalid(p.child("value"), taint.get("value"), m)
                    for m in v.is_label_value(str(taint.get("value") or "")))
        errs.extend(validate_enum(taint.get("effect"), p.child("effect"), TAINT_EFFECTS))
        if (key, effect) in seen:
            errs.append(FieldError("FieldValueDuplicate", str(p), taint, "taints must be unique by key and effect pair"))
        seen.add((key, effect))
    return errs


class NodeStrategy(ClusterScoped):
    kind = "Node"
    has_status = True
    tracks_generation = False
    field_selectors = {"spec.unschedulable": field_reader("spec", "unschedulable")}

    def prepare_for_create(self, obj: Obj) -> None:
        """A kubelet registers its Node with the status it observed: keep it."""

    def default(self, obj: Obj) -> None:
        if not isinstance(obj.get("spec"), dict):
            obj["spec"] = {}
        status = obj.get("status")
        if isinstance(status, dict) and "allocatable" not in status and isinstance(status.get("capacity"), dict):
            status["allocatable"] = copy.deepcopy(status["capacity"])

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = as_dict(obj.get("spec"))
        path = Path("spec")
        errs = validate_taints(spec.get("taints"), path.child("taints"))
        cidrs = as_list(spec.get("podCIDRs"))
        for i, cidr in enumerate(cidrs):
            if not is_cidr(cidr):
                errs.append(v.invalid(path.child("podCIDRs").index(i), cidr,
                                      "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
        pod_cidr = spec.get("podCIDR")
        if pod_cidr and not is_cidr(pod_cidr):
            errs.append(v.invalid(path.child("podCIDR"), pod_cidr,
                                  "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
        if pod_cidr and cidrs and cidrs[0] != pod_cidr:
            errs.append(v.invalid(path.child("podCIDRs"), cidrs, "first value must match `podCIDR`"))
        if len(cidrs) > 2:
            errs.append(v.invalid(path.child("podCIDRs"), cidrs, "may specify no more than one CIDR for each IP family"))
        errs.extend(self._validate_status(as_dict(obj.get("status"))))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(new)
        new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
        for field in ("podCIDR", "podCIDRs", "providerID"):
            if old_spec.get(field) and new_spec.get(field) != old_spec[field]:
                shown = "podCIDR" if field == "podCIDRs" else field
                errs.append(v.forbidden(Path("spec", field),
                                        f'node updates may not change {shown} except from "" to valid'))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self._validate_status(as_dict(new.get("status")))

    @staticmethod
    def _validate_status(status: dict[str, Any]) -> list[FieldError]:
        path = Path("status")
        errs: list[FieldError] = []
        for field in ("capacity", "allocatable"):
            errs.extend(validate_resource_list(status.get(field), path.child(field), name_msgs=lambda _n: []))
        return errs
