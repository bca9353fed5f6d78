"""The CustomResourceDefinition object itself: its defaults and its validation.

:func:`validate_crd` checks names, versions, storage version, printer columns, scale paths and,
through :mod:`.schema_rules`, that every version's schema is structural. :func:`default_crd`
fills the defaults the API server applies.
"""

from __future__ import annotations

import re
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.structural.schema_rules import structural_errors
from kybernetes.api.structural.values import Obj, as_dict, as_list, is_int
from kybernetes.api.validation import FieldError, Path

SCOPES = ("Cluster", "Namespaced")
COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
_SIMPLE_JSON_PATH = re.compile(r"^(\.[A-Za-z0-9_\-]+)+$")


def default_crd(crd: Obj) -> None:
    """The defaults kube-apiserver fills in a CustomResourceDefinition (in place)."""
    spec = crd.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    names = spec.setdefault("names", {})
    if isinstance(names, dict):
        kind = names.get("kind")
        if isinstance(kind, str) and kind:
            names.setdefault("singular", kind.lower())
            names.setdefault("listKind", kind + "List")
    conv = spec.get("conversion")
    if conv is None:
        spec["conversion"] = {"strategy": "None"}
    elif isinstance(conv, dict):
        conv.setdefault("strategy", "None")
        if conv.get("strategy") == "Webhook":
            webhook = conv.get("webhook")
            if isinstance(webhook, dict):
                cc = webhook.get("clientConfig")
                if isinstance(cc, dict) and isinstance(cc.get("service"), dict):
                    cc["service"].setdefault("port", 443)
    for ver in as_list(spec.get("versions")):
        if not isinstance(ver, dict):
            continue
        sc = as_dict(as_dict(ver.get("subresources")).get("scale"))
        if sc and "labelSelectorPath" in sc and sc["labelSelectorPath"] is None:
            del sc["labelSelectorPath"]


def storage_version(crd: Obj) -> str | None:
    """The name of the CRD version marked ``storage: true``, or None."""
    for ver in as_list(as_dict(crd.get("spec")).get("versions")):
        if isinstance(ver, dict) and ver.get("storage") is True:
            name = ver.get("name")
            return name if isinstance(name, str) else None
    return None


def validate_crd(crd: Obj) -> list[FieldError]:
    """CustomResourceDefinition validation as kube-apiserver does it (metadata aside)."""
    errs: list[FieldError] = []
    spec = crd.get("spec")
    sp = Path("spec")
    if not isinstance(spec, dict):
        return [v.required(sp)]
    group = spec.get("group")
    names = as_dict(spec.get("names"))
    plural = names.get("plural")

    # The object's name is the resource's fully qualified name.
    meta = as_dict(crd.get("metadata"))
    name = meta.get("name")
    if isinstance(group, str) and isinstance(plural, str) and name != f"{plural}.{group}":
        errs.append(v.invalid(Path("metadata", "name"), name, 'must be spec.names.plural+"."+spec.group'))

    if not group:
        errs.append(v.required(sp.child("group")))
    elif not isinstance(group, str):
        errs.append(v.type_invalid(sp.child("group"), group, "must be a string"))
    elif msgs := v.is_dns1123_subdomain(group):
        errs.append(v.invalid(sp.child("group"), group, ",".join(msgs)))
    elif len(group.split(".")) < 2:
        errs.append(v.invalid(sp.child("group"), group, "should be a domain with at least one dot"))

    scope = spec.get("scope")
    if not scope:
        errs.append(v.required(sp.child("scope")))
    elif scope not in SCOPES:
        errs.append(v.not_supported(sp.child("scope"), scope, SCOPES))

    errs.extend(_validate_versions(spec, sp))

    for f in ("plural", "singular", "kind", "listKind"):
        if not names.get(f):
            errs.append(v.required(sp.child("names", f)))
    errs.extend(validate_names(names, sp.child("names")))
    return errs


