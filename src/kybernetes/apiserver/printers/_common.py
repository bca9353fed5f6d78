"""Shared pieces of server-side printing: the column type, time and label formatting.

Everything here mirrors a small helper that Kubernetes' printers use, so that every kind's cells come
out byte-for-byte like a real API server's: ``HumanDuration`` for ages, ``labels.FormatLabels`` and
``metav1.FormatLabelSelector`` for selectors, the container/image layout of ``-o wide``, and Go's
``%v`` rendering of numbers where a value is printed as text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from kybernetes.api.timeutil import parse_rfc3339

JSON = dict[str, Any]
Cells = list[Any]


@dataclass(frozen=True)
class Column:
    """One ``meta.k8s.io/v1`` TableColumnDefinition."""

    name: str
    type: str
    """``string``, ``integer``, ``number``, ``boolean`` or ``date`` (a hint for clients only)."""
    format: str = ""
    """``name`` for the column holding the object name; kubectl finds that column by this format."""
    description: str = ""
    priority: int = 0
    """0: always shown; 1: shown by ``kubectl get -o wide`` only."""

    def to_json(self) -> JSON:
        # Every field is serialised, empty or not, as Go's struct tags have no omitempty here.
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


@dataclass(frozen=True)
class Printer:
    """How one kind is printed: its columns and the function computing one row's cells."""

    columns: tuple[Column, ...]
    cells: Callable[[JSON, datetime], Cells]
    conditions: Callable[[JSON], list[JSON]] | None = None
    """Optional row conditions (only pods have them: a Completed condition once they finished)."""


# Descriptions are ours; Kubernetes takes them from the API field docs, which no client displays.
NAME_DESC = "The object's name, unique among objects of its kind in its namespace (or cluster)."
AGE_DESC = "How long ago the object was created (metadata.creationTimestamp)."
CONTAINERS_DESC = "Names of each container in the template."
IMAGES_DESC = "Images referenced by each container in the template."


def name_col() -> Column:
    return Column("Name", "string", "name", NAME_DESC)


def age_col() -> Column:
    return Column("Age", "string", "", AGE_DESC)


def col(name: str, type_: str = "string", description: str = "", priority: int = 0) -> Column:
    return Column(name, type_, "", description, priority)


# The wide Selector column of every kind that manages pods (apps and batch workloads).
SELECTOR_DESC = "The label selector of the managed pods."
WIDE_SELECTOR = col("Selector", description=SELECTOR_DESC, priority=1)

# The wide columns of every kind with a pod template.
WIDE_TEMPLATE = (
    col("Containers", description=CONTAINERS_DESC, priority=1),
    col("Images", description=IMAGES_DESC, priority=1),
)


def replicas_printer(format_selector: Callable[[Any], str], selector_description: str) -> Printer:
    """ReplicationController and ReplicaSet: desired, current and ready replicas of a pod template.
    Only the selector differs (a plain label map, a LabelSelector)."""

    def cells(obj: JSON, now: datetime) -> Cells:
        names, images = container_cells(dig(obj, "spec", "template", "spec"))
        return [
            name_of(obj),
            dint(obj, "spec", "replicas", default=1),
            dint(obj, "status", "replicas"),
            dint(obj, "status", "readyReplicas"),
            age(obj, now),
            names,
            images,
            format_selector(dig(obj, "spec", "selector")),
        ]

    return Printer(
        (
            name_col(),
            col("Desired", "integer", "The number of replicas wanted."),
            col("Current", "integer", "The number of replicas observed."),
            col("Ready", "integer", "The number of ready replicas."),
            age_col(),
            *WIDE_TEMPLATE,
            col("Selector", description=selector_description, priority=1),
        ),
        cells,
    )


# ---------------------------------------------------------------------------------------------- time


def aware(now: datetime) -> datetime:
    """Naive datetimes are taken to be UTC."""
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def human_duration(d: timedelta) -> str:
    """Kubernetes' ``duration.HumanDuration``: about two significant figures, e.g. ``3m2s``, ``2d3h``.

    Go truncates toward zero when turning a duration into whole seconds, and tolerates a clock skew of
    up to (but excluding) two seconds before calling a negative duration invalid.
    """
    us = (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds
    seconds = abs(us) // 1_000_000 * (1 if us >= 0 else -1)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: the age of a timestamp, ``<unknown>`` when it is unset."""
    t = parse_rfc3339(value)
    if t is None:
        return "<unknown>"
    return human_duration(aware(now) - t)


def age(obj: Mapping[str, Any], now: datetime) -> str:
    return since(meta(obj).get("creationTimestamp"), now)


def created_at(obj: Mapping[str, Any]) -> str:
    """The default table's ``Created At`` cell: the creation time in UTC, RFC 3339, to the second."""
    t = parse_rfc3339(meta(obj).get("creationTimestamp")) or datetime(1, 1, 1, tzinfo=UTC)
    t = t.astimezone(UTC)
    # Not strftime: glibc drops the zero padding of years below 1000 (Go's zero time is year 1).
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}Z"


