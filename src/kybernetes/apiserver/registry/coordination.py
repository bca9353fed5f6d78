"""Strategies of coordination.k8s.io: Leases (leader election, node heartbeats).

Each class mirrors one kind's ``pkg/registry/<group>/<kind>/strategy.go`` together with its
``pkg/apis/<group>/validation`` rules and ``v1`` defaults; field paths and messages are
Kubernetes' own, because clients print them verbatim.
"""

from __future__ import annotations

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import is_int
from kybernetes.apiserver.registry.apps import spec_of
from kybernetes.apiserver.registry.strategy import Obj, Strategy

# --- coordination.k8s.io Lease -----------------------------------------------------------------


class LeaseStrategy(Strategy):
    kind = "Lease"
    tracks_generation = False
    allow_create_on_update = True

    def validate(self, obj: Obj) -> list[FieldError]:
        spec, p = spec_of(obj), Path("spec")
        errs: list[FieldError] = []
        duration = spec.get("leaseDurationSeconds")
        if duration is not None and (not is_int(duration) or duration <= 0):
            errs.append(v.invalid(p.child("leaseDurationSeconds"), duration, "must be greater than 0"))
        transitions = spec.get("leaseTransitions")
        if transitions is not None and (not is_int(transitions) or transitions < 0):
            errs.append(v.invalid(p.child("leaseTransitions"), transitions, "must be greater than or equal to 0"))
        return errs


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("coordination.k8s.io", "Lease"): LeaseStrategy(),
}
