"""Printer of ``policy/v1`` PodDisruptionBudget.

Each row function mirrors Kubernetes' ``printX`` for the kind from the JSON (v1) form, always
producing the wide cells (see :mod:`kybernetes.apiserver.printers.core`).
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
    dint,
    dmap,
    int_or_string,
    name_col,
    name_of,
)


def _pdb_cells(pdb: JSON, now: datetime) -> Cells:
    spec = dmap(pdb, "spec")
    min_a, max_u = spec.get("minAvailable"), spec.get("maxUnavailable")
    return [
        name_of(pdb),
        int_or_string(min_a) if min_a is not None else "N/A",
        int_or_string(max_u) if max_u is not None else "N/A",
        dint(pdb, "status", "disruptionsAllowed"),
        age(pdb, now),
    ]


POD_DISRUPTION_BUDGET = Printer(
    (
        name_col(),
        col("Min Available", description="The minimum number of pods that must be available."),
        col("Max Unavailable", description="The maximum number of pods that may be unavailable."),
        col("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
        age_col(),
    ),
    _pdb_cells,
)


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("policy", "PodDisruptionBudget"): POD_DISRUPTION_BUDGET,
}
