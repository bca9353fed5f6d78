"""Strategy of ``node.k8s.io/v1`` RuntimeClass (``pkg/registry/node/runtimeclass`` with
``pkg/apis/node/validation``).

A RuntimeClass names a CRI handler (a DNS label, immutable) and optionally the pod overhead and the
scheduling constraints that pods using it get from the RuntimeClass admission plugin
(``apiserver/runtimeclass.py``). It keeps no generation and may be created by a PUT.
"""

from __future__ import annotations

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict
from kybernetes.apiserver.registry.core.podvalidation import (
    validate_resource_requirements,
    validate_tolerations,
)
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj, Strategy


class RuntimeClassStrategy(ClusterScoped):
    kind = "RuntimeClass"
    tracks_generation = False
    allow_create_on_update = True

    def validate(self, obj: Obj) -> list[FieldError]:
        handler = obj.get("handler")
        handler = "" if handler is None else str(handler)
        errs = [v.invalid(Path("handler"), handler, m) for m in v.is_dns1123_label(handler)]
        overhead = obj.get("overhead")
        if isinstance(overhead, dict):
            # Kubernetes validates podFixed as the limits of a ResourceRequirements, and says so.
            errs += validate_resource_requirements({"limits": overhead.get("podFixed")}, Path("overhead"))
        scheduling = obj.get("scheduling")
        if isinstance(scheduling, dict):
            sp = Path("scheduling")
            if scheduling.get("nodeSelector") is not None:
                errs += v.validate_labels(scheduling["nodeSelector"], sp.child("nodeSelector"))
            errs += validate_tolerations(scheduling.get("tolerations"), sp.child("tolerations"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + v.immutable(new.get("handler"), old.get("handler"), Path("handler"))


def runtime_class_overhead(rc: Obj) -> dict[str, str] | None:
    """The pod overhead a RuntimeClass defines, or None."""
    overhead = rc.get("overhead")
    if not isinstance(overhead, dict) or overhead.get("podFixed") is None:
        return None
    return dict(as_dict(overhead.get("podFixed")))


STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("node.k8s.io", "RuntimeClass"): RuntimeClassStrategy(),
}
