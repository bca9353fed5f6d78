"""Structural schemas of API types: what fields exist and how lists and maps merge.

Built-in kinds use Kubernetes 1.32's own OpenAPI definitions, which the ``kubernetes-validate``
package ships as data (JSON Schema form: ``"type": ["string", "null"]``, ``$ref: "#/$defs/..."``).
Custom resources use their CRD's ``openAPIV3Schema``. Both are wrapped in :class:`Schema`, a
read-only view that resolves references lazily, so strategic merge patch, server-side apply,
field validation and the OpenAPI documents all read one source of truth.

The definitions file is 1.3 MB; it is parsed once, on first use, and nodes are cached by id. It is
found without importing ``kubernetes_validate`` (whose package imports ``jsonschema``, which
nothing here uses: ~0.15 s of CPU and several MB in every process that validates).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

import orjson

K8S_SCHEMA_DIR = "kubernetes-json-schema/v1.32.0-local"
_REF_PREFIX = "#/$defs/"
_TIME_KINDS = {
    _REF_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.Time": "time",
    _REF_PREFIX + "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": "micro",
}


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """Kubernetes 1.32's type definitions by name (``io.k8s.api.core.v1.Pod``), JSON Schema form."""
    data: dict[str, Any] = orjson.loads(definitions_path().read_bytes())
    defs: dict[str, dict[str, Any]] = data["$defs"]
    return defs


