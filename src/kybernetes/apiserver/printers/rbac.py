"""Printers of ``rbac.authorization.k8s.io/v1`` RoleBinding and ClusterRoleBinding (Role and
ClusterRole have no printer in Kubernetes: they get the default Name / Created At table).

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
    dlist,
    dmap,
    dstr,
    name_col,
    name_of,
)


def _subjects(binding: JSON) -> tuple[str, str, str]:
    users: list[str] = []
    groups: list[str] = []
    sas: list[str] = []
    for s in dlist(binding, "subjects"):
        if not isinstance(s, dict):
            continue
        kind, name = s.get("kind"), str(s.get("name") or "")
        if kind == "ServiceAccount":
            sas.append(f"{s.get('namespace') or ''}/{name}")
        elif kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


def _binding_cells(b: JSON, now: datetime) -> Cells:
    ref = dmap(b, "roleRef")
    return [name_of(b), f"{dstr(ref, 'kind')}/{dstr(ref, 'name')}", age(b, now), *_subjects(b)]


def _binding_printer(what: str) -> Printer:
    return Printer(
        (
            name_col(),
            col("Role", description="The role the subjects are bound to."),
            age_col(),
            col("Users", description=f"Users in the {what}", priority=1),
            col("Groups", description=f"Groups in the {what}", priority=1),
            col("ServiceAccounts", description=f"ServiceAccounts in the {what}", priority=1),
        ),
        _binding_cells,
    )


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("rbac.authorization.k8s.io", "RoleBinding"): _binding_printer("roleBinding"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _binding_printer("clusterRoleBinding"),
}
