"""Printer of ``coordination.k8s.io/v1`` Lease.

Each row function mirrors Kubernetes' ``printX`` for the kind from the JSON (v1) form, always
producing the wide cells (see :mod:`kybernetes.apiserver.printers.core`).
"""

from __future__ import annotations

from kybernetes.apiserver.printers._common import (
    Printer,
    age,
    age_col,
    col,
    dstr,
    name_col,
    name_of,
)

LEASE = Printer(
    (name_col(), col("Holder", description="Who holds the lease."), age_col()),
    lambda o, now: [name_of(o), dstr(o, "spec", "holderIdentity"), age(o, now)],
)


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("coordination.k8s.io", "Lease"): LEASE,
}
