"""Printers of Node (roles, addresses, versions) and ComponentStatus.

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
    dig,
    dlist,
    dmap,
    dstr,
    name_col,
    name_of,
)


def node_roles(node: JSON) -> str:
    """Roles from ``node-role.kubernetes.io/<role>`` keys and a ``kubernetes.io/role`` value."""
    roles: set[str] = set()
    for k, v in dmap(node, "metadata", "labels").items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k.removeprefix("node-role.kubernetes.io/")
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(str(v))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: JSON, type_: str) -> str:
    for a in dlist(node, "status", "addresses"):
        if isinstance(a, dict) and a.get("type") == type_:
            return str(a.get("address", ""))
    return "<none>"


def _node_cells(node: JSON, now: datetime) -> Cells:
    status: list[str] = []
    for c in dlist(node, "status", "conditions"):
        # Only the Ready condition is shown; the last one listed wins, like Kubernetes' map.
        if isinstance(c, dict) and c.get("type") == "Ready":
            status = ["Ready" if c.get("status") == "True" else "NotReady"]
    if not status:
        status = ["Unknown"]
    if dig(node, "spec", "unschedulable") is True:
        status.append("SchedulingDisabled")
    info = dmap(node, "status", "nodeInfo")
    return [
        name_of(node),
        ",".join(status),
        node_roles(node),
        age(node, now),
        dstr(info, "kubeletVersion"),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        dstr(info, "osImage") or "<unknown>",
        dstr(info, "kernelVersion") or "<unknown>",
        dstr(info, "containerRuntimeVersion") or "<unknown>",
    ]


NODE = Printer(
    (
        name_col(),
        col("Status", description="The status of the node"),
        col("Roles", description="The roles of the node"),
        age_col(),
        col("Version", description="The kubelet version the node reports."),
        col("Internal-IP", description="The node's first InternalIP address.", priority=1),
        col("External-IP", description="The node's first ExternalIP address.", priority=1),
        col("OS-Image", description="The OS image the node reports.", priority=1),
        col("Kernel-Version", description="The kernel version the node reports.", priority=1),
        col("Container-Runtime", description="The container runtime and version the node reports.",
            priority=1),
    ),
    _node_cells,
)


def _component_status_cells(cs: JSON, now: datetime) -> Cells:
    """``printComponentStatus``: the Healthy condition as Healthy/Unhealthy, with its message and error."""
    status, message, error = "Unknown", "", ""
    for c in dlist(cs, "conditions"):
        if isinstance(c, dict) and c.get("type") == "Healthy":
            status = "Healthy" if c.get("status") == "True" else "Unhealthy"
            message, error = str(c.get("message") or ""), str(c.get("error") or "")
            break
    return [name_of(cs), status, message, error]


COMPONENT_STATUS = Printer(
    (
        name_col(),
        col("Status", description="Whether the component is healthy (its Healthy condition)."),
        col("Message", description="What the component's health check said."),
        col("Error", description="Why the component's health check failed."),
    ),
    _component_status_cells,
)
