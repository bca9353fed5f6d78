"""Structural schemas of API types: what fields exist and how lists and maps merge.

Built-in kinds use Kubernetes 1.32's own OpenAPI definitions, which the ``kubernetes-validate``
package ships as data (JSON Schema form: ``"type": ["string", "null"]``, ``$ref: "#/$defs/..."``).
Custom resources use their CRD's ``openAPIV3Schema``. Both are wrapped in :class:`Schema`, a
read-only view that resolves references lazily, so strategic merge patch, server-side apply,
field validation and the OpenAPI documents all read one source of truth.

The definitions file is 1.3 MB; it is parsed once, on first use, and nodes are cached by id.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

import orjson

_K8S_SCHEMA_DIR = "kubernetes-json-schema/v1.32.0-local"
_REF_PREFIX = "#/$defs/"


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """Kubernetes 1.32's type definitions by name (``io.k8s.api.core.v1.Pod``), JSON Schema form."""
    root = importlib.resources.files("kubernetes_validate").joinpath(_K8S_SCHEMA_DIR, "_definitions.json")
    data: dict[str, Any] = orjson.loads(root.read_bytes())
    defs: dict[str, dict[str, Any]] = data["$defs"]
    return defs


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
    return Schema(definitions()[name], definitions()) if name else None


def for_definition(name: str) -> Schema | None:
    d = definitions().get(name)
    return Schema(d, definitions()) if d is not None else None


def from_openapi_v3(raw: dict[str, Any]) -> Schema:
    """Wrap a CRD's ``openAPIV3Schema`` (no references)."""
    return Schema(raw, {})


class Schema:
    """A read-only view of one schema node; child nodes resolve ``$ref`` on access."""

    __slots__ = ("_defs", "raw")

    def __init__(self, raw: dict[str, Any], defs: dict[str, dict[str, Any]]) -> None:
        # A node that only refers elsewhere takes the target's content; its own keys
        # (description, x-kubernetes-patch-strategy) stay visible on top.
        ref = raw.get("$ref")
        if ref and ref.startswith(_REF_PREFIX):
            target = defs.get(ref[len(_REF_PREFIX):], {})
            merged = dict(target)
            merged.update({k: v for k, v in raw.items() if k != "$ref"})
            raw = merged
        self.raw = raw
        self._defs = defs

    def _wrap(self, raw: Any) -> Schema | None:
        return Schema(raw, self._defs) if isinstance(raw, dict) else None

    # --- shape --------------------------------------------------------------------------

    @property
    def type(self) -> str | None:
        t = self.raw.get("type")
        if isinstance(t, list):
            t = next((x for x in t if x != "null"), None)
        if t is None:
            if "properties" in self.raw or "additionalProperties" in self.raw:
                return "object"
            if "items" in self.raw:
                return "array"
        return t

    @property
    def int_or_string(self) -> bool:
        if self.raw.get("x-kubernetes-int-or-string"):
            return True
        types = {self._one_type(o) for o in self.raw.get("oneOf") or ()}
        return types == {"string", "integer"}

    @property
    def quantity_like(self) -> bool:
        types = {self._one_type(o) for o in self.raw.get("oneOf") or ()}
        return types == {"string", "number"}

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
        return self._wrap(self.properties.get(name))

    @property
    def items(self) -> Schema | None:
        return self._wrap(self.raw.get("items"))

    @property
    def additional_properties(self) -> Schema | None:
        ap = self.raw.get("additionalProperties")
        if ap is True:
            return Schema({}, self._defs)
        return self._wrap(ap)

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
        if self.raw.get("x-kubernetes-preserve-unknown-fields"):
            return True
        return self.type is None and not self.raw.get("oneOf")

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
