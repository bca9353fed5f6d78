"""Cron schedules as ``robfig/cron/v3``'s ``ParseStandard`` reads them, with its error texts.

One parser for the two that need it: CronJob validation in the API server (an invalid schedule is a
422 whose message is robfig's, as ``kubectl`` shows it) and the CronJob controller (which computes
the next run from the parsed fields), so the controller accepts exactly what validation accepts:
five fields with ranges, steps, lists and month/weekday names, ``?`` as ``*``, the ``@``
descriptors, ``@every <duration>`` and a ``TZ=``/``CRON_TZ=`` prefix naming a zone.
"""

from __future__ import annotations

import re
import zoneinfo

from kybernetes.api.timeutil import parse_duration

_MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# (min, max, names) of minute, hour, day of month, month, day of week.
_FIELDS: tuple[tuple[int, int, dict[str, int] | None], ...] = (
    (0, 59, None), (0, 23, None), (1, 31, None), (1, 12, _MONTHS), (0, 6, _DAYS))
_DESCRIPTORS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_GO_INT = re.compile(r"^[+-]?[0-9]+$")


class CronError(ValueError):
    """A schedule that ``cron.ParseStandard`` rejects; the text is its error text."""


def _go_slice(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def _parse_int(expr: str) -> int:
    if not _GO_INT.match(expr):
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax')
    num = int(expr)
    if num < 0:
        raise CronError(f"negative number ({num}) not allowed: {expr}")
    return num


def _parse_int_or_name(expr: str, names: dict[str, int] | None) -> int:
    if names is not None and expr.lower() in names:
        return names[expr.lower()]
    return _parse_int(expr)


def _parse_range(expr: str, lo: int, hi: int, names: dict[str, int] | None) -> set[int]:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    single = len(low_high) == 1
    if low_high[0] in ("*", "?"):
        start, end = lo, hi
    else:
        start = _parse_int_or_name(low_high[0], names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _parse_int_or_name(low_high[1], names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _parse_int(range_and_step[1])
        if single:
            end = hi  # "N/step" means "from N to the end, every step"
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < lo:
        raise CronError(f"beginning of range ({start}) below minimum ({lo}): {expr}")
    if end > hi:
        raise CronError(f"end of range ({end}) above maximum ({hi}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step))


def parse_cron(spec: str) -> list[set[int]] | str:
    """Parse a standard cron schedule; the sets of minutes, hours, days, months and weekdays.

    Descriptors (``@hourly``, ``@every 1h30m``...) return the descriptor itself. Raises
    :class:`CronError` with robfig/cron's message when the schedule is invalid.
    """
    if not spec:
        raise CronError("empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space = spec.find(" ")
        zone = spec[spec.find("=") + 1:space if space >= 0 else len(spec)]
        if not zone_exists(zone):
            raise CronError(f"provided bad location {zone}: unknown time zone {zone}")
        spec = spec[space:].strip() if space >= 0 else ""
        if not spec:
            raise CronError("empty spec string")
    if spec.startswith("@"):
        if spec.startswith("@every "):
            duration = spec[len("@every "):]
            try:
                parse_duration(duration)
            except ValueError as e:
                raise CronError(f"failed to parse duration {spec}: {e}")
            return spec
        if spec in _DESCRIPTORS:
            return spec
        raise CronError(f"unrecognized descriptor: {spec}")
    fields = spec.split()
    if len(fields) != len(_FIELDS):
        raise CronError(f"expected exactly {len(_FIELDS)} fields, found {len(fields)}: {_go_slice(fields)}")
    out: list[set[int]] = []
    for text, (lo, hi, names) in zip(fields, _FIELDS, strict=True):
        values: set[int] = set()
        for part in (p for p in text.split(",") if p):
            values |= _parse_range(part, lo, hi, names)
        out.append(values)
    return out


def zone_exists(zone: str) -> bool:
    """Whether Go's ``time.LoadLocation`` finds ``zone`` (the IANA database, or UTC/empty)."""
    if zone == "UTC" or zone == "":
        return True  # Go's LoadLocation knows these without a database
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
