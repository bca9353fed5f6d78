"""What the apps/v1 workloads' rules share: selector and template, status counts."""

from __future__ import annotations

from typing import Any

from kybernetes import errors
from kybernetes.api import validation as v
from kybernetes.api.label_selectors import from_label_selector_object, validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, is_int, validate_nonneg
from kybernetes.apiserver.registry.core import validate_pod_template
from kybernetes.apiserver.registry.strategy import Obj


def validate_selector_and_template(
    spec: dict[str, Any], path: Path, *, kind: str, check_match: bool = True
) -> list[FieldError]:
    """Selector and pod template of a workload that keeps pods running (restartPolicy Always).

    A missing selector selects nothing (``LabelSelectorAsSelector(nil)``), so it fails both as
    "Required" and as not matching the template, as on a real cluster. An empty ``{}`` selector
    selects everything and is reported only as empty.
    """
    errs: list[FieldError] = []
    sel_path = path.child("selector")
    sel = spec.get("selector")
    selector_ok = True
    if sel is None:
        errs.append(v.required(sel_path))
    else:
        sel_errs = validate_label_selector_object(sel, sel_path)
        errs.extend(sel_errs)
        selector_ok = not sel_errs
        if isinstance(sel, dict) and not sel.get("matchLabels") and not sel.get("matchExpressions"):
            errs.append(v.invalid(sel_path, sel, f"empty selector is invalid for {kind.lower()}"))
    tpath = path.child("template")
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*errs, v.required(tpath)]
    labels = as_dict(as_dict(template.get("metadata")).get("labels"))
    if check_match and selector_ok and (sel is None or isinstance(sel, dict)):
        try:
            selector = from_label_selector_object(sel, none_matches=False)
        except errors.StatusError:
            errs.append(v.invalid(sel_path, sel, "invalid label selector"))
        else:
            empty = isinstance(sel, dict) and not sel.get("matchLabels") and not sel.get("matchExpressions")
            if not empty and not selector.matches(labels):
                errs.append(v.invalid(tpath.child("metadata", "labels"), labels,
                                      "`selector` does not match template `labels`"))
    errs.extend(validate_pod_template(template, tpath))
    tspec = as_dict(template.get("spec"))
    if tspec.get("activeDeadlineSeconds") is not None:
        errs.append(v.invalid(tpath.child("spec", "activeDeadlineSeconds"), tspec["activeDeadlineSeconds"],
                              f"activeDeadlineSeconds in {kind} is not Supported"))
    return errs


def spec_of(obj: Obj) -> dict[str, Any]:
    return as_dict(obj.get("spec"))


def status_counts(status: dict[str, Any], path: Path, fields: tuple[str, ...]) -> list[FieldError]:
    """Non-negative integer counters of a status."""
    errs: list[FieldError] = []
    for f in fields:
        errs.extend(validate_nonneg(status.get(f), path.child(f)))
    return errs


def not_greater(status: dict[str, Any], path: Path, field: str, than: str, label: str) -> list[FieldError]:
    """``status.<field>`` may not exceed ``status.<than>`` (label is how Kubernetes names the bound)."""
    a, b = status.get(field), status.get(than) or 0
    if is_int(a) and is_int(b) and a > b:
        return [v.invalid(path.child(field), a, f"cannot be greater than {label}")]
    return []


def selector_immutable(new: Obj, old: Obj) -> list[FieldError]:
    return v.immutable(spec_of(new).get("selector"), spec_of(old).get("selector"), Path("spec", "selector"))
