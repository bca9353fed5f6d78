"""Cron schedules for the CronJob controller: when does a schedule fire next, in a time zone.

Parsing is shared with the API server's validation (:func:`kybernetes.api.cron.parse_cron`, the rules of
``robfig/cron/v3``'s ``ParseStandard``), so the controller accepts exactly what validation accepts:
five fields with ranges, steps, lists and month/weekday names, ``?`` as ``*``, the descriptors
``@yearly``/``@annually``/``@monthly``/``@weekly``/``@daily``/``@midnight``/``@hourly``,
``@every <duration>`` (constant delay), and a ``TZ=``/``CRON_TZ=`` prefix naming a zone.

What parse_cron does not return is robfig's "star bit": whether the day-of-month or day-of-week
field was written as ``*``/``?`` (without a step larger than 1). It decides how the two day fields
combine: if either is a star, both must match (effectively only the other one counts); if
neither is, a day matches when *either* does (``0 0 1,15 * MON`` fires on the 1st, the 15th and
every Monday). :func:`_is_star` recomputes it from the text.

Time zones. A schedule fires at every instant whose local wall-clock time (to the minute) matches
the fields. That is also what robfig's field-by-field walk produces in the cases that matter:

* a wall time inside a spring-forward gap does not exist, so it is skipped (``30 2 * * *`` does
  not run on the day New York jumps from 02:00 to 03:00);
* a wall time inside a fall-back overlap exists twice, and fires twice (both ``01:30 EDT`` and
  ``01:30 EST``), which keeps ``0 * * * *`` hourly across the change.

:meth:`CronSchedule.next` walks naive wall-clock candidates (cheap field jumping: months, days,
hours, minutes) and maps each to zero, one or two instants. Wall-clock order and real order only
disagree within a DST shift of a transition, so the walk starts a shift early and keeps looking a
shift beyond the first hit only when a transition is nearby; elsewhere the first hit is the answer.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from kybernetes.api.cron import CronError, parse_cron
from kybernetes.api.timeutil import parse_duration

__all__ = ["CronError", "CronSchedule", "load_zone"]

# The largest daylight-saving shift in the tz database is 2 h (Antarctica/Troll); one more hour
# of margin costs little.
_MAX_SHIFT = timedelta(hours=3)
# A schedule that matches no date within this many years never fires ("0 0 30 2 *").
_YEAR_LIMIT = 9
_DESCRIPTOR_FIELDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


def load_zone(name: str | None) -> tzinfo:
    """The zone for ``spec.timeZone``; unset means the controller's local zone, UTC here."""
    if not name or name == "UTC":
        return UTC
    return ZoneInfo(name)


