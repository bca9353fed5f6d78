"""Printers of Namespace, ConfigMap, Secret, ServiceAccount and ResourceQuota.

Like every core printer, each row function mirrors Kubernetes' ``printX`` for the kind (see
:mod:`kybernetes.apiserver.printers.core`).
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
    dlist,
    dmap,
    dstr,
    name_col,
    name_of,
)

NAMESPACE = Printer(
    (name_col(), col("Status", description="The status of the namespace"), age_col()),
    lambda o, now: [name_of(o), dstr(o, "status", "phase"), age(o, now)],
)

CONFIG_MAP = Printer(
    (name_col(), col("Data", description="The number of data and binaryData entries."), age_col()),
    lambda o, now: [name_of(o), len(dmap(o, "data")) + len(dmap(o, "binaryData")), age(o, now)],
)

SECRET = Printer(
    (
        name_col(),
        col("Type", description="The secret type."),
        col("Data", description="The number of data entries."),
        age_col(),
    ),
    lambda o, now: [name_of(o), dstr(o, "type"), len(dmap(o, "data")), age(o, now)],
)

SERVICE_ACCOUNT = Printer(
    (name_col(), col("Secrets", description="The number of secrets listed in the account."), age_col()),
    lambda o, now: [name_of(o), len(dlist(o, "secrets")), age(o, now)],
)


def _quota_cells(rq: JSON, now: datetime) -> Cells:
    hard, used = dmap(rq, "status", "hard"), dmap(rq, "status", "used")
    requests: list[str] = []
    limits: list[str] = []
    for res in sorted(hard):
        out = limits if res.split(".")[0] == "limits" and "." in res else requests
        out.append(f"{res}: {used.get(res, '0')}/{hard[res]}")
    return [name_of(rq), ", ".join(requests), ", ".join(limits), age(rq, now)]


RESOURCE_QUOTA = Printer(
    (
        name_col(),
        col("Request", description="Used and hard amounts of the requests-type resources."),
        col("Limit", description="Used and hard amounts of the limits-type resources."),
        age_col(),
    ),
    _quota_cells,
)
