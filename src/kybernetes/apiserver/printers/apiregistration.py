"""Printer of ``apiregistration.k8s.io/v1`` APIService (kube-aggregator's ``ConvertToTable``:
NAME, SERVICE (``Local`` or ``namespace/name``), AVAILABLE (the Available condition's status,
with its reason when not True; ``Unknown`` without one), AGE)."""

from __future__ import annotations

from typing import Any

from kybernetes.apiserver.printers._common import Printer, age, age_col, col, dlist, dmap, name_col, name_of


def _service(o: Any) -> str:
    svc = dmap(o, "spec", "service")
    return f"{svc.get('namespace') or ''}/{svc.get('name') or ''}" if svc else "Local"


def _available(o: Any) -> str:
    for cond in dlist(o, "status", "conditions"):
        if isinstance(cond, dict) and cond.get("type") == "Available":
            status = str(cond.get("status") or "")
            if status != "True" and cond.get("reason"):
                return f"{status} ({cond['reason']})"
            return status
    return "Unknown"


APISERVICE = Printer(
    (
        name_col(),
        col("Service", "string", "The reference to the service that hosts this API endpoint."),
        col("Available", "string", "Whether this service is available."),
        age_col(),
    ),
    lambda o, now: [name_of(o), _service(o), _available(o), age(o, now)],
)

BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("apiregistration.k8s.io", "APIService"): APISERVICE,
}
