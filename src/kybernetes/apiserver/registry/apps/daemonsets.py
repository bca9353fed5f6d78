"""apps/v1 DaemonSets.

Mirrors ``pkg/registry/apps/<resource>`` with the rules of ``pkg/apis/apps/validation`` and the
``apps/v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

import copy
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import (
    as_dict,
    int_or_percent_value,
    validate_int_or_percent,
    validate_nonneg,
)
from kybernetes.apiserver.registry.apps.common import (
    selector_immutable,
    spec_of,
    status_counts,
    validate_selector_and_template,
)
from kybernetes.apiserver.registry.core import default_pod_template
from kybernetes.apiserver.registry.strategy import Obj, Strategy, semantic_equal

# --- DaemonSet ---------------------------------------------------------------------------------

DS_STRATEGIES = ("RollingUpdate", "OnDelete")
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"


class DaemonSetStrategy(Strategy):
    kind = "DaemonSet"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
                         "numberMisscheduled": 0, "numberReady": 0}
        # templateGeneration starts at 1; apps/v1 carries it in an annotation.
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta.get("annotations"), dict):
            meta["annotations"] = {}
        meta["annotations"][TEMPLATE_GENERATION] = "1"

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        old_ann = as_dict(as_dict(old.get("metadata")).get("annotations"))
        try:
            gen = int(old_ann.get(TEMPLATE_GENERATION, "0"))
        except ValueError:
            gen = 0
        # Compared as Kubernetes does, after defaulting (its decoder defaults before this runs):
        # a client that sends the template without the server's defaults has not changed it.
        defaulted = {"spec": copy.deepcopy(spec_of(new))}
        self.default(defaulted)
        if not semantic_equal(spec_of(defaulted).get("template"), spec_of(old).get("template")):
            gen += 1
        if gen:
            meta = new.setdefault("metadata", {})
            if not isinstance(meta.get("annotations"), dict):
                meta["annotations"] = {}
            meta["annotations"][TEMPLATE_GENERATION] = str(gen)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        us = spec.get("updateStrategy")
        if not isinstance(us, dict):
            us = spec["updateStrategy"] = {}
        if not us.get("type"):
            us["type"] = "RollingUpdate"
        if us["type"] == "RollingUpdate":
            ru = us.get("rollingUpdate")
            if not isinstance(ru, dict):
                ru = us["rollingUpdate"] = {}
            ru.setdefault("maxUnavailable", 1)
            ru.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        if isinstance(spec.get("template"), dict):
            default_pod_template(spec["template"])

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs = validate_selector_and_template(spec, p, kind="DaemonSet")
        errs += validate_nonneg(spec.get("minReadySeconds"), p.child("minReadySeconds"))
        errs += validate_nonneg(spec.get("revisionHistoryLimit"), p.child("revisionHistoryLimit"))
        errs += self._validate_update_strategy(as_dict(spec.get("updateStrategy")), p.child("updateStrategy"))
        return errs

    @staticmethod
    def _validate_update_strategy(us: dict[str, Any], path: Path) -> list[FieldError]:
        kind = us.get("type")
        if kind == "OnDelete":
            return []
        if kind != "RollingUpdate":
            return [v.not_supported(path.child("type"), kind, DS_STRATEGIES)]
        ru = us.get("rollingUpdate")
        if not isinstance(ru, dict):
            return [v.required(path.child("rollingUpdate"))]
        rp = path.child("rollingUpdate")
        errs = validate_int_or_percent(ru.get("maxUnavailable"), rp.child("maxUnavailable"))
        errs += validate_int_or_percent(ru.get("maxSurge"), rp.child("maxSurge"))
        if errs:
            return errs
        unavailable = bool(int_or_percent_value(ru.get("maxUnavailable")))
        surge = bool(int_or_percent_value(ru.get("maxSurge")))
        if unavailable and surge:
            errs.append(v.invalid(rp.child("maxSurge"), ru.get("maxSurge"),
                                  "may not be set when maxUnavailable is non-zero"))
        elif not unavailable and not surge:
            errs.append(v.required(rp.child("maxUnavailable"), "cannot be 0 when maxSurge is 0"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + selector_immutable(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return status_counts(as_dict(new.get("status")), Path("status"), (
            "currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady",
            "observedGeneration", "updatedNumberScheduled", "numberAvailable", "numberUnavailable",
            "collisionCount"))
