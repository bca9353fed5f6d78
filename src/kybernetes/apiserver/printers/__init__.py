"""Server-side printing: objects as ``meta.k8s.io/v1`` Tables, the way ``kubectl get`` shows them.

kubectl does not format objects itself. It asks the API server for
``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the columns and cells it gets
back, dropping the priority-1 columns unless ``-o wide``. So the server has to know, per kind, the
columns Kubernetes defines and how each cell is computed: that is this package.

Layout:

* :mod:`._common` -- the :class:`Column` type and the formatting helpers every printer shares
  (``HumanDuration`` ages, label and selector strings, container/image lists);
* :mod:`.core` (a package, one module per family of core kinds) and one module per named API group
  (:mod:`.apps`, :mod:`.batch`, :mod:`.autoscaling`, :mod:`.coordination`, :mod:`.discovery`,
  :mod:`.scheduling`, :mod:`.policy`, :mod:`.networking`, :mod:`.storage`, :mod:`.rbac`, :mod:`.node`,
  :mod:`.certificates`, :mod:`.flowcontrol`, :mod:`.admissionregistration`) -- one :class:`~._common.Printer` per built-in kind, mirroring
  Kubernetes' ``pkg/printers/internalversion`` (always the wide variant, as the real server does);
* :mod:`.jsonpath` -- the JSONPath subset CRD ``additionalPrinterColumns`` need;
* this module -- the dispatch (built-in printer, custom-resource columns, or the default table) and
  :func:`to_table`, which assembles the Table object and the per-row ``object`` that kubectl reads
  namespaces and labels from (``includeObject``: None, Metadata or Object).

Three kinds of table exist, chosen the way Kubernetes chooses them:

1. built-in kinds with a printer get its columns;
2. custom resources (``custom_columns`` is not None) get Name plus the CRD version's
   ``additionalPrinterColumns``, or Name plus an ``Age`` date column when the CRD lists none;
3. everything else (Role, ClusterRole, LimitRange, CustomResourceDefinition, unknown kinds) gets
   the default table: Name and ``Created At`` (type date, an RFC 3339 UTC timestamp).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from kybernetes.api.timeutil import parse_rfc3339
from kybernetes.apiserver.printers import (
    admissionpolicies,
    admissionregistration,
    apiregistration,
    apps,
    autoscaling,
    batch,
    certificates,
    coordination,
    core,
    discovery,
    flowcontrol,
    networking,
    node,
    policy,
    rbac,
    scheduling,
    storage,
)
from kybernetes.apiserver.printers._common import (
    AGE_DESC,
    JSON,
    NAME_DESC,
    Cells,
    Column,
    Printer,
    created_at,
    go_text,
    human_duration,
    meta,
    name_col,
    name_of,
    since,
)
from kybernetes.apiserver.printers.jsonpath import jsonpath_get
from kybernetes.errors import BadRequest

__all__ = [
    "Column",
    "columns_for",
    "has_printer",
    "human_duration",
    "jsonpath_get",
    "row_cells",
    "since",
    "to_table",
]

TABLE_API_VERSION = "meta.k8s.io/v1"
INCLUDE_OBJECT = ("None", "Metadata", "Object")

_DEFAULT_COLUMNS = (
    Column("Name", "string", "name", NAME_DESC),
    Column("Created At", "date", "", "When the object was created (metadata.creationTimestamp)."),
)

# When a CRD version lists no printer columns, Kubernetes serves this one.
_DEFAULT_CUSTOM_COLUMNS: list[JSON] = [
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": AGE_DESC},
]


_BY_GROUP_KIND: dict[tuple[str, str], Printer] = {
    **apps.BY_GROUP_KIND, **batch.BY_GROUP_KIND, **autoscaling.BY_GROUP_KIND, **coordination.BY_GROUP_KIND,
    **discovery.BY_GROUP_KIND, **scheduling.BY_GROUP_KIND, **policy.BY_GROUP_KIND, **networking.BY_GROUP_KIND,
    **storage.BY_GROUP_KIND, **rbac.BY_GROUP_KIND, **node.BY_GROUP_KIND, **certificates.BY_GROUP_KIND,
    **flowcontrol.BY_GROUP_KIND, **admissionregistration.BY_GROUP_KIND,
    **admissionpolicies.BY_GROUP_KIND, **apiregistration.BY_GROUP_KIND,
}


def _printer(group: str, kind: str) -> Printer | None:
    if group == "":
        return core.BY_KIND.get(kind)
    return _BY_GROUP_KIND.get((group, kind))


def has_printer(group: str, kind: str) -> bool:
    """True if Kubernetes defines dedicated columns for this built-in kind."""
    return _printer(group, kind) is not None


# ---------------------------------------------------------------------------------- custom columns


def _custom(custom_columns: list[JSON]) -> list[JSON]:
    return custom_columns if custom_columns else _DEFAULT_CUSTOM_COLUMNS


def _custom_column(c: JSON) -> Column:
    path = str(c.get("jsonPath") or "")
    return Column(
        name=str(c.get("name") or ""),
        type=str(c.get("type") or "string"),
        format=str(c.get("format") or ""),
        description=str(c.get("description") or f"Custom resource column at JSONPath {path}"),
        priority=int(c.get("priority") or 0),
    )


def _go_json(value: Any) -> str:
    """Go's ``json.Marshal`` of a map or list: compact, keys sorted, HTML characters escaped."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _custom_cell(type_: str, value: Any, now: datetime) -> Any:
    """One CRD column cell: Kubernetes' ``cellForJSONValue``, plus text printing for strings."""
    if value is None:
        return None
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if type_ == "string":
        # String columns show whatever is there as text; objects and lists as compact JSON.
        return _go_json(value) if isinstance(value, dict | list) else go_text(value)
    if type_ == "integer":
        return int(value) if is_number else None
    if type_ == "number":
        return float(value) if is_number else None
    if type_ == "boolean":
        return value if isinstance(value, bool) else None
    if type_ == "date":
        if not isinstance(value, str):
            return None
        if value in ("", "null"):
            return "<unknown>"
        if parse_rfc3339(value) is None:
            return "<invalid>"
        return since(value, now)
    return None


