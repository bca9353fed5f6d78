"""JSON values as the OpenAPI v3 value validations see them: types, numbers, string formats.

Shared by validation, defaulting and pruning of custom objects and by the CRD checks. Pure, and
never raises on malformed input.
"""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import ipaddress
import json
import re
import uuid
from typing import Any

from kybernetes.api import gobytes
from kybernetes.api.obj import Obj
from kybernetes.api.validation import Path

ROOT_RESERVED = ("apiVersion", "kind", "metadata")
JUNCTORS = ("allOf", "anyOf", "oneOf")

# --- helpers -------------------------------------------------------------------------------------


def json_type(value: Any) -> str:
    """The JSON type name kube-openapi reports for a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def is_int(value: Any) -> bool:
    """Whether a JSON value is an integer."""
    # JSON has one number type; an integral float (1.0) counts as an integer, as in go-openapi.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _type_matches(t: str, value: Any) -> bool:
    if t == "integer":
        return is_int(value)
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return json_type(value) == t


def _num(x: Any) -> str:
    """Numbers as Go's %v prints them: 10, not 10.0."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def canonical(value: Any) -> str:
    """A comparable form of a JSON value (Python's ``True == 1`` must not make them equal)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    """A schema's ``pattern`` compiled (cached), or None if it does not compile."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def in_body(path: Path) -> str:
    """``spec.x in body``: how kube-openapi names a field in its error texts."""
    return f"{path} in body" if str(path) else "in body"


# --- formats -------------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w))+$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")


def format_ok(fmt: str, value: str) -> bool:
    """String formats Kubernetes checks; unknown formats pass, as in kube-openapi."""
    try:
        if fmt == "date-time":
            if not _RFC3339.match(value):
                return False
            dt.datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace(" ", "T"))
            return True
        if fmt == "date":
            if not _DATE.match(value):
                return False
            dt.date.fromisoformat(value)
            return True
        if fmt == "byte":
            gobytes.decode(value)  # kube-openapi's check is StdEncoding.DecodeString
            return True
        if fmt == "uuid":
            uuid.UUID(value)
            return True
        if fmt == "ipv4":
            ipaddress.IPv4Address(value)
            return True
        if fmt == "ipv6":
            ipaddress.IPv6Address(value)
            return True
        if fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
            return "/" in value
        if fmt == "hostname":
            return bool(_HOSTNAME.match(value)) and len(value) <= 253
        if fmt == "email":
            return bool(_EMAIL.match(value))
        if fmt == "duration":
            return bool(_DURATION.match(value))
        if fmt == "mac":
            return bool(_MAC.match(value))
    except (ValueError, binascii.Error):
        return False
    return True


# The bounds of the integer formats.
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def as_dict(x: Any) -> Obj:
    """``x`` if it is a dict, else an empty one: malformed input is treated as absent."""
    return x if isinstance(x, dict) else {}


def as_list(x: Any) -> list[Any]:
    """``x`` if it is a list, else an empty one: malformed input is treated as absent."""
    return x if isinstance(x, list) else []


__all__ = [
    "INT_RANGES",
    "JUNCTORS",
    "ROOT_RESERVED",
    "as_dict",
    "as_list",
    "canonical",
    "compile_pattern",
    "format_ok",
    "in_body",
    "is_int",
    "json_type",
]
