"""Printers of ``apps/v1`` Deployment, ReplicaSet, StatefulSet, DaemonSet and ControllerRevision.

Each row function mirrors Kubernetes' ``printX`` for the kind from the JSON (v1) form, always
producing the wide cells (see :mod:`kybernetes.apiserver.printers.core`).
"""

from __future__ import annotations

from datetime import datetime

from kybernetes.apiserver.printers._common import (
    JSON,
    SELECTOR_DESC,
    WIDE_SELECTOR,
    WIDE_TEMPLATE,
    Cells,
    Printer,
    age,
    age_col,
    col,
    container_cells,
    dig,
    dint,
    dmap,
    format_label_selector,
    format_labels,
    meta,
    name_col,
    name_of,
    replicas_printer,
    selector_string,
)


def _deployment_cells(d: JSON, now: datetime) -> Cells:
    names, images = container_cells(dig(d, "spec", "template", "spec"))
    sel = selector_string(dig(d, "spec", "selector"))
    return [
        name_of(d),
        f"{dint(d, 'status', 'readyReplicas')}/{dint(d, 'spec', 'replicas', default=1)}",
        dint(d, "status", "updatedReplicas"),
        dint(d, "status", "availableReplicas"),
        age(d, now),
        names,
        images,
        "<invalid>" if sel is None else sel,
    ]


DEPLOYMENT = Printer(
    (
        name_col(),
        col("Ready", description="Number of the pod with ready state"),
        col("Up-to-date", description="The number of replicas running the latest template."),
        col("Available", description="The number of replicas available to serve."),
        age_col(),
        *WIDE_TEMPLATE,
        WIDE_SELECTOR,
    ),
    _deployment_cells,
)


REPLICA_SET = replicas_printer(format_label_selector, SELECTOR_DESC)


def _stateful_set_cells(s: JSON, now: datetime) -> Cells:
    names, images = container_cells(dig(s, "spec", "template", "spec"))
    ready = f"{dint(s, 'status', 'readyReplicas')}/{dint(s, 'spec', 'replicas', default=1)}"
    return [name_of(s), ready, age(s, now), names, images]


STATEFUL_SET = Printer(
    (name_col(), col("Ready", description="Number of the pod with ready state"), age_col(), *WIDE_TEMPLATE),
    _stateful_set_cells,
)


def _daemon_set_cells(ds: JSON, now: datetime) -> Cells:
    status = dmap(ds, "status")
    names, images = container_cells(dig(ds, "spec", "template", "spec"))
    return [
        name_of(ds),
        dint(status, "desiredNumberScheduled"),
        dint(status, "currentNumberScheduled"),
        dint(status, "numberReady"),
        dint(status, "updatedNumberScheduled"),
        dint(status, "numberAvailable"),
        format_labels(dig(ds, "spec", "template", "spec", "nodeSelector")),
        age(ds, now),
        names,
        images,
        format_label_selector(dig(ds, "spec", "selector")),
    ]


DAEMON_SET = Printer(
    (
        name_col(),
        col("Desired", "integer", "The number of nodes that should run the daemon pod."),
        col("Current", "integer", "The number of nodes running at least one daemon pod."),
        col("Ready", "integer", "The number of nodes with a ready daemon pod."),
        col("Up-to-date", "integer", "The number of nodes running the latest daemon pod."),
        col("Available", "integer", "The number of nodes with an available daemon pod."),
        col("Node Selector", description="The node selector of the pod template."),
        age_col(),
        *WIDE_TEMPLATE,
        WIDE_SELECTOR,
    ),
    _daemon_set_cells,
)


def _group_kind_name(api_version: str, kind: str, name: str) -> str:
    """``formatResourceName``: ``kind.group/name`` in lower case (``kind/name`` for core)."""
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    gk = f"{kind}.{group}" if group else kind
    return f"{gk.lower()}/{name}" if gk else name


def _controller_revision_cells(cr: JSON, now: datetime) -> Cells:
    controller = "<none>"
    for ref in meta(cr).get("ownerReferences") or []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            controller = _group_kind_name(
                str(ref.get("apiVersion") or ""), str(ref.get("kind") or ""), str(ref.get("name") or "")
            )
            break
    return [name_of(cr), controller, dint(cr, "revision"), age(cr, now)]


CONTROLLER_REVISION = Printer(
    (
        name_col(),
        col("Controller", description="Controller of the object"),
        col("Revision", description="The revision number of the captured state."),
        age_col(),
    ),
    _controller_revision_cells,
)


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("apps", "Deployment"): DEPLOYMENT,
    ("apps", "ReplicaSet"): REPLICA_SET,
    ("apps", "StatefulSet"): STATEFUL_SET,
    ("apps", "DaemonSet"): DAEMON_SET,
    ("apps", "ControllerRevision"): CONTROLLER_REVISION,
}
