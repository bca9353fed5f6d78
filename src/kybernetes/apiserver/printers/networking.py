"""Printers of ``networking.k8s.io/v1`` Ingress, IngressClass and NetworkPolicy.

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
    dig,
    dlist,
    dmap,
    dstr,
    format_label_selector,
    name_col,
    name_of,
)


def _ingress_cells(ing: JSON, now: datetime) -> Cells:
    spec = dmap(ing, "spec")
    rules = [r for r in dlist(spec, "rules") if isinstance(r, dict)]
    hosts: list[str] = []
    more = False
    for r in rules:
        if len(hosts) == 3:
            more = True
        if not more and r.get("host"):
            hosts.append(str(r["host"]))
    hosts_cell = ",".join(hosts) or "*"
    if hosts and more:
        hosts_cell = f"{hosts_cell} + {len(rules) - 3} more..."
    found: set[str] = set()
    for i in dlist(ing, "status", "loadBalancer", "ingress"):
        if isinstance(i, dict) and (i.get("ip") or i.get("hostname")):
            found.add(str(i.get("ip") or i.get("hostname")))
    klass = spec.get("ingressClassName")
    return [
        name_of(ing),
        klass if isinstance(klass, str) else "<none>",
        hosts_cell,
        ",".join(sorted(found)),
        "80, 443" if dlist(spec, "tls") else "80",
        age(ing, now),
    ]


INGRESS = Printer(
    (
        name_col(),
        col("Class", description="The name of the IngressClass resource that should be used for additional configuration"),
        col("Hosts", description="Hosts that incoming requests are matched against before the ingress rule"),
        col("Address", description="Address is a list containing ingress points for the load-balancer"),
        col("Ports", description="Ports of TLS configurations that open"),
        age_col(),
    ),
    _ingress_cells,
)


def _ingress_class_cells(ic: JSON, now: datetime) -> Cells:
    params = dig(ic, "spec", "parameters")
    cell = "<none>"
    if isinstance(params, dict):
        cell = str(params.get("kind") or "")
        if isinstance(params.get("apiGroup"), str):
            cell += "." + params["apiGroup"]
        cell += "/" + str(params.get("name") or "")
    return [name_of(ic), dstr(ic, "spec", "controller"), cell, age(ic, now)]


INGRESS_CLASS = Printer(
    (
        name_col(),
        col("Controller", description="Controller that is responsible for handling this class"),
        col("Parameters", description="A reference to a resource with additional parameters"),
        age_col(),
    ),
    _ingress_class_cells,
)

NETWORK_POLICY = Printer(
    (name_col(), col("Pod-Selector", description="The pods the policy applies to."), age_col()),
    lambda o, now: [name_of(o), format_label_selector(dmap(o, "spec", "podSelector")), age(o, now)],
)


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("networking.k8s.io", "Ingress"): INGRESS,
    ("networking.k8s.io", "IngressClass"): INGRESS_CLASS,
    ("networking.k8s.io", "NetworkPolicy"): NETWORK_POLICY,
}
