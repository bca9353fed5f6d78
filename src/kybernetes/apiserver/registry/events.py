"""events.k8s.io/v1 Events: the core/v1 Events, seen through the newer API.

In Kubernetes both APIs serve one resource, stored once (as core Events here, under
``/registry/events``): an event written through either is read, listed, watched, patched
and deleted through the other. This module holds what the newer API adds:

* the conversion both ways (``pkg/apis/events/v1/conversion.go``): ``regarding`` is
  ``involvedObject``, ``note`` is ``message``, ``reportingController`` is ``reportingComponent``,
  and the old bookkeeping fields come back as ``deprecatedSource``, ``deprecatedFirstTimestamp``,
  ``deprecatedLastTimestamp`` and ``deprecatedCount``. Objects come out in the Go structs' field
  order with what Go always writes (``regarding`` and ``deprecatedSource`` even when empty, the
  timestamps as ``null`` when unset), so a conversion there and back changes nothing;
* the stricter rules of writes made through events.k8s.io/v1 (``ValidateEventCreate`` and
  ``ValidateEventUpdate`` for that request version), written, as Kubernetes writes them, for the
  core form: their error paths are the internal (core) names;
* its field selectors, which name the core form's fields in events.k8s.io terms.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict
from kybernetes.apiserver.registry.conversion import Stored, View
from kybernetes.apiserver.registry.core.events import EventStrategy
from kybernetes.apiserver.registry.strategy import Obj

API_VERSION = "events.k8s.io/v1"
EVENT_TYPES = ("Normal", "Warning")

# events.k8s.io/v1 field -> core/v1 field, for the fields that are only renamed.
_RENAMED = (("regarding", "involvedObject"), ("note", "message"), ("reportingController", "reportingComponent"),
            ("deprecatedSource", "source"), ("deprecatedFirstTimestamp", "firstTimestamp"),
            ("deprecatedLastTimestamp", "lastTimestamp"), ("deprecatedCount", "count"))
_V1_FROM = dict(_RENAMED)  # events.k8s.io/v1 field -> the core field it is read from
_CORE_FROM = {core: new for new, core in _RENAMED}

# Each form's fields in its Go struct's order, and what Go writes for an unset one: a struct is
# always written ({}), a time as null, a string or number without omitempty as its zero; None
# marks omitempty (left out when unset).
_V1_FIELDS: tuple[tuple[str, Any], ...] = (
    ("eventTime", "null"), ("series", None), ("reportingController", None), ("reportingInstance", None),
    ("action", None), ("reason", None), ("regarding", "{}"), ("related", None), ("note", None), ("type", None),
    ("deprecatedSource", "{}"), ("deprecatedFirstTimestamp", "null"), ("deprecatedLastTimestamp", "null"),
    ("deprecatedCount", None),
)
_CORE_FIELDS: tuple[tuple[str, Any], ...] = (
    ("involvedObject", "{}"), ("reason", None), ("message", None), ("source", "{}"),
    ("firstTimestamp", "null"), ("lastTimestamp", "null"), ("count", None), ("type", None),
    ("eventTime", "null"), ("series", None), ("action", None), ("related", None),
    ("reportingComponent", '""'), ("reportingInstance", '""'),
)
_ZERO: dict[str, Callable[[], Any]] = {"{}": dict, "null": lambda: None, '""': str}


def _convert(obj: Obj, api_version: str, fields: tuple[tuple[str, Any], ...], read_from: dict[str, str]) -> Obj:
    out: Obj = {"kind": "Event", "apiVersion": api_version, "metadata": obj.get("metadata") or {}}
    for name, unset in fields:
        value = obj.get(read_from.get(name, name))
        if value not in (None, "", 0, {}):
            out[name] = value
        elif unset is not None:
            out[name] = value if isinstance(value, dict) else _ZERO[unset]()
    return out


def to_core(ev: Obj) -> Obj:
    """An events.k8s.io/v1 Event as a core/v1 Event (``Convert_v1_Event_To_core_Event``)."""
    return _convert(ev, "v1", _CORE_FIELDS, _CORE_FROM)


def to_events_v1(ev: Obj) -> Obj:
    """A core/v1 Event as an events.k8s.io/v1 Event (``Convert_core_Event_To_v1_Event``)."""
    return _convert(ev, API_VERSION, _V1_FIELDS, _V1_FROM)


def _go_equal_form(value: Any) -> Any:
    """``value`` with Go's zero values left out, so that immutability compares as Go's DeepEqual
    of the typed fields does (an absent string is the empty one)."""
    if isinstance(value, dict):
        return {k: x for k, x in ((k, _go_equal_form(x)) for k, x in value.items()) if x not in (None, "", 0, {})}
    return None if value in ("", 0, {}) else value


# Internal (core) field names, as ValidateEventUpdate lists them; reason twice, as it does.
_IMMUTABLE = (("involvedObject", "involvedObject"), ("reason", "reason"), ("message", "message"),
              ("source", "source"), ("firstTimestamp", "firstTimestamp"), ("lastTimestamp", "lastTimestamp"),
              ("count", "count"), ("reason", "reason"), ("type", "type"), ("eventTime", "eventTime"),
              ("action", "action"), ("related", "related"), ("reportingComponent", "reportingController"),
              ("reportingInstance", "reportingInstance"))


def _unset(detail_path: str) -> FieldError:
    return v.invalid(detail_path, "", "needs to be unset")


class EventsV1Strategy(EventStrategy):
    """Writes through events.k8s.io/v1: the legacy rules, then the strict ones (on the core form)."""

    @staticmethod
    def _series(obj: Obj) -> list[FieldError]:
        series = obj.get("series")
        if not isinstance(series, dict):
            return []
        errs: list[FieldError] = []
        count = series.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 2:
            errs.append(v.invalid("series.count", "", "should be at least 2"))
        if not series.get("lastObservedTime"):
            errs.append(v.required("series.lastObservedTime"))
        return errs

    def validate(self, obj: Obj) -> list[FieldError]:
        errs = super().validate(obj) + self._series(obj)
        if not obj.get("eventTime"):
            errs.append(v.required(Path("eventTime")))
        if obj.get("type") not in EVENT_TYPES:
            errs.append(v.invalid("type", "", f"has invalid value: {obj.get('type') or ''}"))
        errs += [_unset(f) for f in ("firstTimestamp", "lastTimestamp", "count") if obj.get(f)]
        source = as_dict(obj.get("source"))
        if source.get("component") or source.get("host"):
            errs.append(_unset("source"))
        return errs

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = super().validate(new)
        if new.get("series") != old.get("series"):
            errs += self._series(new)
        for field, reported in _IMMUTABLE:
            value = new.get(field)
            if _go_equal_form(value) != _go_equal_form(old.get(field)):
                errs.append(v.invalid(reported, value, "field is immutable"))
        return errs


# fieldSelector labels of events.k8s.io/v1 -> the core form's (AddFieldLabelConversionsForEvent).
FIELD_LABELS = {
    "reason": "reason",
    **{f"regarding.{f}": f"involvedObject.{f}"
       for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
    "reportingController": "reportingComponent",
    "source": "source",
    "type": "type",
}

STORED = Stored(("", "events"), "v1", (
    View(API_VERSION, to_core, to_events_v1, strategy=EventsV1Strategy(), field_labels=FIELD_LABELS),
))

__all__ = ["FIELD_LABELS", "STORED", "EventsV1Strategy", "to_core", "to_events_v1"]
