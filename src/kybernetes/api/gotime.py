"""``metav1.Time`` and ``metav1.MicroTime`` as kube-apiserver decodes and re-encodes them.

A timestamp in a request body is parsed by Go's ``time.Parse`` with the type's layout and written
back by the type's ``MarshalJSON``, so what is stored (and served) is the canonical form:

==============  ========================================  ===========================================
type            accepted (``time.Parse`` layout)           stored (``MarshalJSON``)
==============  ========================================  ===========================================
``Time``        ``2006-01-02T15:04:05Z07:00`` (RFC 3339;   UTC, whole seconds: ``2024-05-01T08:00:00Z``
                any fraction after the seconds allowed)
``MicroTime``   ``2006-01-02T15:04:05.000000Z07:00``:      UTC, six digits:
                exactly six fraction digits                ``2024-05-01T08:00:00.123000Z``
==============  ========================================  ===========================================

What Go refuses is a :class:`GoTimeError` with Go's message, which the API server reports as a
400 (``Event in version "v1" cannot be handled as a Event: parsing time "..." as
"2006-01-02T15:04:05.000000Z07:00": cannot parse "+00:00" as ".000000"``). The official Python
client sends a MicroTime without a fraction when its microseconds are zero; Kubernetes refuses
that, and so do we: storing it would make every later reader that parses as Go does (kubectl)
fail on the whole list.

The matcher walks the layout element by element as Go's parser does, so the error names the
same remaining input and layout element; range errors (``month out of range``) follow. Values
already in the canonical form take a fast path (one regular expression, no datetime).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

TIME_LAYOUT = "2006-01-02T15:04:05Z07:00"
MICRO_LAYOUT = "2006-01-02T15:04:05.000000Z07:00"

_CANONICAL = {
    "time": re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\dZ"),
    "micro": re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{6}Z"),
}

# (layout element, how much of the input it takes) in layout order; None for the fraction and
# the zone, which are handled by hand.
_ELEMENTS: tuple[tuple[str, re.Pattern[str] | None], ...] = (
    ("2006", re.compile(r"\d{4}")), ("-", re.compile(r"-")), ("01", re.compile(r"\d{2}")),
    ("-", re.compile(r"-")), ("02", re.compile(r"\d{2}")), ("T", re.compile(r"T")),
    ("15", re.compile(r"\d{2}")), (":", re.compile(r":")), ("04", re.compile(r"\d{2}")),
    (":", re.compile(r":")), ("05", re.compile(r"\d{2}")),
)
_FRACTION = re.compile(r"[.,]\d+")
_ZONE = re.compile(r"Z|[+-]\d{2}:\d{2}")


class GoTimeError(ValueError):
    """A timestamp Go's ``time.Parse`` refuses; the message is Go's."""


_KNOWN_CANONICAL: dict[tuple[str, str], bool] = {}
"""Values seen to be canonical: an object's timestamps come back on every update (conditions,
start times), so most checks are one dict lookup. Bounded: cleared when it grows past 8192."""


def canonical(value: str, kind: str) -> str:
    """The stored form of ``value`` for ``kind`` ``"time"`` or ``"micro"``; raises GoTimeError."""
    key = (value, kind)
    if key in _KNOWN_CANONICAL:
        return value
    if _CANONICAL[kind].fullmatch(value) and int(value[8:10]) <= 28:
        # Canonical, and a day every month has: nothing can be out of range.
        if len(_KNOWN_CANONICAL) >= 8192:
            _KNOWN_CANONICAL.clear()
        _KNOWN_CANONICAL[key] = True
        return value
    t = parse(value, kind)
    if kind == "micro":
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str, kind: str) -> datetime:
    """Go's ``time.Parse(layout, value)`` for the layout of ``kind``."""
    layout = MICRO_LAYOUT if kind == "micro" else TIME_LAYOUT
    rest = value
    fields: list[int] = []
    for element, pattern in _ELEMENTS:
        assert pattern is not None
        m = pattern.match(rest)
        if m is None:
            raise _cannot(value, layout, rest, element)
        if element[0].isdigit():
            fields.append(int(m.group()))
        rest = rest[m.end():]
    micros = 0
    frac = _FRACTION.match(rest)
    if kind == "micro":
        if frac is None or len(frac.group()) < 7:
            raise _cannot(value, layout, rest, ".000000")
        micros = int(frac.group()[1:7])
        rest = rest[7:]
    elif frac is not None:  # Go accepts any fraction after the seconds when the layout has none
        digits = frac.group()[1:]
        micros = int((digits + "000000")[:6])
        rest = rest[frac.end():]
    zone = _ZONE.match(rest)
    if zone is None:
        raise _cannot(value, layout, rest, "Z07:00")
    if zone.end() != len(rest):
        raise GoTimeError(f'parsing time "{value}" as "{layout}": extra text: "{rest[zone.end():]}"')
    return _build(value, fields, micros, zone.group())


def _build(value: str, fields: list[int], micros: int, zone: str) -> datetime:
    year, month, day, hour, minute, second = fields
    for name, v, lo, hi in (("month", month, 1, 12), ("hour", hour, 0, 23), ("minute", minute, 0, 59),
                            ("second", second, 0, 59)):
        if not lo <= v <= hi:
            raise GoTimeError(f'parsing time "{value}": {name} out of range')
    tz = UTC
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        hh, mm = int(zone[1:3]), int(zone[4:6])
        if hh > 24 or mm > 60:
            raise GoTimeError(f'parsing time "{value}": time zone offset out of range')
        tz = timezone(sign * timedelta(hours=hh, minutes=mm))
    try:
        return datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
    except ValueError:
        raise GoTimeError(f'parsing time "{value}": day out of range') from None


def _cannot(value: str, layout: str, rest: str, element: str) -> GoTimeError:
    return GoTimeError(f'parsing time "{value}" as "{layout}": cannot parse "{rest}" as "{element}"')
