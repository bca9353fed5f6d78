"""Printers for ``flowcontrol.apiserver.k8s.io``: FlowSchema and PriorityLevelConfiguration.

As Kubernetes' ``printFlowSchema`` and ``printPriorityLevelConfiguration``: every column is a
string column; numbers are cells of their own type, and ``<none>`` stands for what a level does
not have (an exempt level's shares, a rejecting level's queues). ``MissingPL`` is the status of
the FlowSchema's ``Dangling`` condition, ``?`` before the APF controller has written one.
"""

from __future__ import annotations

from datetime import datetime

from kybernetes.apiserver.printers._common import (
    JSON,
    Cells,
    Printer,
    age,
    age_col,
    col,
    dig,
    dmap,
    name_col,
    name_of,
)

_NONE = "<none>"


def _flow_schema_cells(fs: JSON, now: datetime) -> Cells:
    spec = dmap(fs, "spec")
    method = dig(spec, "distinguisherMethod", "type")
    missing = "?"
    for c in dig(fs, "status", "conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Dangling":
            missing = str(c.get("status") or "")
            break
    return [
        name_of(fs),
        str(dig(spec, "priorityLevelConfiguration", "name") or ""),
        int(spec.get("matchingPrecedence") or 0),
        str(method) if method else _NONE,
        age(fs, now),
        missing,
    ]


FLOW_SCHEMA = Printer(
    (
        name_col(),
        col("PriorityLevel", description="The name of the priority level configuration being referenced."),
        col("MatchingPrecedence", description="The order in which FlowSchemas are evaluated (lower first)."),
        col("DistinguisherMethod", description="How requests of this schema are divided into flows."),
        age_col(),
        col("MissingPL", description="references a broken or non-existent PriorityLevelConfiguration"),
    ),
    _flow_schema_cells,
)


def _priority_level_cells(pl: JSON, now: datetime) -> Cells:
    spec = dmap(pl, "spec")
    shares: object = _NONE
    queues: object = _NONE
    hand: object = _NONE
    length: object = _NONE
    limited = spec.get("limited")
    if isinstance(limited, dict):
        shares = int(limited.get("nominalConcurrencyShares") or 0)
        queuing = dig(limited, "limitResponse", "queuing")
        if isinstance(queuing, dict):
            queues = int(queuing.get("queues") or 0)
            hand = int(queuing.get("handSize") or 0)
            length = int(queuing.get("queueLengthLimit") or 0)
    return [name_of(pl), str(spec.get("type") or ""), shares, queues, hand, length, age(pl, now)]


PRIORITY_LEVEL_CONFIGURATION = Printer(
    (
        name_col(),
        col("Type", description="Whether requests of this level are limited or exempt."),
        col("NominalConcurrencyShares", description="This level's share of the server's concurrency limit."),
        col("Queues", description="The number of queues of this priority level."),
        col("HandSize", description="The number of queues a flow may be shuffle-sharded into."),
        col("QueueLengthLimit", description="The most requests that may wait in one queue."),
        age_col(),
    ),
    _priority_level_cells,
)

BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"): FLOW_SCHEMA,
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"): PRIORITY_LEVEL_CONFIGURATION,
}