def _validate_versions(spec: Obj, sp: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    versions = spec.get("versions")
    vp = sp.child("versions")
    if not isinstance(versions, list) or not versions:
        return [v.required(vp, "must have exactly one version marked as storage version")]
    seen: set[str] = set()
    unique = True
    storage = 0
    served = 0
    for i, ver in enumerate(versions):
        p = vp.index(i)
        if not isinstance(ver, dict):
            errs.append(v.type_invalid(p, ver, "must be an object"))
            continue
        name = ver.get("name")
        if not isinstance(name, str) or not name:
            errs.append(v.required(p.child("name")))
        else:
            if name in seen:
                unique = False
            seen.add(name)
            if msgs := v.is_dns1035_label(name):
                errs.append(v.invalid(p.child("name"), name, ",".join(msgs)))
        if ver.get("storage") is True:
            storage += 1
        if ver.get("served") is True:
            served += 1
        for f in ("served", "storage"):
            if f in ver and not isinstance(ver[f], bool):
                errs.append(v.type_invalid(p.child(f), ver[f], "must be a boolean"))
        schema = as_dict(ver.get("schema")).get("openAPIV3Schema")
        errs.extend(structural_errors(schema, p.child("schema", "openAPIV3Schema")))
        errs.extend(_validate_subresources(ver.get("subresources"), p.child("subresources")))
        for j, col in enumerate(as_list(ver.get("additionalPrinterColumns"))):
            errs.extend(_validate_column(col, p.child("additionalPrinterColumns").index(j)))
    if not unique:
        errs.append(v.invalid(vp, versions, "must contain unique version names"))
    if storage != 1:
        errs.append(v.invalid(vp, versions, "must have exactly one version marked as storage version"))
    if served == 0:
        errs.append(v.invalid(vp, versions, "must have at least one version marked as served"))
    return errs


def validate_names(names: Obj, p: Path) -> list[FieldError]:
    """Shape of ``spec.names`` / ``status.acceptedNames`` (requiredness is the caller's)."""
    errs: list[FieldError] = []
    for f in ("plural", "singular"):
        val = names.get(f)
        if isinstance(val, str) and val and (msgs := v.is_dns1035_label(val)):
            errs.append(v.invalid(p.child(f), val, ",".join(msgs)))
    for f in ("kind", "listKind"):
        val = names.get(f)
        if isinstance(val, str) and val and (msgs := v.is_dns1035_label(val.lower())):
            errs.append(v.invalid(p.child(f), val, "may have mixed case, but should otherwise match: " + ",".join(msgs)))
    kind, list_kind = names.get("kind"), names.get("listKind")
    if kind and kind == list_kind:
        errs.append(v.invalid(p.child("listKind"), list_kind, "kind and listKind may not be the same"))
    for i, short in enumerate(as_list(names.get("shortNames"))):
        if not isinstance(short, str) or (msgs := v.is_dns1035_label(short)):
            errs.append(v.invalid(p.child("shortNames").index(i), short,
                                  ",".join(v.is_dns1035_label(short)) if isinstance(short, str) else "must be a string"))
    for i, cat in enumerate(as_list(names.get("categories"))):
        if not isinstance(cat, str) or (msgs := v.is_dns1035_label(cat)):
            errs.append(v.invalid(p.child("categories").index(i), cat,
                                  ",".join(v.is_dns1035_label(cat)) if isinstance(cat, str) else "must be a string"))
    return errs


def _validate_subresources(subs: Any, p: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(subs, dict):
        return errs
    scale = subs.get("scale")
    if scale is None:
        return errs
    sp = p.child("scale")
    if not isinstance(scale, dict):
        return [v.type_invalid(sp, scale, "must be an object")]
    for f, prefixes, what in (
        ("specReplicasPath", (".spec.",), ".spec"),
        ("statusReplicasPath", (".status.",), ".status"),
        ("labelSelectorPath", (".spec.", ".status."), "either .spec or .status"),
    ):
        val = scale.get(f)
        if val is None or val == "":
            if f != "labelSelectorPath":
                errs.append(v.required(sp.child(f)))
            continue
        if not isinstance(val, str) or not _SIMPLE_JSON_PATH.match(val) or not val.startswith(prefixes):
            errs.append(v.invalid(sp.child(f), val, f"should be a json path under {what}"))
    return errs


def _validate_column(col: Any, p: Path) -> list[FieldError]:
    if not isinstance(col, dict):
        return [v.type_invalid(p, col, "must be an object")]
    errs: list[FieldError] = []
    if not col.get("name"):
        errs.append(v.required(p.child("name")))
    typ = col.get("type")
    if not typ:
        errs.append(v.required(p.child("type")))
    elif typ not in COLUMN_TYPES:
        errs.append(v.not_supported(p.child("type"), typ, COLUMN_TYPES))
    fmt = col.get("format")
    if fmt and fmt not in COLUMN_FORMATS:
        errs.append(v.not_supported(p.child("format"), fmt, COLUMN_FORMATS))
    jp = col.get("jsonPath")
    if not jp:
        errs.append(v.required(p.child("jsonPath")))
    elif not isinstance(jp, str) or not jp.startswith("."):
        errs.append(v.invalid(p.child("jsonPath"), jp, "must be a simple json path starting with ."))
    prio = col.get("priority")
    if prio is not None and (not is_int(prio) or prio < 0):
        errs.append(v.invalid(p.child("priority"), prio, "must be greater than or equal to 0"))
    return errs


__all__ = [
    "default_crd",
    "storage_version",
    "validate_crd",
    "validate_names",
]
