"""Strategies of scheduling.k8s.io: PriorityClasses.

Each class mirrors one kind's ``pkg/registry/<group>/<kind>/strategy.go`` together with its
``pkg/apis/<group>/validation`` rules and ``v1`` defaults; field paths and messages are
Kubernetes' own, because clients print them verbatim.
"""

from __future__ import annotations

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, is_int
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj, Strategy

# --- scheduling.k8s.io PriorityClass -----------------------------------------------------------

HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASSES = {
    "system-cluster-critical": 2 * HIGHEST_USER_PRIORITY,
    "system-node-critical": 2 * HIGHEST_USER_PRIORITY + 1000,
}
PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")


class PriorityClassStrategy(ClusterScoped):
    kind = "PriorityClass"
    tracks_generation = False

    def default(self, obj: Obj) -> None:
        obj.setdefault("value", 0)  # a plain int32 without omitempty
        if obj.get("preemptionPolicy") is None:
            obj["preemptionPolicy"] = "PreemptLowerPriority"

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        name = str(as_dict(obj.get("metadata")).get("name") or "")
        value, global_default = obj.get("value", 0), bool(obj.get("globalDefault"))
        if name.startswith("system-"):
            problem = ""
            if name not in SYSTEM_PRIORITY_CLASSES:
                problem = f"{name} is not a known system priority class"
            elif value != SYSTEM_PRIORITY_CLASSES[name]:
                problem = f"value of {name} PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}"
            elif global_default:
                problem = f"globalDefault of {name} PriorityClass must be false"
            if problem:
                errs.append(v.forbidden(Path("metadata", "name"),
                                        "priority class names with 'system-' prefix are reserved for system use only. "
                                        "error: " + problem))
        elif is_int(value) and value > HIGHEST_USER_PRIORITY:
            errs.append(v.forbidden(Path("value"),
                                    f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"))
        policy = obj.get("preemptionPolicy")
        if policy is not None:
            if policy == "":
                errs.append(v.required(Path("preemptionPolicy")))
            elif policy not in PREEMPTION_POLICIES:
                errs.append(v.not_supported(Path("preemptionPolicy"), policy, PREEMPTION_POLICIES))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if new.get("value", 0) != old.get("value", 0):
            errs.append(v.forbidden(Path("value"), "may not be changed in an update."))
        errs += v.immutable(new.get("preemptionPolicy"), old.get("preemptionPolicy"), Path("preemptionPolicy"))
        return errs


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("scheduling.k8s.io", "PriorityClass"): PriorityClassStrategy(),
}
