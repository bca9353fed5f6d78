"""Strategies of policy: PodDisruptionBudgets (their eviction rules are in ``apiserver/eviction.py``).

Each class mirrors one kind's ``pkg/registry/<group>/<kind>/strategy.go`` together with its
``pkg/apis/<group>/validation`` rules and ``v1`` defaults; field paths and messages are
Kubernetes' own, because clients print them verbatim.
"""

from __future__ import annotations

from kybernetes.api import validation as v
from kybernetes.api.label_selectors import validate_label_selector_object
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, as_list, validate_int_or_percent, validate_nonneg
from kybernetes.apiserver.registry.apps import spec_of
from kybernetes.apiserver.registry.strategy import Obj, Strategy

# --- policy PodDisruptionBudget ----------------------------------------------------------------

UNHEALTHY_POD_EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")


class PodDisruptionBudgetStrategy(Strategy):
    kind = "PodDisruptionBudget"
    has_status = True

    def prepare_for_create(self, obj: Obj) -> None:
        # These four counters are not omitempty: a new PDB shows them as zero.
        obj["status"] = {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0, "expectedPods": 0}

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs: list[FieldError] = []
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            errs.append(v.invalid(p, spec, "minAvailable and maxUnavailable cannot be both set"))
        for f in ("minAvailable", "maxUnavailable"):
            errs += validate_int_or_percent(spec.get(f), p.child(f))
        errs += validate_label_selector_object(spec.get("selector"), p.child("selector"))
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
            errs.append(v.not_supported(p.child("unhealthyPodEvictionPolicy"), policy, UNHEALTHY_POD_EVICTION_POLICIES))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status, p = as_dict(new.get("status")), Path("status")
        errs: list[FieldError] = []
        for f in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods", "observedGeneration"):
            errs += validate_nonneg(status.get(f), p.child(f))
        for i, cond in enumerate(as_list(status.get("conditions"))):
            cond, cp = as_dict(cond), p.child("conditions").index(i)
            if not cond.get("type"):
                errs.append(v.required(cp.child("type")))
            if cond.get("status") not in ("True", "False", "Unknown"):
                errs.append(v.not_supported(cp.child("status"), cond.get("status"), ("False", "True", "Unknown")))
        return errs


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("policy", "PodDisruptionBudget"): PodDisruptionBudgetStrategy(),
}
