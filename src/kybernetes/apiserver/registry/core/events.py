"""core/v1 Events (``events.k8s.io`` serves the same objects: ``registry/events.py``).

Mirrors ``pkg/registry/core/<resource>`` with the rules of ``pkg/apis/core/validation`` and the
``v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict
from kybernetes.apiserver.registry.core.common import field_reader
from kybernetes.apiserver.registry.strategy import Obj, Strategy

EVENT_FIELD_SELECTORS: dict[str, Callable[[Obj], str]] = {
    **{f"involvedObject.{f}": field_reader("involvedObject", f)
       for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
    "reason": field_reader("reason"),
    "reportingComponent": field_reader("reportingComponent"),
    "source": field_reader("source", "component"),
    "type": field_reader("type"),
}


REPORTING_INSTANCE_MAX = 128
ACTION_MAX = 128
REASON_MAX = 128
NOTE_MAX = 1024


def _at_most(path: str, value: Any, limit: int) -> list[FieldError]:
    # Kubernetes reports these with an empty value, printed as "".
    return [v.invalid(path, "", f"can have at most {limit} characters")] if len(str(value or "")) > limit else []


class EventStrategy(Strategy):
    """core/v1 Events: ``legacyValidateEvent``, the only rules for writes through ``v1`` (those
    through ``events.k8s.io/v1`` add more: ``registry/events.py``). Paths are the internal names."""

    kind = "Event"
    tracks_generation = False
    allow_create_on_update = True
    field_selectors = EVENT_FIELD_SELECTORS

    def validate(self, obj: Obj) -> list[FieldError]:
        involved_ns = as_dict(obj.get("involvedObject")).get("namespace") or ""
        event_ns = as_dict(obj.get("metadata")).get("namespace") or ""
        ns_mismatch = [v.invalid(Path("involvedObject", "namespace"), involved_ns, "does not match event.namespace")]
        if not obj.get("eventTime"):
            # An old-style event: its namespace is its object's (or "default" for cluster objects).
            if (involved_ns and involved_ns != event_ns) or (not involved_ns and event_ns not in ("", "default")):
                return ns_mismatch
            return []
        errs: list[FieldError] = []
        if not involved_ns and event_ns not in ("default", "kube-system"):
            errs += ns_mismatch
        controller = str(obj.get("reportingComponent") or "")
        if not controller:
            errs.append(v.required("reportingController"))
        errs += [v.invalid("reportingController", controller, m) for m in v.is_qualified_name(controller)]
        for field, limit in (("reportingInstance", REPORTING_INSTANCE_MAX), ("action", ACTION_MAX),
                             ("reason", REASON_MAX)):
            if not obj.get(field):
                errs.append(v.required(field))
            errs += _at_most(field, obj.get(field), limit)
        return errs + _at_most("message", obj.get("message"), NOTE_MAX)
