"""Timestamps as kube-apiserver decodes them: Go's layouts, Go's refusals, the canonical form stored."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from kybernetes.testing import ServerProcess

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.integration


def _event(name: str, when: dt.datetime, namespace: str) -> Any:
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(name=name), involved_object=client.V1ObjectReference(kind="Pod", name="p", namespace=namespace),
        reason="Tested", message="m", type="Normal", event_time=when, reporting_component="tester",
        reporting_instance="here", action="Test")


def test_micro_time_without_fraction_is_refused_as_go_refuses_it(api: Any, server: ServerProcess,
                                                                  namespace: str) -> None:
    """The official client writes a MicroTime without digits when its microseconds are zero;
    kube-apiserver's decoder refuses it, and storing it would break kubectl events for everyone."""
    core = client.CoreV1Api(api)
    whole = dt.datetime(2026, 1, 7, 10, 0, 0, tzinfo=dt.UTC)
    with pytest.raises(ApiException) as e:
        core.create_namespaced_event(namespace, _event("whole", whole, namespace))
    assert e.value.status == 400
    assert json.loads(e.value.body)["message"] == (
        'Event in version "v1" cannot be handled as a Event: parsing time "2026-01-07T10:00:00+00:00" as '
        '"2006-01-02T15:04:05.000000Z07:00": cannot parse "+00:00" as ".000000"')
    core.create_namespaced_event(namespace, _event("micro", whole.replace(microsecond=250), namespace))
    stored = json.loads(server.kubectl("get", "event", "micro", "-n", namespace, "-o", "json").stdout)
    assert stored["eventTime"] == "2026-01-07T10:00:00.000250Z"
    assert "Tested" in server.kubectl("events", "-n", namespace).stdout  # kubectl parses what is stored


def test_times_are_stored_in_utc_to_the_second(server: ServerProcess, namespace: str) -> None:
    server.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "t"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": namespace}, "reason": "R", "message": "m",
        "firstTimestamp": "2026-12-07T12:00:00.75+02:00", "lastTimestamp": "2026-12-07T12:00:01+02:00"}))
    stored = json.loads(server.kubectl("get", "event", "t", "-n", namespace, "-o", "json").stdout)
    assert (stored["firstTimestamp"], stored["lastTimestamp"]) == ("2026-12-07T10:00:00Z", "2026-12-07T10:00:01Z")
