"""The event recorder against a real API server: shape, aggregation, never blocking."""

from __future__ import annotations

from typing import Any

import pytest

import kybernetes.client.events as events_module
from kybernetes.client.events import EventRecorder
from kybernetes.client.rest import Client
from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration


async def make_cm(client: Client, ns: str, name: str) -> dict[str, Any]:
    try:
        await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    except Exception:
        pass
    return await client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": name}}, ns)


async def events_for(client: Client, ns: str, name: str) -> list[dict[str, Any]]:
    items, _ = await client.list_all("v1", "events", ns, field_selector=f"involvedObject.name={name}")
    return items


async def test_event_shape(client: Client) -> None:
    obj = await make_cm(client, "ev-shape", "target")
    rec = EventRecorder(client, "test-controller", host="host-1")
    rec.event(obj, "Normal", "Synced", "all good")
    await rec.flush()
    evs = await events_for(client, "ev-shape", "target")
    assert len(evs) == 1
    ev = evs[0]
    assert ev["metadata"]["name"].startswith("target.")
    assert ev["metadata"]["namespace"] == "ev-shape"
    inv = ev["involvedObject"]
    assert inv["kind"] == "ConfigMap" and inv["name"] == "target" and inv["namespace"] == "ev-shape"
    assert inv["uid"] == obj["metadata"]["uid"] and inv["apiVersion"] == "v1"
    assert inv["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert (ev["reason"], ev["message"], ev["type"], ev["count"]) == ("Synced", "all good", "Normal", 1)
    assert ev["source"] == {"component": "test-controller", "host": "host-1"}
    assert ev["reportingComponent"] == "test-controller" and ev["reportingInstance"] == "host-1"
    assert ev["firstTimestamp"] == ev["lastTimestamp"]
    await rec.close()


async def test_identical_events_aggregate(client: Client) -> None:
    obj = await make_cm(client, "ev-agg", "agg")
    # The recorder's wall clock moves a second per event, so lastTimestamp moves on.
    times = iter(["2026-03-01T10:00:00Z", "2026-03-01T10:00:01Z", "2026-03-01T10:00:02Z"])
    rec = EventRecorder(client, "test-controller", host="h", timestamp=lambda: next(times))
    rec.event(obj, "Warning", "Failed", "boom")
    await rec.flush()
    rec.event(obj, "Warning", "Failed", "boom")
    rec.event(obj, "Warning", "Failed", "different message")
    await rec.flush()
    evs = sorted(await events_for(client, "ev-agg", "agg"), key=lambda e: e["message"])
    assert [(e["message"], e["count"]) for e in evs] == [("boom", 2), ("different message", 1)]
    assert evs[0]["lastTimestamp"] > evs[0]["firstTimestamp"]
    await rec.close()


async def test_deleted_event_is_recreated(client: Client) -> None:
    obj = await make_cm(client, "ev-gone", "gone")
    rec = EventRecorder(client, "c", host="h")
    rec.event(obj, "Normal", "R", "m")
    await rec.flush()
    (ev,) = await events_for(client, "ev-gone", "gone")
    await client.delete("v1", "events", ev["metadata"]["name"], "ev-gone")
    rec.event(obj, "Normal", "R", "m")
    await rec.flush()
    (again,) = await events_for(client, "ev-gone", "gone")
    assert again["count"] == 1 and again["metadata"]["name"] != ev["metadata"]["name"]
    await rec.close()


async def test_cluster_scoped_object_events_go_to_default(client: Client) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "ev-node", "uid": "node-uid"}}
    rec = EventRecorder(client, "c", host="h")
    rec.event(node, "Normal", "Registered", "hello")
    await rec.flush()
    (ev,) = await events_for(client, "default", "ev-node")
    assert "namespace" not in ev["involvedObject"] and ev["involvedObject"]["kind"] == "Node"
    await rec.close()


async def test_full_queue_drops_instead_of_blocking(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "QUEUE_SIZE", 3)
    obj = await make_cm(client, "ev-full", "full")
    rec = EventRecorder(client, "c", host="h")
    for i in range(10):
        rec.event(obj, "Normal", "R", f"m{i}")  # returns at once, every time
    assert rec.dropped == 7
    await rec.flush()
    assert len(await events_for(client, "ev-full", "full")) == 3
    await rec.close()
    rec.event(obj, "Normal", "R", "after close")  # ignored, no error


def test_event_outside_a_loop_is_dropped(server: ServerProcess) -> None:
    rec = EventRecorder(Client.from_kubeconfig(server.kubeconfig), "c", host="h")
    rec.event({"kind": "Pod", "metadata": {"name": "p"}}, "Normal", "R", "m")  # no loop: logged, no error
