"""The HA tests' checks (tests/ha/traffic.py) find what they exist to find: gaps, duplicates,
reordering and lost acknowledged writes."""

from __future__ import annotations

from tests.ha.traffic import Ack, Seen, check_stream, missing_acknowledged

FINAL = {"w-00000": 11, "w-00001": 12, "w-00002": 14}


def seen(*pairs: tuple[str, int], kind: str = "ADDED") -> list[Seen]:
    return [Seen(kind, name, rv) for name, rv in pairs]


def test_a_stream_equal_to_the_list_passes() -> None:
    assert check_stream(seen(("w-00000", 11), ("w-00001", 12), ("w-00002", 14)), 10, FINAL) == []
    assert check_stream(seen(("w-00002", 14)), 12, FINAL) == []  # resumed after 12: only what came later


def test_a_gap_a_duplicate_and_disorder_are_found() -> None:
    assert check_stream(seen(("w-00000", 11), ("w-00002", 14)), 10, FINAL) == ["w-00001 at 12 never seen (a gap)"]
    dup = check_stream(seen(("w-00000", 11), ("w-00001", 12), ("w-00001", 12), ("w-00002", 14)), 10, FINAL)
    assert dup == ["resourceVersion 12 after 12: out of order or repeated", "w-00001 at 12 seen 2 times"]
    disorder = check_stream(seen(("w-00001", 12), ("w-00000", 11), ("w-00002", 14)), 10, FINAL)
    assert disorder == ["resourceVersion 11 after 12: out of order or repeated"]


def test_events_other_than_creations_or_unknown_objects_are_found() -> None:
    problems = check_stream([*seen(("w-00000", 11), ("w-00001", 12), ("w-00002", 14)),
                             *seen(("w-00002", 15), kind="MODIFIED")], 10, FINAL)
    assert problems == ["MODIFIED w-00002 at 15: only creations happened", "w-00002 at 15 seen but not in the list"]


def test_lost_or_changed_acknowledged_writes_are_found() -> None:
    acks = [Ack("w-00000", 11, 0, 0.0), Ack("w-00001", 13, 1, 0.0), Ack("w-00003", 16, 2, 0.0)]
    assert missing_acknowledged(acks, FINAL) == [
        "w-00001 (acknowledged at 13 by server 1): at 12", "w-00003 (acknowledged at 16 by server 2): missing"]
