"""apps/v1 Deployments.

Mirrors ``pkg/registry/apps/<resource>`` with the rules of ``pkg/apis/apps/validation`` and the
``apps/v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import (
    as_dict,
    int_or_percent_value,
    is_int,
    validate_int_or_percent,
    validate_nonneg,
)
from kybernetes.apiserver.registry.apps.common import (
    not_greater,
    selector_immutable,
    spec_of,
    status_counts,
    validate_selector_and_template,
)
from kybernetes.apiserver.registry.core import default_pod_template
from kybernetes.apiserver.registry.strategy import Obj, Strategy, semantic_equal

# --- Deployment --------------------------------------------------------------------------------

DEPLOYMENT_STRATEGIES = ("Recreate", "RollingUpdate")


class DeploymentStrategy(Strategy):
    kind = "Deployment"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        # DeploymentStatus has only omitempty fields: a new one serialises as {}.
        obj["status"] = {}

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        # Annotations are copied to the ReplicaSets, so changing them is a new generation too
        # (through the main resource: the controller's revision annotation goes through /status).
        new_ann = as_dict(new.get("metadata")).get("annotations")
        old_ann = as_dict(old.get("metadata")).get("annotations")
        return super().generation_changed(new, old) or not semantic_equal(new_ann, old_ann)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        strategy = spec.get("strategy")
        if not isinstance(strategy, dict):
            strategy = spec["strategy"] = {}
        if not strategy.get("type"):
            strategy["type"] = "RollingUpdate"
        if strategy["type"] == "RollingUpdate":
            ru = strategy.get("rollingUpdate")
            if not isinstance(ru, dict):
                ru = strategy["rollingUpdate"] = {}
            ru.setdefault("maxUnavailable", "25%")
            ru.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        if isinstance(spec.get("template"), dict):
            default_pod_template(spec["template"])

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs = validate_nonneg(spec.get("replicas"), p.child("replicas"))
        errs += validate_selector_and_template(spec, p, kind="Deployment")
        errs += self._validate_strategy(as_dict(spec.get("strategy")), p.child("strategy"))
        errs += validate_nonneg(spec.get("revisionHistoryLimit"), p.child("revisionHistoryLimit"))
        min_ready = spec.get("minReadySeconds")
        errs += validate_nonneg(min_ready, p.child("minReadySeconds"))
        deadline = spec.get("progressDeadlineSeconds")
        if deadline is not None:
            errs += validate_nonneg(deadline, p.child("progressDeadlineSeconds"))
            if is_int(deadline) and deadline <= (min_ready if is_int(min_ready) else 0):
                errs.append(v.invalid(p.child("progressDeadlineSeconds"), deadline,
                                      "must be greater than minReadySeconds"))
        return errs

    @staticmethod
    def _validate_strategy(strategy: dict[str, Any], path: Path) -> list[FieldError]:
        kind = strategy.get("type")
        ru = strategy.get("rollingUpdate")
        if kind == "Recreate":
            if ru is not None:
                return [v.forbidden(path.child("rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")]
            return []
        if kind == "RollingUpdate":
            if not isinstance(ru, dict):
                return [v.required(path.child("rollingUpdate"), "this should be defaulted and never be nil")]
            rp = path.child("rollingUpdate")
            errs = validate_int_or_percent(ru.get("maxUnavailable"), rp.child("maxUnavailable"))
            errs += validate_int_or_percent(ru.get("maxSurge"), rp.child("maxSurge"))
            if not errs and int_or_percent_value(ru.get("maxUnavailable")) == 0 \
                    and int_or_percent_value(ru.get("maxSurge")) == 0:
                errs.append(v.invalid(rp.child("maxUnavailable"), ru.get("maxUnavailable"),
                                      "may not be 0 when `maxSurge` is 0"))
            return errs
        return [v.not_supported(path.child("type"), kind, DEPLOYMENT_STRATEGIES)]

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + selector_immutable(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status, p = as_dict(new.get("status")), Path("status")
        errs = status_counts(status, p, ("observedGeneration", "replicas", "updatedReplicas", "readyReplicas",
                                         "availableReplicas", "unavailableReplicas", "collisionCount"))
        errs += not_greater(status, p, "updatedReplicas", "replicas", "status.replicas")
        errs += not_greater(status, p, "availableReplicas", "replicas", "status.replicas")
        errs += not_greater(status, p, "availableReplicas", "readyReplicas", "readyReplicas")
        return errs
