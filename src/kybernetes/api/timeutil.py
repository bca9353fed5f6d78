"""API timestamps: RFC 3339 text to and from Python time, for every component.

Kubernetes serialises ``metav1.Time`` as RFC 3339 in UTC to the second
(``2006-01-02T15:04:05Z``) and ``metav1.MicroTime`` (a Lease's ``renewTime``, an Event's
``eventTime``) to the microsecond (``2006-01-02T15:04:05.000000Z``); see
``k8s.io/apimachinery/pkg/apis/meta/v1/time.go`` and ``micro_time.go``. Reading accepts any
RFC 3339 time: an offset other than ``Z``, and a fraction of any length (digits past the
microsecond are dropped, as Python's ``datetime`` holds no more).

Contract:

* :func:`parse_rfc3339` / :func:`parse_epoch` never raise: an absent, non-string or malformed
  value is ``None`` (a stored object with a broken timestamp must not crash a controller). A
  time without an offset is taken to be UTC.
* :func:`format_rfc3339` / :func:`format_micro` take an aware ``datetime``, a POSIX time in
  seconds, or nothing (now) and always answer in UTC.
* :func:`now_rfc3339` is :func:`format_rfc3339` of now, formatted once per second (the API
  server stamps every write with it).
* :func:`parse_duration` is Go's ``time.ParseDuration`` (``1h30m``, ``-1.5s``, ``300ms``, ``0``),
  in seconds; it raises ``ValueError`` with Go's wording (``time: invalid duration "x"``,
  ``time: missing unit in duration "5"``, ``time: unknown unit "d" in duration "1d"``).
  Command-line flags that also take a bare number of seconds ask for it with ``bare_seconds``.
  :func:`format_duration` is Go's ``Duration.String`` (``1h2m3.5s``, ``1.5ms``, ``0s``).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

RFC3339 = "%Y-%m-%dT%H:%M:%SZ"
RFC3339_MICRO = "%Y-%m-%dT%H:%M:%S.%fZ"

Moment = datetime | float | int | None


def parse_rfc3339(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC ``datetime``; ``None`` when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def parse_epoch(value: Any) -> float | None:
    """An RFC 3339 timestamp as POSIX seconds; ``None`` when absent or malformed."""
    t = parse_rfc3339(value)
    return None if t is None else t.timestamp()


def _as_datetime(t: Moment) -> datetime:
    if t is None:
        return datetime.now(UTC)
    if isinstance(t, datetime):
        return t.astimezone(UTC)
    return datetime.fromtimestamp(t, UTC)


def format_rfc3339(t: Moment = None) -> str:
    """``metav1.Time`` text: UTC, to the second (a fraction is truncated, as Go's formatter does)."""
    return _as_datetime(t).strftime(RFC3339)


def format_micro(t: Moment = None) -> str:
    """``metav1.MicroTime`` text: UTC, to the microsecond."""
    return _as_datetime(t).strftime(RFC3339_MICRO)


_micro_cache: tuple[int, str] = (-1, "")


def format_micro_epoch(t: float) -> str:
    """:func:`format_micro` of a POSIX time, its date and time of day formatted once per second
    (an audit event carries two such stamps a stage)."""
    global _micro_cache
    sec, micros = divmod(round(t * 1_000_000), 1_000_000)
    if sec != _micro_cache[0]:
        _micro_cache = (sec, datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{_micro_cache[1]}{micros:06d}Z"


_now_cache: tuple[int, str] = (-1, "")


def now_rfc3339() -> str:
    """Now as ``metav1.Time`` text; strftime runs once per second, not once per call."""
    global _now_cache
    sec = int(time.time())
    if sec != _now_cache[0]:
        _now_cache = (sec, datetime.fromtimestamp(sec, UTC).strftime(RFC3339))
    return _now_cache[1]


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_NUMBER = re.compile(r"[0-9]*(?:\.[0-9]*)?")
_DURATION_UNIT = re.compile(r"[^0-9.]*")


def parse_duration(text: str, *, bare_seconds: bool = False) -> float:
    """Go's ``time.ParseDuration``, in seconds; with ``bare_seconds`` a plain number is seconds."""
    if bare_seconds:
        try:
            return float(text)
        except ValueError:
            pass
    body = text[1:] if text[:1] in ("+", "-") else text
    if body == "0":
        return 0.0
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(body):
        number = _DURATION_NUMBER.match(body, pos)
        assert number is not None  # the pattern matches the empty string
        if number.group() in ("", "."):
            raise ValueError(f'time: invalid duration "{text}"')
        unit = _DURATION_UNIT.match(body, number.end())
        assert unit is not None
        if not unit.group():
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit.group() not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit.group()}" in duration "{text}"')
        total += float(number.group()) * _DURATION_UNITS[unit.group()]
        pos = unit.end()
    return -total if text.startswith("-") else total


def format_duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String``: ``1h2m3.5s``, ``1.5ms``, ``250ns``, ``0s``."""
    if nanoseconds == 0:
        return "0s"
    sign, n = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)

    def fraction(value: int, unit: int) -> str:
        whole, rest = divmod(value, unit)
        digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if n < 1_000:
        return f"{sign}{n}ns"
    if n < 1_000_000:
        return f"{sign}{fraction(n, 1_000)}µs"
    if n < 1_000_000_000:
        return f"{sign}{fraction(n, 1_000_000)}ms"
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return f"{sign}{text}{fraction(rest, 1_000_000_000)}s"
