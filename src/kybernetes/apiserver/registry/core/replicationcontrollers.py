"""ReplicationControllers: the strategy and ``/scale``.

Mirrors ``pkg/registry/core/<resource>`` with the rules of ``pkg/apis/core/validation`` and the
``v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

from kybernetes.api import validation as v
from kybernetes.api.defaults import default_pod_template
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, validate_nonneg
from kybernetes.apiserver.registry.core.common import field_reader
from kybernetes.apiserver.registry.core.podvalidation import validate_pod_template
from kybernetes.apiserver.registry.strategy import Obj, Strategy

# --- ReplicationController -----------------------------------------------------------------


class ReplicationControllerStrategy(Strategy):
    kind = "ReplicationController"
    has_status = True
    field_selectors = {"status.replicas": field_reader("status", "replicas")}

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"replicas": 0}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        template = spec.get("template")
        labels = as_dict(template).get("metadata", {}).get("labels") if isinstance(template, dict) else None
        if isinstance(labels, dict) and labels:
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            meta = obj.setdefault("metadata", {})
            if not meta.get("labels"):
                meta["labels"] = dict(labels)
        spec.setdefault("replicas", 1)
        if isinstance(template, dict):
            default_pod_template(template)

    def validate(self, obj: Obj) -> list[FieldError]:
        spec = obj.get("spec")
        path = Path("spec")
        if not isinstance(spec, dict):
            return [v.required(path)]
        errs = validate_nonneg(spec.get("replicas"), path.child("replicas"))
        errs.extend(validate_nonneg(spec.get("minReadySeconds"), path.child("minReadySeconds")))
        selector = spec.get("selector")
        if not selector:
            errs.append(v.required(path.child("selector")))
        else:
            errs.extend(v.validate_labels(selector, path.child("selector")))
        template = spec.get("template")
        tpath = path.child("template")
        if not isinstance(template, dict):
            errs.append(v.required(tpath))
            return errs
        labels = as_dict(as_dict(template.get("metadata")).get("labels"))
        if isinstance(selector, dict) and selector and any(labels.get(k) != val for k, val in selector.items()):
            errs.append(v.invalid(tpath.child("metadata", "labels"), labels,
                                  "`selector` does not match template `labels`"))
        errs.extend(validate_pod_template(template, tpath, restart_policies=("Always",)))
        if as_dict(template.get("spec")).get("activeDeadlineSeconds") is not None:
            errs.append(v.forbidden(tpath.child("spec", "activeDeadlineSeconds"),
                                    "activeDeadlineSeconds in ReplicationController is not Supported"))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = as_dict(new.get("status"))
        errs: list[FieldError] = []
        for field in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                      "observedGeneration"):
            errs.extend(validate_nonneg(status.get(field), Path("status", field)))
        return errs
