"""apps/v1 ReplicaSets.

Mirrors ``pkg/registry/apps/<resource>`` with the rules of ``pkg/apis/apps/validation`` and the
``apps/v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, validate_nonneg
from kybernetes.apiserver.registry.apps.common import (
    not_greater,
    selector_immutable,
    spec_of,
    status_counts,
    validate_selector_and_template,
)
from kybernetes.apiserver.registry.core import default_pod_template
from kybernetes.apiserver.registry.strategy import Obj, Strategy

# --- ReplicaSet --------------------------------------------------------------------------------


class ReplicaSetStrategy(Strategy):
    kind = "ReplicaSet"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"replicas": 0}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        if isinstance(spec.get("template"), dict):
            default_pod_template(spec["template"])

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs = validate_nonneg(spec.get("replicas"), p.child("replicas"))
        errs += validate_nonneg(spec.get("minReadySeconds"), p.child("minReadySeconds"))
        # Kubernetes says "for deployment" for ReplicaSets too; keep its words.
        errs += validate_selector_and_template(spec, p, kind="ReplicaSet")
        return [_rs_empty_selector_text(e) for e in errs]

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + selector_immutable(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status, p = as_dict(new.get("status")), Path("status")
        errs = status_counts(status, p, ("replicas", "fullyLabeledReplicas", "readyReplicas",
                                         "availableReplicas", "observedGeneration"))
        errs += not_greater(status, p, "fullyLabeledReplicas", "replicas", "status.replicas")
        errs += not_greater(status, p, "readyReplicas", "replicas", "status.replicas")
        errs += not_greater(status, p, "availableReplicas", "replicas", "status.replicas")
        errs += not_greater(status, p, "availableReplicas", "readyReplicas", "readyReplicas")
        return errs


def _rs_empty_selector_text(err: FieldError) -> FieldError:
    if err.detail == "empty selector is invalid for replicaset":
        err.detail = "empty selector is invalid for deployment"
    return err