def definitions_path() -> Path:
    """The definitions file inside the installed ``kubernetes_validate`` package, found by its spec
    (``find_spec`` locates a package without running its ``__init__``)."""
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("kubernetes_validate (Kubernetes' OpenAPI definitions) is not installed")
    return Path(next(iter(spec.submodule_search_locations)), K8S_SCHEMA_DIR, "_definitions.json")


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for name, d in definitions().items():
        for gvk in d.get("x-kubernetes-group-version-kind") or ():
            out[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = name
    return out


def definition_name(group: str, version: str, kind: str) -> str | None:
    """The definition name of a built-in kind, e.g. ``io.k8s.api.apps.v1.Deployment``."""
    return _gvk_index().get((group, version, kind))


def for_kind(group: str, version: str, kind: str) -> Schema | None:
    name = definition_name(group, version, kind)
    return for_definition(name) if name else None


@functools.cache
def for_definition(name: str) -> Schema | None:
    # One Schema per definition for the life of the process: its memoized children (and the
    # compiled views other modules key on its raw dict) are then built once, not per request.
    d = definitions().get(name)
    return Schema(d, definitions()) if d is not None else None


def from_openapi_v3(raw: dict[str, Any]) -> Schema:
    """Wrap a CRD's ``openAPIV3Schema`` (no references)."""
    return Schema(raw, {})


_UNSET: Any = object()


class Schema:
    """A read-only view of one schema node; child nodes resolve ``$ref`` on access.

    Children and derived facts are memoized on the node (the raw definitions are never
    mutated), so walking the same schema again costs dict lookups instead of new wrappers,
    ``$ref`` merges and type inference on every access.
    """

    __slots__ = ("_ap", "_defs", "_facts", "_items", "_kids", "raw", "time_kind")

    def __init__(self, raw: dict[str, Any], defs: dict[str, dict[str, Any]]) -> None:
        # A node that only refers elsewhere takes the target's content; its own keys
        # (description, x-kubernetes-patch-strategy) stay visible on top.
        ref = raw.get("$ref")
        self.time_kind: str | None = _TIME_KINDS.get(ref) if ref else None
        """``"time"`` for a ``metav1.Time``, ``"micro"`` for a ``metav1.MicroTime`` (see ``api/gotime``)."""
        if ref and ref.startswith(_REF_PREFIX):
            target = defs.get(ref[len(_REF_PREFIX):], {})
            merged = dict(target)
            merged.update({k: v for k, v in raw.items() if k != "$ref"})
            raw = merged
        self.raw = raw
        self._defs = defs
        self._kids: dict[str, Schema | None] = {}
        self._items: Schema | None = _UNSET
        self._ap: Schema | None = _UNSET
        self._facts: tuple[str | None, bool, bool, bool, bool] | None = None

    def _wrap(self, raw: Any) -> Schema | None:
        return Schema(raw, self._defs) if isinstance(raw, dict) else None

    def shape(self) -> tuple[str | None, bool, bool, bool, bool]:
        """``(type, int_or_string, quantity_like, is_open, is_bytes)`` in one call (for hot walks)."""
        return self._facts or self._shape()

    def _shape(self) -> tuple[str | None, bool, bool, bool, bool]:
        """(type, int_or_string, quantity_like, is_open, is_bytes), computed once."""
        raw = self.raw
        t = raw.get("type")
        if isinstance(t, list):
            t = next((x for x in t if x != "null"), None)
        if t is None:
            if "properties" in raw or "additionalProperties" in raw:
                t = "object"
            elif "items" in raw:
                t = "array"
        one_of = {self._one_type(o) for o in raw.get("oneOf") or ()}
        ios = bool(raw.get("x-kubernetes-int-or-string")) or one_of == {"string", "integer"}
        qty = one_of == {"string", "number"}
        is_open = bool(raw.get("x-kubernetes-preserve-unknown-fields")) or (t is None and not raw.get("oneOf"))
        is_bytes = t == "string" and raw.get("format") == "byte"
        self._facts = (t, ios, qty, is_open, is_bytes)
        return self._facts

    # --- shape --------------------------------------------------------------------------

    @property
    def type(self) -> str | None:
        return (self._facts or self._shape())[0]

    @property
    def is_bytes(self) -> bool:
        """A Go ``[]byte`` (``type: string, format: byte``): base64 in JSON, see :mod:`kybernetes.api.gobytes`."""
        return (self._facts or self._shape())[4]

    @property
    def int_or_string(self) -> bool:
        return (self._facts or self._shape())[1]

    @property
    def quantity_like(self) -> bool:
        return (self._facts or self._shape())[2]

    @staticmethod
    def _one_type(o: dict[str, Any]) -> str | None:
        t = o.get("type")
        if isinstance(t, list):
            return next((x for x in t if x != "null"), None)
        return t

    @property
    def properties(self) -> dict[str, Any]:
        return self.raw.get("properties") or {}

    def prop(self, name: str) -> Schema | None:
        kids = self._kids
        if name in kids:
            return kids[name]
        # Only declared properties are memoized: absent names (map keys) would grow it forever.
        raw = self.properties.get(name)
        out = self._wrap(raw)
        if raw is not None:
            kids[name] = out
        return out

    @property
    def items(self) -> Schema | None:
        if self._items is _UNSET:
            self._items = self._wrap(self.raw.get("items"))
        return self._items

    @property
    def additional_properties(self) -> Schema | None:
        if self._ap is _UNSET:
            ap = self.raw.get("additionalProperties")
            self._ap = Schema({}, self._defs) if ap is True else self._wrap(ap)
        return self._ap

    def child(self, name: str) -> Schema | None:
        """The schema of field or map key ``name`` (properties first, then additionalProperties)."""
        p = self.prop(name)
        return p if p is not None else self.additional_properties

    @property
    def required(self) -> list[str]:
        return list(self.raw.get("required") or ())

    @property
    def description(self) -> str:
        return str(self.raw.get("description") or "")

    @property
    def is_open(self) -> bool:
        """True where any field is allowed (free-form JSON, RawExtension, preserve-unknown-fields)."""
        return (self._facts or self._shape())[3]

    @property
    def preserve_unknown_fields(self) -> bool:
        return bool(self.raw.get("x-kubernetes-preserve-unknown-fields"))

    @property
    def embedded_resource(self) -> bool:
        return bool(self.raw.get("x-kubernetes-embedded-resource"))

    # --- merge semantics ----------------------------------------------------------------

    @property
    def patch_strategy(self) -> list[str]:
        """Strategic-merge-patch strategies of this field: ``merge``, ``retainKeys``, ``replace``."""
        s = self.raw.get("x-kubernetes-patch-strategy")
        return [x for x in s.split(",") if x] if s else []

    @property
    def patch_merge_key(self) -> str | None:
        return self.raw.get("x-kubernetes-patch-merge-key")

    @property
    def list_type(self) -> str:
        """Server-side apply's list type: ``atomic`` (default), ``set`` or ``map``."""
        return str(self.raw.get("x-kubernetes-list-type") or "atomic")

    @property
    def list_map_keys(self) -> list[str]:
        return list(self.raw.get("x-kubernetes-list-map-keys") or ())

    @property
    def map_type(self) -> str:
        """``granular`` (default: keys merge separately) or ``atomic`` (replaced whole)."""
        return str(self.raw.get("x-kubernetes-map-type") or "granular")

    def __repr__(self) -> str:
        return f"Schema(type={self.type!r}, keys={sorted(self.properties)[:6]!r})"