def _custom_cells(obj: JSON, now: datetime, custom_columns: list[JSON]) -> Cells:
    cells: Cells = [name_of(obj)]
    for c in _custom(custom_columns):
        # An unparsable path reaches nothing, so its cells stay empty (None), as do missing keys.
        value = jsonpath_get(obj, str(c.get("jsonPath") or ""))
        cells.append(_custom_cell(str(c.get("type") or "string"), value, now))
    return cells


# --------------------------------------------------------------------------------------- public API


def columns_for(group: str, kind: str, custom_columns: list[JSON] | None = None) -> list[Column]:
    """The column definitions Kubernetes serves for a kind (all priorities, in order).

    Pass ``custom_columns`` (a CRD version's ``additionalPrinterColumns``, possibly empty) for a
    custom resource; leave it None for built-in kinds.
    """
    if custom_columns is not None:
        return [name_col(), *(_custom_column(c) for c in _custom(custom_columns))]
    printer = _printer(group, kind)
    return list(printer.columns if printer else _DEFAULT_COLUMNS)


def row_cells(
    group: str, kind: str, obj: JSON, now: datetime, custom_columns: list[JSON] | None = None
) -> list[Any]:
    """One object's cells, in the order of :func:`columns_for` (wide cells included)."""
    if custom_columns is not None:
        return _custom_cells(obj, now, custom_columns)
    printer = _printer(group, kind)
    if printer is None:
        return [name_of(obj), created_at(obj)]
    return printer.cells(obj, now)


def _row_object(obj: JSON, include_object: str, api_version: str) -> JSON | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": api_version, "metadata": meta(obj)}


def to_table(
    group: str,
    kind: str,
    objs: list[JSON],
    *,
    now: datetime,
    include_object: str = "Metadata",
    list_meta: JSON | None = None,
    custom_columns: list[JSON] | None = None,
    no_headers: bool = False,
    api_version: str = TABLE_API_VERSION,
    row_objects: list[JSON] | None = None,
) -> JSON:
    """The ``Table`` for a list (or a single object, as a one-element list).

    ``include_object`` is the ``includeObject`` query parameter (empty means Metadata); an unknown
    value raises :class:`~kybernetes.errors.BadRequest`. ``list_meta`` is the list's metadata
    (resourceVersion, continue, remainingItemCount); without it a single object's resourceVersion
    is used. ``no_headers`` (the ``noHeaders`` table option kubectl sends on watches) leaves the
    column definitions out. ``api_version`` is the Table's group/version, ``meta.k8s.io/v1`` or
    ``meta.k8s.io/v1beta1``; row metadata objects use the same one. ``row_objects``, when given,
    are what the rows embed in place of ``objs`` (the same objects as the request's version
    serves them, where ``objs`` are the form the printer reads).
    """
    include = include_object or "Metadata"
    if include not in INCLUDE_OBJECT:
        raise BadRequest(f'unrecognized includeObject value: "{include_object}"')

    metadata: JSON = {}
    if list_meta is not None:
        for key in ("resourceVersion", "continue", "remainingItemCount"):
            if list_meta.get(key) not in (None, ""):
                metadata[key] = list_meta[key]
    elif len(objs) == 1 and meta(objs[0]).get("resourceVersion"):
        metadata["resourceVersion"] = meta(objs[0])["resourceVersion"]

    printer = None if custom_columns is not None else _printer(group, kind)
    rows: list[JSON] = []
    for i, obj in enumerate(objs):
        row: JSON = {"cells": row_cells(group, kind, obj, now, custom_columns)}
        if printer is not None and printer.conditions is not None:
            conditions = printer.conditions(obj)
            if conditions:
                row["conditions"] = conditions
        row["object"] = _row_object(obj if row_objects is None else row_objects[i], include, api_version)
        rows.append(row)

    columns = None if no_headers else [c.to_json() for c in columns_for(group, kind, custom_columns)]
    return {
        "kind": "Table",
        "apiVersion": api_version,
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    }
