"""Printer of ``scheduling.k8s.io/v1`` PriorityClass.

Each row function mirrors Kubernetes' ``printX`` for the kind from the JSON (v1) form, always
producing the wide cells (see :mod:`kybernetes.apiserver.printers.core`).
"""

from __future__ import annotations

from kybernetes.apiserver.printers._common import (
    Printer,
    age,
    age_col,
    col,
    dint,
    dstr,
    name_col,
    name_of,
)

PRIORITY_CLASS = Printer(
    (
        name_col(),
        col("Value", "integer", "The priority value."),
        col("Global-Default", "boolean", "Whether this is the default priority class."),
        age_col(),
        col("PreemptionPolicy", description="Whether pods of this class may preempt others."),
    ),
    lambda o, now: [
        name_of(o),
        dint(o, "value"),
        o.get("globalDefault") is True,
        age(o, now),
        dstr(o, "preemptionPolicy"),
    ],
)


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("scheduling.k8s.io", "PriorityClass"): PRIORITY_CLASS,
}
