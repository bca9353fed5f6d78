"""Field checks every API group's validation uses: ports and protocols, enums, non-negative
integers, int-or-percent values, IPs and CIDRs, resource names and quantities, and the tolerant
accessors (:func:`as_dict`, :func:`as_list`) that let a validator walk a malformed object and
report every error instead of failing on the first wrong type.

Messages are Kubernetes' own (``k8s.io/apimachinery/pkg/util/validation`` and
``pkg/apis/core/validation``). Each check returns a list of
:class:`~kybernetes.api.validation.FieldError` and never raises.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, TypeGuard

from kybernetes.api import validation as v
from kybernetes.api.quantity import is_valid_quantity, parse_quantity
from kybernetes.api.validation import FieldError, Path

PROTOCOLS = ("SCTP", "TCP", "UDP")
_PORT_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_HAS_LETTER = re.compile(r"[a-z]")
INT32_MAX = 2147483647


def as_dict(value: Any) -> dict[str, Any]:
    """A sub-object, or an empty dict when it is absent or malformed (type errors are reported elsewhere)."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def port_num_msgs(port: Any) -> list[str]:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        return ["must be between 1 and 65535, inclusive"]
    return []


def port_name_msgs(name: str) -> list[str]:
    """IANA_SVC_NAME, as ``validation.IsValidPortName`` checks it."""
    msgs = []
    if len(name) > 15:
        msgs.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARS.match(name):
        msgs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _HAS_LETTER.search(name):
        msgs.append("must contain at least one letter (a-z)")
    if "--" in name:
        msgs.append("must not contain consecutive hyphens")
    if name and (name[0] == "-" or name[-1] == "-"):
        msgs.append("must not begin or end with a hyphen")
    return msgs


def validate_port_num_or_name(port: Any, path: Path) -> list[FieldError]:
    """A targetPort or probe port: an int 1-65535 or an IANA service name."""
    if isinstance(port, int) and not isinstance(port, bool):
        return [v.invalid(path, port, m) for m in port_num_msgs(port)]
    if isinstance(port, str):
        if not port:
            return [v.required(path)]
        if port.isdigit():
            # A numeric string is how intstr carries ints in some clients; treat it as a number.
            return [v.invalid(path, port, m) for m in port_num_msgs(int(port))]
        return [v.invalid(path, port, m) for m in port_name_msgs(port)]
    return [v.type_invalid(path, port, "must be an integer or a string")]


def validate_protocol(proto: Any, path: Path) -> list[FieldError]:
    if not proto:
        return [v.required(path)]
    if proto not in PROTOCOLS:
        return [v.not_supported(path, proto, PROTOCOLS)]
    return []


def validate_enum(value: Any, path: Path, allowed: tuple[str, ...], *, required: bool = True) -> list[FieldError]:
    if value in (None, ""):
        return [v.required(path)] if required else []
    if value not in allowed:
        return [v.not_supported(path, value, allowed)]
    return []


def validate_nonneg(value: Any, path: Path) -> list[FieldError]:
    """``ValidateNonnegativeField`` for an optional integer field."""
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int):
        return [v.type_invalid(path, value, "must be an integer")]
    if value < 0:
        return [v.invalid(path, value, IS_NEGATIVE_MSG)]
    return []


def is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_cidr(value: Any) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return isinstance(value, str) and "/" in value


_STANDARD_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage", "storage", "pods"})


def resource_name_msgs(name: str) -> list[str]:
    """Standard names (cpu, memory, hugepages-...), or names qualified with a domain."""
    if name in _STANDARD_RESOURCES or name.startswith("hugepages-"):
        return []
    if "/" not in name:
        return ["must be a standard resource type or fully qualified"]
    return v.is_qualified_name(name)


def validate_resource_list(
    resources: Any,
    path: Path,
    *,
    name_msgs: Callable[[str], list[str]] = resource_name_msgs,
) -> list[FieldError]:
    """A ResourceList: valid names, valid non-negative quantities."""
    if resources is None:
        return []
    if not isinstance(resources, dict):
        return [v.type_invalid(path, resources, "must be a map of resource names to quantities")]
    errs: list[FieldError] = []
    for name, qty in resources.items():
        for m in name_msgs(name):
            errs.append(v.invalid(path.key(name), name, m))
        errs.extend(validate_quantity(qty, path.key(name)))
    return errs


def validate_quantity(qty: Any, path: Path, *, positive: bool = False) -> list[FieldError]:
    if isinstance(qty, bool) or not is_valid_quantity(qty):
        return [v.invalid(path, qty, "must be a valid quantity, for example 100m, 1Gi or 0.5")]
    value = parse_quantity(qty)
    if positive and value <= 0:
        return [v.invalid(path, qty, "must be greater than zero")]
    if value < 0:
        return [v.invalid(path, qty, "must be greater than or equal to 0")]
    return []


def quantity_or_none(qty: Any) -> Any:
    """The parsed quantity, or None for anything that does not parse."""
    if isinstance(qty, bool):
        return None
    try:
        return parse_quantity(qty)
    except (ValueError, TypeError):
        return None


IS_NEGATIVE_MSG = "must be greater than or equal to 0"
_PERCENT = re.compile(r"^[0-9]+%$")
PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
    "regex used for validation is '[0-9]+%')"
)


def is_int(value: Any) -> TypeGuard[int]:
    """A JSON integer (``True`` is not one, though Python says it is)."""
    return isinstance(value, int) and not isinstance(value, bool)


def int_or_percent_value(value: Any) -> int | None:
    """The number in an int-or-percent (``"25%"`` -> 25, ``3`` -> 3); ``None`` if it is neither."""
    if is_int(value):
        return int(value)
    if isinstance(value, str):
        if _PERCENT.match(value):
            return int(value[:-1])
        if value.isdigit():
            return int(value)  # intstr.IntValue() parses a bare numeric string
    return None


def validate_int_or_percent(value: Any, path: Path) -> list[FieldError]:
    """``ValidatePositiveIntOrPercent`` plus ``IsNotMoreThan100Percent``; ``None`` is fine (unset)."""
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT.match(value):
            return [v.invalid(path, value, PERCENT_MSG)]
        if int(value[:-1]) > 100:
            return [v.invalid(path, value, "must not be greater than 100%")]
        return []
    if is_int(value):
        return validate_nonneg(value, path)
    return [v.invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def path_segment_name_msgs(name: str) -> list[str]:
    """``path.IsValidPathSegmentName``: the name rule of RBAC objects and object references."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in name]


def names_msgs(value: Any, path: Path, check: Any) -> list[FieldError]:
    return [v.invalid(path, value, m) for m in check(str(value))]


def omit_value_invalid(path: Path | str, detail: str) -> FieldError:
    """``field.Invalid`` with Kubernetes' empty-string value (it renders as ``""``)."""
    return v.invalid(path, "", detail)