# ------------------------------------------------------------------------------------- dict access


def meta(obj: Mapping[str, Any]) -> JSON:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def name_of(obj: Mapping[str, Any]) -> str:
    return str(meta(obj).get("name") or "")


def dig(obj: Any, *path: str | int) -> Any:
    """obj[path[0]][path[1]]..., or None as soon as a step is missing or of the wrong shape."""
    cur = obj
    for p in path:
        if isinstance(p, int):
            if not isinstance(cur, list) or not -len(cur) <= p < len(cur):
                return None
        elif not isinstance(cur, dict):
            return None
        cur = cur[p] if isinstance(p, int) else cur.get(p)
        if cur is None:
            return None
    return cur


def dmap(obj: Any, *path: str) -> JSON:
    v = dig(obj, *path)
    return v if isinstance(v, dict) else {}


def dlist(obj: Any, *path: str) -> list[Any]:
    v = dig(obj, *path)
    return v if isinstance(v, list) else []


def dint(obj: Any, *path: str, default: int = 0) -> int:
    v = dig(obj, *path)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return default
    return int(v)


def dstr(obj: Any, *path: str) -> str:
    v = dig(obj, *path)
    return v if isinstance(v, str) else ""


def is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool(meta(obj).get("deletionTimestamp"))


# ---------------------------------------------------------------------------------- label formatting


def format_labels(labels: Any) -> str:
    """``labels.FormatLabels``: ``k=v`` pairs sorted by key, comma separated; ``<none>`` if empty."""
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


_OPS = {"In": " in ", "NotIn": " notin "}


def selector_string(selector: Any) -> str | None:
    """``LabelSelectorAsSelector(sel).String()``; None when the selector is invalid.

    A missing selector selects nothing and an empty one everything; both print as the empty string.
    Requirements are ordered by key, and the values of set requirements are sorted.
    """
    if not isinstance(selector, dict):
        return ""
    reqs: list[tuple[str, str]] = []
    for k, v in sorted(dmap(selector, "matchLabels").items()):
        reqs.append((k, f"{k}={v}"))
    for expr in dlist(selector, "matchExpressions"):
        if not isinstance(expr, dict):
            return None
        key, op = str(expr.get("key", "")), expr.get("operator")
        values = sorted(str(v) for v in (expr.get("values") or []))
        if op in _OPS:
            if not values:
                return None
            reqs.append((key, f"{key}{_OPS[op]}({','.join(values)})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
        else:
            return None
    # Kubernetes sorts requirements by key; a stable sort keeps matchLabels before expressions.
    reqs.sort(key=lambda r: r[0])
    return ",".join(r[1] for r in reqs)


def format_label_selector(selector: Any) -> str:
    """``metav1.FormatLabelSelector``: like :func:`selector_string`, ``<none>`` if empty."""
    s = selector_string(selector)
    if s is None:
        return "<error>"
    return s or "<none>"


def container_cells(pod_spec: Any) -> tuple[str, str]:
    """``layoutContainerCells``: container names and images, each comma separated."""
    containers = [c for c in dlist(pod_spec, "containers") if isinstance(c, dict)]
    names = ",".join(str(c.get("name", "")) for c in containers)
    images = ",".join(str(c.get("image", "")) for c in containers)
    return names, images


def int_or_string(v: Any) -> str:
    """``intstr.IntOrString.String()``."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def go_text(value: Any) -> str:
    """How Go's ``fmt.Print`` shows a decoded JSON scalar (what the CRD JSONPath printer emits)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    return str(value)


def go_float(f: float) -> str:
    """Go's ``%v`` for a float64: the shortest digits that round-trip, in exponent form when the
    decimal exponent is below -4 or at least 6 (so ``1e+06``, ``123456``, ``0.0001``, ``1e-05``)."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    # repr() gives the shortest round-tripping digits; Decimal splits them from the exponent.
    sign, digit_tuple, exponent = Decimal(repr(f)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    exp10 = len("".join(map(str, digit_tuple))) + exponent - 1
    neg = "-" if sign else ""
    if exp10 < -4 or exp10 >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{neg}{mantissa}e{'+' if exp10 >= 0 else '-'}{abs(exp10):02d}"
    if exp10 >= 0:
        whole, frac = digits[: exp10 + 1].ljust(exp10 + 1, "0"), digits[exp10 + 1 :]
    else:
        whole, frac = "0", "0" * (-exp10 - 1) + digits
    return f"{neg}{whole}.{frac}" if frac else f"{neg}{whole}"
