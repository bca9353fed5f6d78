"""Printer of ``discovery.k8s.io/v1`` EndpointSlice.

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
    dstr,
    name_col,
    name_of,
)


def _list_more(items: list[str], count: int, limit: int = 3) -> str:
    """``listWithMoreString``: up to three items, a ``+ N more...`` tail, ``<unset>`` when empty."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text or "<unset>"


def _endpoint_slice_cells(es: JSON, now: datetime) -> Cells:
    ports: list[str] = []
    for p in dlist(es, "ports"):
        if not isinstance(p, dict):
            continue
        if isinstance(p.get("port"), int):
            ports.append(str(p["port"]))
        elif isinstance(p.get("name"), str):
            ports.append(p["name"])
        else:
            ports.append("*")
    addresses = [
        str(a) for e in dlist(es, "endpoints") if isinstance(e, dict) for a in dlist(e, "addresses")
    ]
    return [
        name_of(es),
        dstr(es, "addressType"),
        _list_more(ports, len(ports)),
        _list_more(addresses, len(addresses)),
        age(es, now),
    ]


ENDPOINT_SLICE = Printer(
    (
        name_col(),
        col("AddressType", description="IPv4, IPv6 or FQDN."),
        col("Ports", description="The ports of the endpoints."),
        col("Endpoints", description="The addresses of the endpoints."),
        age_col(),
    ),
    _endpoint_slice_cells,
)


BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    ("discovery.k8s.io", "EndpointSlice"): ENDPOINT_SLICE,
}
