"""Printer of the core/v1 Event, as Kubernetes' ``printEvent``.

Like every core printer, each row function mirrors Kubernetes' ``printX`` for the kind (see
:mod:`kybernetes.apiserver.printers.core`).
"""

from __future__ import annotations

from datetime import datetime

from kybernetes.api.timeutil import parse_rfc3339
from kybernetes.apiserver.printers._common import (
    JSON,
    Cells,
    Column,
    Printer,
    col,
    dig,
    dint,
    dmap,
    dstr,
    name_of,
    since,
)


def _event_source(component: str, host: str) -> str:
    return f"{component}, {host}" if host else component


def event_cells(ev: JSON, now: datetime) -> Cells:
    """The event row (``printEvent``), from a core/v1 Event; events.k8s.io/v1 events are the same
    objects and are printed from this form too."""
    first, last = ev.get("firstTimestamp"), ev.get("lastTimestamp")
    first_cell = since(first, now) if parse_rfc3339(first) else since(ev.get("eventTime"), now)
    last_cell = since(last, now) if parse_rfc3339(last) else first_cell
    count = dint(ev, "count")
    series = dig(ev, "series")
    if isinstance(series, dict):
        last_cell = since(series.get("lastObservedTime"), now)
        count = dint(series, "count")
    elif count == 0:
        # Singleton events of the new API carry no count.
        count = 1
    involved, source = dmap(ev, "involvedObject"), dmap(ev, "source")
    kind, name = str(involved.get("kind") or ""), str(involved.get("name") or "")
    target = f"{kind.lower()}/{name}" if name else kind.lower()
    src = _event_source(
        dstr(source, "component") or dstr(ev, "reportingComponent"),
        dstr(source, "host") or dstr(ev, "reportingInstance"),
    )
    return [
        last_cell,
        dstr(ev, "type"),
        dstr(ev, "reason"),
        target,
        str(involved.get("fieldPath") or ""),
        src,
        dstr(ev, "message").strip(),
        first_cell,
        count,
        name_of(ev),
    ]


EVENT_COLUMNS = (
    col("Last Seen", description="When the event was last observed."),
    col("Type", description="Normal or Warning."),
    col("Reason", description="Why the event happened, in a short machine-readable form."),
    col("Object", description="The object the event is about."),
    col("Subobject", description="The part of the object the event is about.", priority=1),
    col("Source", description="The component (and host) that reported the event.", priority=1),
    col("Message", description="A human-readable description of the event."),
    col("First Seen", description="When the event was first observed.", priority=1),
    col("Count", description="How many times the event happened.", priority=1),
    # The event's own name is a wide column, yet still the one marked as the name.
    Column("Name", "string", "name", "The event's name.", 1),
)



EVENT = Printer(EVENT_COLUMNS, event_cells)