def _is_star(field: str) -> bool:
    """robfig's star bit: some comma part is ``*``/``?`` with no step, or a step of 1."""
    for part in field.split(","):
        range_part, _, step = part.partition("/")
        if range_part in ("*", "?") and (not step or step.lstrip("+") in ("1", "01")):
            return True
    return False


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule. ``every`` is set for ``@every`` (then the field sets are unused)."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday, as in cron
    dom_star: bool
    dow_star: bool
    zone: str | None = None  # from a TZ=/CRON_TZ= prefix
    every: float | None = None

    @classmethod
    def parse(cls, expr: str) -> CronSchedule:
        """Parse ``expr``; raises :class:`CronError` (a ValueError) with robfig's message."""
        parsed = parse_cron(expr)  # validates everything, including the TZ prefix
        text = expr.strip()
        zone: str | None = None
        if text.startswith(("TZ=", "CRON_TZ=")):
            head, _, rest = text.partition(" ")
            zone = head.split("=", 1)[1]
            text = rest.strip()
        if isinstance(parsed, str):
            if text.startswith("@every "):
                seconds = parse_duration(text[len("@every "):])
                # robfig rounds sub-second delays up to one second and truncates to seconds.
                seconds = max(1.0, float(int(seconds)))
                return cls((), (), frozenset(), frozenset(), frozenset(), True, True, zone, seconds)
            text = _DESCRIPTOR_FIELDS[text]
            fields = parse_cron(text)
            assert isinstance(fields, list)
        else:
            fields = parsed
        words = text.split()
        minutes, hours, days, months, weekdays = fields
        return cls(tuple(sorted(minutes)), tuple(sorted(hours)), frozenset(days), frozenset(months),
                   frozenset(weekdays), _is_star(words[2]), _is_star(words[4]), zone)

    # --- wall-clock walk -------------------------------------------------------------------

    def _day_matches(self, d: datetime) -> bool:
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays  # isoweekday: Monday 1 .. Sunday 7
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def _next_wall(self, w: datetime) -> datetime | None:
        """The first naive wall-clock minute >= ``w`` that matches the fields."""
        limit = w.year + _YEAR_LIMIT
        while w.year <= limit:
            if w.month not in self.months:
                w = datetime(w.year + (w.month == 12), w.month % 12 + 1, 1)
                continue
            if not self._day_matches(w):
                w = datetime(w.year, w.month, w.day) + timedelta(days=1)
                continue
            i = bisect.bisect_left(self.hours, w.hour)
            if i == len(self.hours):
                w = datetime(w.year, w.month, w.day) + timedelta(days=1)
                continue
            if self.hours[i] != w.hour:
                w = w.replace(hour=self.hours[i], minute=0)
            j = bisect.bisect_left(self.minutes, w.minute)
            if j == len(self.minutes):
                w = w.replace(minute=0) + timedelta(hours=1)
                continue
            return w.replace(minute=self.minutes[j])
        return None

    @staticmethod
    def _instants(w: datetime, tz: tzinfo) -> list[datetime]:
        """The real instants (UTC) at which the zone's clock shows ``w``: none, one or two."""
        out: list[datetime] = []
        for fold in (0, 1):
            inst = w.replace(tzinfo=tz, fold=fold).astimezone(UTC)
            if inst.astimezone(tz).replace(tzinfo=None) == w and inst not in out:
                out.append(inst)
        return sorted(out)

    @staticmethod
    def _stable(tz: tzinfo, at: datetime) -> bool:
        """No UTC-offset change within a DST shift either side of ``at``."""
        return (at - _MAX_SHIFT).astimezone(tz).utcoffset() == (at + _MAX_SHIFT).astimezone(tz).utcoffset() \
            == at.astimezone(tz).utcoffset()

    def next(self, after: datetime, tz: tzinfo | None = None) -> datetime | None:
        """The first fire time strictly after ``after`` (aware), in UTC; None if it never fires.

        ``tz`` is the CronJob's zone; a ``TZ=`` prefix in the schedule applies when it is None.
        """
        if after.tzinfo is None:
            raise ValueError("after must be timezone-aware")
        after = after.astimezone(UTC)
        if self.every is not None:
            return after.replace(microsecond=0) + timedelta(seconds=self.every)
        zone = tz if tz is not None else load_zone(self.zone)
        near_transition = not self._stable(zone, after)
        start = after.astimezone(zone).replace(tzinfo=None, second=0, microsecond=0)
        if near_transition:
            start -= _MAX_SHIFT  # a later instant may show an earlier wall time (fall back)
        best: datetime | None = None
        stop_wall: datetime | None = None
        w: datetime | None = self._next_wall(start)
        while w is not None:
            if stop_wall is not None and w > stop_wall:
                break
            for inst in self._instants(w, zone):
                if inst > after and (best is None or inst < best):
                    best = inst
            if best is not None and stop_wall is None:
                if not near_transition and self._stable(zone, best):
                    return best
                # Around a transition a later wall time may still be an earlier instant.
                stop_wall = best.astimezone(zone).replace(tzinfo=None) + _MAX_SHIFT
            w = self._next_wall(w + timedelta(minutes=1))
        return best

    def times_between(self, start: datetime, end: datetime, tz: tzinfo | None = None,
                      limit: int = 1000) -> list[datetime]:
        """Fire times in (start, end], at most ``limit`` of them (the earliest)."""
        out: list[datetime] = []
        t = self.next(start, tz)
        while t is not None and t <= end and len(out) < limit:
            out.append(t)
            t = self.next(t, tz)
        return out
