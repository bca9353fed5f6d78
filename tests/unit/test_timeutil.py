"""kybernetes.api.timeutil: RFC 3339 parsing and metav1.Time / MicroTime formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from kybernetes.api import timeutil

T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(("text", "want"), [
    ("2024-01-02T03:04:05Z", T0),
    ("2024-01-02T03:04:05.000000Z", T0),
    ("2024-01-02T03:04:05.5Z", T0 + timedelta(microseconds=500000)),
    # Go writes nanoseconds; digits past the microsecond are dropped.
    ("2024-01-02T03:04:05.123456789Z", T0 + timedelta(microseconds=123456)),
    # Another offset is converted to UTC.
    ("2024-01-02T05:04:05+02:00", T0),
    ("2024-01-01T22:04:05-05:00", T0),
    # No offset: taken as UTC.
    ("2024-01-02T03:04:05", T0),
    # Absent or malformed: None, never an exception.
    ("", None), (None, None), (12, None), ("yesterday", None), ("2024-13-02T03:04:05Z", None),
])
def test_parse(text: Any, want: datetime | None) -> None:
    got = timeutil.parse_rfc3339(text)
    assert got == want
    if got is not None:
        assert got.tzinfo == UTC
    epoch = timeutil.parse_epoch(text)
    assert epoch == (None if want is None else want.timestamp())


@pytest.mark.parametrize(("moment", "seconds", "micro"), [
    (T0, "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000000Z"),
    (T0 + timedelta(microseconds=999999), "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.999999Z"),
    (T0.astimezone(timezone(timedelta(hours=-7))), "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000000Z"),
    (T0.timestamp(), "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000000Z"),
    (int(T0.timestamp()), "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.000000Z"),
    (T0.timestamp() + 0.25, "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.250000Z"),
])
def test_format(moment: Any, seconds: str, micro: str) -> None:
    assert timeutil.format_rfc3339(moment) == seconds
    assert timeutil.format_micro(moment) == micro
    if not isinstance(moment, datetime):
        assert timeutil.format_micro_epoch(moment) == micro  # the once-a-second cache agrees
    exact = moment if isinstance(moment, datetime) else datetime.fromtimestamp(moment, UTC)
    assert timeutil.parse_rfc3339(micro) == exact  # MicroTime round-trips
    assert timeutil.parse_rfc3339(seconds) == exact.replace(microsecond=0)


def test_format_micro_epoch_agrees_across_seconds() -> None:
    t = T0.timestamp()
    for dt_ in (0.999999, 1.0, 0.5, 61.000001, 0.0000004, 3600 * 24 * 400 + 0.123456):
        assert timeutil.format_micro_epoch(t + dt_) == timeutil.format_micro(t + dt_)


def test_now_is_utc_to_the_second() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    for text in (timeutil.now_rfc3339(), timeutil.format_rfc3339(), timeutil.format_micro()):
        t = timeutil.parse_rfc3339(text)
        assert t is not None and before <= t <= datetime.now(UTC)
    assert timeutil.now_rfc3339().endswith("Z") and len(timeutil.now_rfc3339()) == len("2024-01-02T03:04:05Z")


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("-0", 0.0), ("15s", 15.0), ("1m30s", 90.0), ("1h", 3600.0), ("1.5h", 5400.0),
    ("300ms", 0.3), ("1.s", 1.0), (".5s", 0.5), ("-1.5s", -1.5), ("+2m", 120.0),
    ("1h2m3s4ms5us6ns", 3723.004005006), ("2µs", 2e-6), ("2μs", 2e-6),
])
def test_parse_duration(text: str, seconds: float) -> None:
    assert timeutil.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "error"), [
    ("", 'time: invalid duration ""'),
    ("-", 'time: invalid duration "-"'),
    ("--1s", 'time: invalid duration "--1s"'),
    ("s", 'time: invalid duration "s"'),
    (".s", 'time: invalid duration ".s"'),
    ("five", 'time: invalid duration "five"'),
    ("5", 'time: missing unit in duration "5"'),
    ("1h5", 'time: missing unit in duration "1h5"'),
    ("1d", 'time: unknown unit "d" in duration "1d"'),
    ("1h 30m", 'time: unknown unit "h " in duration "1h 30m"'),
    ("5s ", 'time: unknown unit "s " in duration "5s "'),
    (" 5s", 'time: invalid duration " 5s"'),
])
def test_parse_duration_rejects_what_go_rejects(text: str, error: str) -> None:
    with pytest.raises(ValueError) as e:
        timeutil.parse_duration(text)
    assert str(e.value) == error


@pytest.mark.parametrize(("text", "seconds"), [("5", 5.0), ("1.5", 1.5), ("40s", 40.0), ("1m30s", 90.0)])
def test_parse_duration_bare_seconds(text: str, seconds: float) -> None:
    assert timeutil.parse_duration(text, bare_seconds=True) == seconds


@pytest.mark.parametrize(("nanoseconds", "text"), [
    (0, "0s"), (1, "1ns"), (1_500, "1.5µs"), (1_500_000, "1.5ms"), (10 * 10**9, "10s"),
    (80 * 10**9, "1m20s"), (300 * 10**9, "5m0s"), (3723_500_000_000, "1h2m3.5s"), (-2 * 10**9, "-2s"),
])
def test_format_duration(nanoseconds: int, text: str) -> None:
    assert timeutil.format_duration(nanoseconds) == text
    if nanoseconds:
        assert timeutil.parse_duration(text) == pytest.approx(nanoseconds / 1e9)
