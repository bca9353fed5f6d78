"""Field errors and the validation rules every kind shares (apimachinery's ``validation/field``).

A validator returns a list of :class:`FieldError`; nothing raises until the registry turns the
whole list into one 422 ``Invalid`` with a cause per error, so a client sees every problem at once.
Field paths are rendered as Kubernetes renders them: ``spec.containers[0].image``,
``metadata.labels[app]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from kybernetes import errors

_new_path = object.__new__


class Path:
    """An immutable field path: ``Path("spec").child("containers").index(0).child("image")``."""

    __slots__ = ("_s",)

    def __init__(self, *names: str) -> None:
        self._s = ".".join(names)

    @classmethod
    def _raw(cls, s: str) -> Path:
        p = _new_path(cls)
        p._s = s
        return p

    # Validators make a path for every field they look at, error or not: these build one
    # without going through __init__ (a validated pod makes a few dozen).
    def child(self, *names: str) -> Path:
        s = self._s
        for n in names:
            s = f"{s}.{n}" if s else n
        p = _new_path(Path)
        p._s = s
        return p

    def index(self, i: int) -> Path:
        p = _new_path(Path)
        p._s = f"{self._s}[{i}]"
        return p

    def key(self, k: str) -> Path:
        p = _new_path(Path)
        p._s = f"{self._s}[{k}]"
        return p

    def __str__(self) -> str:
        return self._s

    def __repr__(self) -> str:
        return f"Path({self._s!r})"


_TYPES = {
    "FieldValueNotFound": "Not found",
    "FieldValueRequired": "Required value",
    "FieldValueDuplicate": "Duplicate value",
    "FieldValueInvalid": "Invalid value",
    "FieldValueNotSupported": "Unsupported value",
    "FieldValueForbidden": "Forbidden",
    "FieldValueTooLong": "Too long",
    "FieldValueTooMany": "Too many",
    "FieldValueTypeInvalid": "Invalid value",
}

_NO_VALUE = object()


@dataclass
class FieldError:
    """One problem with one field; ``type`` is a Kubernetes cause reason (``FieldValueInvalid``...)."""

    type: str
    field: str
    value: Any = _NO_VALUE
    detail: str = ""

    def message(self) -> str:
        text = _TYPES.get(self.type, "Invalid value")
        if self.type in ("FieldValueInvalid", "FieldValueNotSupported", "FieldValueDuplicate",
                         "FieldValueTypeInvalid", "FieldValueNotFound") and self.value is not _NO_VALUE:
            text += ": " + _render(self.value)
        if self.detail:
            text += ": " + self.detail
        return text

    def cause(self) -> dict[str, Any]:
        return {"reason": self.type, "message": self.message(), "field": self.field}

    def __str__(self) -> str:
        return f"{self.field}: {self.message()}"


def _render(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return "{...}" if isinstance(value, dict) else "[...]" if isinstance(value, list) else str(value)


def required(path: Path | str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", str(path), detail=detail)


def invalid(path: Path | str, value: Any, detail: str = "") -> FieldError:
    return FieldError("FieldValueInvalid", str(path), value, detail)


def not_supported(path: Path | str, value: Any, valid: list[str] | tuple[str, ...]) -> FieldError:
    detail = "supported values: " + ", ".join(f'"{v}"' for v in valid) if valid else ""
    return FieldError("FieldValueNotSupported", str(path), value, detail)


def forbidden(path: Path | str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", str(path), detail=detail)


def duplicate(path: Path | str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", str(path), value)


def not_found(path: Path | str, value: Any) -> FieldError:
    return FieldError("FieldValueNotFound", str(path), value)


def too_long(path: Path | str, max_len: int) -> FieldError:
    return FieldError("FieldValueTooLong", str(path), detail=f"must have at most {max_len} bytes")


def too_many(path: Path | str, actual: int, max_items: int) -> FieldError:
    return FieldError("FieldValueTooMany", str(path), detail=f"must have at most {max_items} items")


def type_invalid(path: Path | str, value: Any, detail: str) -> FieldError:
    return FieldError("FieldValueTypeInvalid", str(path), value, detail)


def raise_if_errors(kind: str, name: str, errs: list[FieldError], group: str = "") -> None:
    """Raise one 422 ``Invalid`` carrying every error, if there are any."""
    if errs:
        raise errors.Invalid(kind, name, [e.cause() for e in errs], group=group)


# --- names, labels, annotations --------------------------------------------------------------

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_VAR_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_CONFIG_MAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def is_dns1123_label(value: str) -> list[str]:
    msgs = []
    if len(value) > DNS1123_LABEL_MAX:
        msgs.append(f"must be no more than {DNS1123_LABEL_MAX} characters")
    if not _DNS1123_LABEL.match(value):
        msgs.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
            "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
            "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    return msgs


def is_dns1123_subdomain(value: str) -> list[str]:
    msgs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        msgs.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        msgs.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
            "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return msgs


def is_dns1035_label(value: str) -> list[str]:
    msgs = []
    if len(value) > DNS1123_LABEL_MAX:
        msgs.append(f"must be no more than {DNS1123_LABEL_MAX} characters")
    if not _DNS1035_LABEL.match(value):
        msgs.append(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
            "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
            "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        )
    return msgs


def is_qualified_name(value: str) -> list[str]:
    """A label key or annotation key: an optional DNS subdomain prefix, ``/``, and a name part."""
    # Memoised: the same few keys (app, node.kubernetes.io/not-ready...) come in every object.
    try:
        return list(_qualified_name_msgs(value))
    except TypeError:  # not hashable: the check itself says what is wrong
        return _check_qualified_name(value)


@lru_cache(maxsize=4096)
def _qualified_name_msgs(value: str) -> tuple[str, ...]:
    return tuple(_check_qualified_name(value))


def _check_qualified_name(value: str) -> list[str]:
    msgs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            msgs.append("prefix part must be non-empty")
        else:
            msgs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and "
            "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
            "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
            "and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        msgs.append("name part must be non-empty")
    elif len(name) > 63:
        msgs.append("name part must be no more than 63 characters")
    if name and not _QUALIFIED_NAME.match(name):
        msgs.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
            "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        )
    return msgs


def is_label_value(value: str) -> list[str]:
    msgs = []
    if len(value) > 63:
        msgs.append("must be no more than 63 characters")
    if not _LABEL_VALUE.match(value):
        msgs.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
            "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        )
    return msgs


def is_c_identifier(value: str) -> bool:
    return bool(_C_IDENTIFIER.match(value))


def is_env_var_name(value: str) -> list[str]:
    if _ENV_VAR_NAME.match(value):
        return []
    return [
        "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', "
        "and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex "
        "used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
    ]


def is_config_map_key(value: str) -> list[str]:
    msgs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        msgs.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX} characters")
    if not _CONFIG_MAP_KEY.match(value):
        msgs.append(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
            "or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        )
    if value in (".", ".."):
        msgs.append(f"must not be '{value}'")
    elif value.startswith(".."):
        msgs.append("must not start with '..'")
    return msgs


def validate_labels(labels: Any, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    if labels is None:
        return errs
    if not isinstance(labels, dict):
        return [type_invalid(path, labels, "must be a map of string keys to string values")]
    for k, v in labels.items():
        for m in is_qualified_name(k):
            errs.append(invalid(path, k, m))
        if not isinstance(v, str):
            errs.append(type_invalid(path.key(k), v, "must be a string"))
            continue
        for m in is_label_value(v):
            errs.append(invalid(path, v, m))  # ValidateLabels names the map, not the key
    return errs


TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def validate_annotations(annotations: Any, path: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    if annotations is None:
        return errs
    if not isinstance(annotations, dict):
        return [type_invalid(path, annotations, "must be a map of string keys to string values")]
    total = 0
    for k, v in annotations.items():
        for m in is_qualified_name(k.lower()):
            errs.append(invalid(path, k, m))
        if not isinstance(v, str):
            errs.append(type_invalid(path.key(k), v, "must be a string"))
            continue
        total += len(k) + len(v)
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def validate_object_meta(
    meta: Any,
    *,
    namespaced: bool,
    name_validator: Any = is_dns1123_subdomain,
    path: Path | None = None,
) -> list[FieldError]:
    """The checks every object's metadata gets (apimachinery's ``ValidateObjectMeta``)."""
    path = path or Path("metadata")
    if not isinstance(meta, dict):
        return [required(path)]
    errs: list[FieldError] = []
    name = meta.get("name")
    if not name and not meta.get("generateName"):
        errs.append(required(path.child("name"), "name or generateName is required"))
    elif name:
        if not isinstance(name, str):
            errs.append(type_invalid(path.child("name"), name, "must be a string"))
        else:
            for m in name_validator(name):
                errs.append(invalid(path.child("name"), name, m))
    ns = meta.get("namespace")
    if namespaced:
        if not ns:
            errs.append(required(path.child("namespace")))
        elif isinstance(ns, str):
            for m in is_dns1123_label(ns):
                errs.append(invalid(path.child("namespace"), ns, m))
    elif ns:
        errs.append(forbidden(path.child("namespace"), "not allowed on this type"))
    errs.extend(validate_labels(meta.get("labels"), path.child("labels")))
    errs.extend(validate_annotations(meta.get("annotations"), path.child("annotations")))
    fins = meta.get("finalizers")
    if fins is not None:
        if not isinstance(fins, list):
            errs.append(type_invalid(path.child("finalizers"), fins, "must be a list of strings"))
        else:
            for i, f in enumerate(fins):
                if not isinstance(f, str):
                    errs.append(type_invalid(path.child("finalizers").index(i), f, "must be a string"))
                    continue
                for m in is_qualified_name(f):
                    errs.append(invalid(path.child("finalizers").index(i), f, m))
    gen = meta.get("generation")
    if gen is not None and (not isinstance(gen, int) or gen < 0):
        errs.append(invalid(path.child("generation"), gen, "must be greater than or equal to 0"))
    for i, ref in enumerate(meta.get("ownerReferences") or []):
        p = path.child("ownerReferences").index(i)
        if not isinstance(ref, dict):
            errs.append(type_invalid(p, ref, "must be an object"))
            continue
        for f in ("apiVersion", "kind", "name", "uid"):
            if not ref.get(f):
                errs.append(invalid(p.child(f), ref.get(f, ""), f"{f} must not be empty"))
    return errs


def validate_object_meta_update(new: dict[str, Any], old: dict[str, Any], path: Path | None = None) -> list[FieldError]:
    """Fields of metadata that never change after creation."""
    path = path or Path("metadata")
    errs: list[FieldError] = []
    for f in ("name", "namespace", "uid", "creationTimestamp"):
        nv, ov = new.get(f), old.get(f)
        if f in ("uid", "creationTimestamp") and nv is None:
            continue
        if nv != ov:
            errs.append(invalid(path.child(f), nv, "field is immutable"))
    if old.get("deletionTimestamp") and new.get("deletionTimestamp") != old.get("deletionTimestamp"):
        errs.append(invalid(path.child("deletionTimestamp"), new.get("deletionTimestamp"), "field is immutable; may only be set once"))
    return errs


def immutable(new: Any, old: Any, path: Path | str) -> list[FieldError]:
    if new != old:
        return [invalid(path, new, "field is immutable")]
    return []
