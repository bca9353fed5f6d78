"""Printer of ``autoscaling`` HorizontalPodAutoscaler, its TARGETS column as ``kubectl`` shows it.

Each row function mirrors Kubernetes' ``printX`` for the kind from the JSON (v1) form, always
producing the wide cells (see :mod:`kybernetes.apiserver.printers.core`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.apiserver.printers._common import (
    JSON,
    Cells,
    Printer,
    age,
    age_col,
    col,
    dig,
    dint,
    dlist,
    dmap,
    dstr,
    name_col,
    name_of,
)


def _qty(v: Any) -> str:
    return "<nil>" if v is None else str(v)


def _metric_target(spec: JSON, status: JSON | None, source: str, with_name: bool) -> str:
    """One Resource / ContainerResource / Pods / Object / External metric as ``current/target``."""
    s = dmap(spec, source)
    target = dmap(s, "target")
    current = dmap(status, source, "current") if isinstance(status, dict) else {}
    has_status = isinstance(status, dict) and isinstance(status.get(source), dict)
    prefix = f"{dstr(s, 'name')}: " if with_name else ""
    if source in ("resource", "containerResource"):
        if target.get("averageValue") is not None:
            cur = _qty(current.get("averageValue")) if has_status else "<unknown>"
            return f"{prefix}{cur}/{target['averageValue']}"
        cur = "<unknown>"
        if has_status and isinstance(current.get("averageUtilization"), int):
            cur = f"{current['averageUtilization']}%"
        tgt = "<auto>"
        if isinstance(target.get("averageUtilization"), int):
            tgt = f"{target['averageUtilization']}%"
        return f"{prefix}{cur}/{tgt}"
    if source == "pods":
        cur = _qty(current.get("averageValue")) if has_status else "<unknown>"
        return f"{cur}/{_qty(target.get('averageValue'))}"
    # object and external metrics: an average target is marked "(avg)".
    if target.get("averageValue") is not None:
        cur = "<unknown>"
        if has_status and current.get("averageValue") is not None:
            cur = str(current["averageValue"])
        return f"{cur}/{target['averageValue']} (avg)"
    cur = _qty(current.get("value")) if has_status else "<unknown>"
    return f"{cur}/{_qty(target.get('value'))}"


_METRIC_SOURCES = {
    "Resource": ("resource", True),
    "ContainerResource": ("containerResource", True),
    "Pods": ("pods", False),
    "Object": ("object", False),
    "External": ("external", False),
}


def hpa_targets(hpa: JSON) -> str:
    specs = [m for m in dlist(hpa, "spec", "metrics") if isinstance(m, dict)]
    if not specs:
        return "<none>"
    statuses = dlist(hpa, "status", "currentMetrics")
    shown: list[str] = []
    for i, m in enumerate(specs):
        st = statuses[i] if i < len(statuses) and isinstance(statuses[i], dict) else None
        src = _METRIC_SOURCES.get(str(m.get("type")))
        shown.append(_metric_target(m, st, *src) if src else "<unknown type>")
    if len(shown) > 2:
        return f"{', '.join(shown[:2])} + {len(shown) - 2} more..."
    return ", ".join(shown)


def _hpa_cells(hpa: JSON, now: datetime) -> Cells:
    ref = dmap(hpa, "spec", "scaleTargetRef")
    min_r = dig(hpa, "spec", "minReplicas")
    return [
        name_of(hpa),
        f"{dstr(ref, 'kind')}/{dstr(ref, 'name')}",
        hpa_targets(hpa),
        str(min_r) if isinstance(min_r, int) else "<unset>",
        dint(hpa, "spec", "maxReplicas"),
        dint(hpa, "status", "currentReplicas"),
        age(hpa, now),
    ]


HPA = Printer(
    (
        name_col(),
        col("Reference", description="The workload being scaled."),
        col("Targets", description="Current and target values of the metrics."),
        col("MinPods", description="The lower replica limit."),
        col("MaxPods", description="The upper replica limit."),
        col("Replicas", description="The current number of replicas."),
        age_col(),
    ),
    _hpa_cells,
)


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("autoscaling", "HorizontalPodAutoscaler"): HPA,
}
