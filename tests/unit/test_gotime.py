"""metav1.Time and MicroTime decoding as Go's time.Parse does it, and what is stored."""

from __future__ import annotations

import pytest

from kybernetes.api import decode, gotime, schema

ACCEPTED = [
    # (value, kind, stored)
    ("2024-05-01T10:00:00Z", "time", "2024-05-01T10:00:00Z"),
    ("2024-05-01T10:00:00+02:00", "time", "2024-05-01T08:00:00Z"),
    ("2024-05-01T10:00:00.987654321-01:30", "time", "2024-05-01T11:30:00Z"),
    ("2024-02-29T23:59:59Z", "time", "2024-02-29T23:59:59Z"),
    ("2024-05-01T10:00:00.123456Z", "micro", "2024-05-01T10:00:00.123456Z"),
    ("2024-05-01T10:00:00.000000+00:00", "micro", "2024-05-01T10:00:00.000000Z"),
    ("2024-05-01T10:00:00.5000001+01:00", "micro", None),  # seven digits: the seventh is left over
]

REFUSED = [
    ("2024-05-01T10:00:00+00:00", "micro",
     'parsing time "2024-05-01T10:00:00+00:00" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "+00:00" as '
     '".000000"'),
    ("2024-05-01T10:00:00.12Z", "micro",
     'parsing time "2024-05-01T10:00:00.12Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse ".12Z" as '
     '".000000"'),
    ("2024-05-01 10:00:00Z", "time",
     'parsing time "2024-05-01 10:00:00Z" as "2006-01-02T15:04:05Z07:00": cannot parse " 10:00:00Z" as "T"'),
    ("2024-05-01T10:00:00", "time",
     'parsing time "2024-05-01T10:00:00" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "Z07:00"'),
    ("2024-13-01T10:00:00Z", "time", 'parsing time "2024-13-01T10:00:00Z": month out of range'),
    ("2023-02-29T10:00:00Z", "time", 'parsing time "2023-02-29T10:00:00Z": day out of range'),
    ("2024-05-01T24:00:00Z", "time", 'parsing time "2024-05-01T24:00:00Z": hour out of range'),
    ("2024-05-01T10:00:00Zjunk", "time", 'parsing time "2024-05-01T10:00:00Zjunk" as "2006-01-02T15:04:05Z07:00": '
                                          'extra text: "junk"'),
]


@pytest.mark.parametrize(("value", "kind", "stored"), ACCEPTED)
def test_accepted_and_stored_as_go_writes_it(value: str, kind: str, stored: str | None) -> None:
    if stored is None:
        with pytest.raises(gotime.GoTimeError):
            gotime.canonical(value, kind)
        return
    assert gotime.canonical(value, kind) == stored


@pytest.mark.parametrize(("value", "kind", "message"), REFUSED)
def test_refused_with_gos_message(value: str, kind: str, message: str) -> None:
    with pytest.raises(gotime.GoTimeError) as e:
        gotime.canonical(value, kind)
    assert str(e.value) == message


def test_the_typed_decoder_canonicalises_times_and_refuses_what_go_refuses() -> None:
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p"},
             "firstTimestamp": "2024-05-01T10:00:00.5+02:00", "eventTime": "2024-05-01T10:00:00.250000Z"}
    res = decode.check(event, schema.for_kind("", "v1", "Event"))
    assert res.type_errors == []
    assert event["firstTimestamp"] == "2024-05-01T08:00:00Z"
    assert event["eventTime"] == "2024-05-01T10:00:00.250000Z"
    bad = {"metadata": {"name": "e"}, "eventTime": "2024-05-01T10:00:00+00:00"}
    assert decode.check(bad, schema.for_kind("", "v1", "Event")).type_errors == [
        'parsing time "2024-05-01T10:00:00+00:00" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "+00:00" '
        'as ".000000"']
    pod = {"metadata": {"name": "p"}, "status": {"conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00-05:00"}]}}
    decode.check(pod, schema.for_kind("", "v1", "Pod"))
    assert pod["status"]["conditions"][0]["lastTransitionTime"] == "2024-05-01T15:00:00Z"
