"""Unit tests of the cron next-fire-time calculator (no server)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kybernetes.controllers.cronschedule import CronError, CronSchedule, load_zone

NY = ZoneInfo("America/New_York")


def fires(expr: str, start: datetime, n: int, tz: object = None) -> list[datetime]:
    s = CronSchedule.parse(expr)
    out: list[datetime] = []
    t: datetime | None = start
    for _ in range(n):
        assert t is not None
        t = s.next(t, tz)  # type: ignore[arg-type]
        assert t is not None
        out.append(t)
    return out


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_every_minute_is_strictly_after() -> None:
    assert fires("* * * * *", utc(2024, 1, 1, 0, 0, 0), 2) == [utc(2024, 1, 1, 0, 1), utc(2024, 1, 1, 0, 2)]
    # Mid-minute start rounds up to the next whole minute.
    assert fires("* * * * *", utc(2024, 1, 1, 0, 0, 30), 1) == [utc(2024, 1, 1, 0, 1)]


def test_steps_ranges_lists() -> None:
    assert fires("*/15 * * * *", utc(2024, 1, 1, 0, 7), 3) == [
        utc(2024, 1, 1, 0, 15), utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 0, 45)]
    assert fires("5-10/5 9-10 * * *", utc(2024, 1, 1), 5) == [
        utc(2024, 1, 1, 9, 5), utc(2024, 1, 1, 9, 10), utc(2024, 1, 1, 10, 5), utc(2024, 1, 1, 10, 10),
        utc(2024, 1, 2, 9, 5)]
    # "N/step" runs from N to the end of the range.
    assert fires("50/5 0 * * *", utc(2024, 1, 1), 3) == [
        utc(2024, 1, 1, 0, 50), utc(2024, 1, 1, 0, 55), utc(2024, 1, 2, 0, 50)]
    assert fires("0 0 1,15 * *", utc(2024, 1, 2), 3) == [utc(2024, 1, 15), utc(2024, 2, 1), utc(2024, 2, 15)]


def test_names_and_question_mark() -> None:
    # 2024-01-01 is a Monday.
    assert fires("0 12 ? JAN-FEB MON-FRI", utc(2024, 1, 5, 13), 2) == [utc(2024, 1, 8, 12), utc(2024, 1, 9, 12)]
    assert fires("0 0 1 dec *", utc(2024, 1, 1), 1) == [utc(2024, 12, 1)]
    assert fires("0 0 * * SUN", utc(2024, 1, 1), 1) == [utc(2024, 1, 7)]


def test_day_of_month_or_day_of_week() -> None:
    # Both restricted: either matches (the 13th or any Friday).
    got = fires("0 0 13 * 5", utc(2024, 9, 1), 4)
    assert got == [utc(2024, 9, 6), utc(2024, 9, 13), utc(2024, 9, 20), utc(2024, 9, 27)]
    # One is a star: only the other counts.
    assert fires("0 0 13 * *", utc(2024, 9, 1), 1) == [utc(2024, 9, 13)]
    # A step larger than 1 clears the star bit, so "*/2" days OR Mondays.
    got = fires("0 0 */10 * 1", utc(2024, 1, 1, 1), 3)
    assert got == [utc(2024, 1, 8), utc(2024, 1, 11), utc(2024, 1, 15)]


def test_descriptors_and_every() -> None:
    assert fires("@hourly", utc(2024, 1, 1, 0, 30), 1) == [utc(2024, 1, 1, 1)]
    assert fires("@daily", utc(2024, 1, 1, 0, 30), 1) == [utc(2024, 1, 2)]
    assert fires("@midnight", utc(2024, 1, 1, 0, 30), 1) == [utc(2024, 1, 2)]
    assert fires("@weekly", utc(2024, 1, 1), 1) == [utc(2024, 1, 7)]
    assert fires("@monthly", utc(2024, 1, 1), 1) == [utc(2024, 2, 1)]
    assert fires("@yearly", utc(2024, 1, 1), 1) == [utc(2025, 1, 1)]
    assert fires("@annually", utc(2024, 1, 1), 1) == [utc(2025, 1, 1)]
    assert fires("@every 1h30m", utc(2024, 1, 1, 0, 0, 10), 2) == [utc(2024, 1, 1, 1, 30, 10), utc(2024, 1, 1, 3, 0, 10)]


def test_leap_day_and_never() -> None:
    assert fires("0 0 29 2 *", utc(2024, 3, 1), 1) == [utc(2028, 2, 29)]
    assert CronSchedule.parse("0 0 30 2 *").next(utc(2024, 1, 1)) is None


def test_time_zone_offset() -> None:
    # 09:00 in New York in winter is 14:00 UTC, in summer 13:00 UTC.
    assert fires("0 9 * * *", utc(2024, 1, 15), 1, NY) == [utc(2024, 1, 15, 14)]
    assert fires("0 9 * * *", utc(2024, 7, 15), 1, NY) == [utc(2024, 7, 15, 13)]


def test_dst_spring_forward_skips_missing_wall_time() -> None:
    # 2024-03-10 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that day.
    got = fires("30 2 * * *", utc(2024, 3, 9, 12), 2, NY)
    assert [t.astimezone(NY).day for t in got] == [11, 12]
    assert got[0] == utc(2024, 3, 11, 6, 30)
    # Hourly keeps going over the gap: 01:00 EST, then 03:00 EDT, one real hour apart.
    got = fires("0 * * * *", utc(2024, 3, 10, 5, 30), 2, NY)
    assert got == [utc(2024, 3, 10, 6), utc(2024, 3, 10, 7)]
    assert [t.astimezone(NY).hour for t in got] == [1, 3]


def test_dst_fall_back_runs_repeated_wall_time_twice() -> None:
    # 2024-11-03 02:00 EDT falls back to 01:00 EST: 01:30 happens twice.
    got = fires("30 1 * * *", utc(2024, 11, 2, 12), 3, NY)
    assert got == [utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 30), utc(2024, 11, 4, 6, 30)]
    # Every 20 minutes stays in real-time order through the repeated hour.
    got = fires("*/20 * * * *", utc(2024, 11, 3, 5, 10), 6, NY)
    assert got == [utc(2024, 11, 3, 5, 20), utc(2024, 11, 3, 5, 40), utc(2024, 11, 3, 6, 0),
                   utc(2024, 11, 3, 6, 20), utc(2024, 11, 3, 6, 40), utc(2024, 11, 3, 7, 0)]
    # Starting inside the second 01:xx still finds the next one in real time.
    assert fires("5 * * * *", utc(2024, 11, 3, 5, 15), 1, NY) == [utc(2024, 11, 3, 6, 5)]


def test_tz_prefix_and_zone_loading() -> None:
    s = CronSchedule.parse("CRON_TZ=America/New_York 0 9 * * *")
    assert s.next(utc(2024, 1, 15)) == utc(2024, 1, 15, 14)
    # An explicit zone (spec.timeZone) wins over none; UTC is the default.
    assert load_zone(None) is UTC
    assert s.next(utc(2024, 1, 15), load_zone("UTC")) == utc(2024, 1, 15, 9)


def test_times_between() -> None:
    s = CronSchedule.parse("*/10 * * * *")
    assert s.times_between(utc(2024, 1, 1), utc(2024, 1, 1, 0, 30)) == [
        utc(2024, 1, 1, 0, 10), utc(2024, 1, 1, 0, 20), utc(2024, 1, 1, 0, 30)]
    assert len(s.times_between(utc(2024, 1, 1), utc(2025, 1, 1), limit=101)) == 101


@pytest.mark.parametrize("bad", ["", "* * * *", "61 * * * *", "@every", "@often", "1-2-3 * * * *"])
def test_invalid(bad: str) -> None:
    with pytest.raises(CronError):
        CronSchedule.parse(bad)
