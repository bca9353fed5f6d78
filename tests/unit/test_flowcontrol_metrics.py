"""API Priority and Fairness metrics (``flowcontrol/metrics.py``) as the gate records them: seats
taken at once and after a wait, each kind of rejection, the in-queue and executing gauges."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.flowcontrol import FlowControl, bootstrap
from kybernetes.apiserver.flowcontrol.metrics import FlowControlMetrics
from kybernetes.apiserver.transport.requests import ResourcePath
from kybernetes.httpserver.messages import Response

from .test_flowcontrol_gate import ADMIN, ALICE, FakeRequest, serve

PODS = ResourcePath("", "v1", "pods")


def _level(name: str, response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": bootstrap.API_VERSION, "kind": "PriorityLevelConfiguration", "metadata": {"name": name},
            "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 1, "lendablePercent": 0,
                                                    "limitResponse": response}}}


def _schema(name: str, level: str, user: str) -> dict[str, Any]:
    return {"apiVersion": bootstrap.API_VERSION, "kind": "FlowSchema", "metadata": {"name": name},
            "spec": {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": 10,
                     "rules": [{"subjects": [{"kind": "User", "user": {"name": user}}],
                                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                                   "namespaces": ["*"], "clusterScope": True}]}]}}


def _gate(metrics: FlowControlMetrics) -> FlowControl:
    """Two one-seat levels: ``q`` queues (one queue of one), ``r`` rejects; alice is in ``q``, bob in ``r``."""
    fc = FlowControl(None, Catalogue.builtin(), 1, wait_limit=0.2, metrics=metrics)  # type: ignore[arg-type]
    queued = _level("q", {"type": "Queue", "queuing": {"queues": 1, "handSize": 1, "queueLengthLimit": 1}})
    pls = {o["metadata"]["name"]: copy.deepcopy(o) for o in
           (*bootstrap.MANDATORY_PRIORITY_LEVELS, queued, _level("r", {"type": "Reject"}))}
    fss = {o["metadata"]["name"]: copy.deepcopy(o) for o in
           (*bootstrap.MANDATORY_FLOW_SCHEMAS, _schema("alice", "q", "alice"), _schema("bob", "r", "bob"))}
    fc._rebuild(pls, fss)
    assert (fc.levels["q"].limit, fc.levels["r"].limit) == (1, 1)
    return fc


def _scrape(metrics: FlowControlMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(metrics)
    out = {}
    for f in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in f.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def _key(sample: str, pl: str, fs: str, **more: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return sample, tuple(sorted({"priority_level": pl, "flow_schema": fs, **more}.items()))


async def test_apf_series_follow_seats_waits_and_rejections() -> None:
    from kybernetes.apiserver.registry.request import User

    metrics = FlowControlMetrics()
    fc = _gate(metrics)
    bob = User("bob", ("system:authenticated",))
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow() -> Response:
        started.set()
        await release.wait()
        return Response(body=b"{}")

    async def quick() -> Response:
        return Response(body=b"ok")

    holder = asyncio.ensure_future(serve(fc, FakeRequest(), PODS, ALICE, slow))
    await started.wait()
    waiter = asyncio.ensure_future(serve(fc, FakeRequest(), PODS, ALICE, quick))
    while fc.levels["q"].waiting == 0:
        await asyncio.sleep(0)
    now = _scrape(metrics)
    assert now[_key("apiserver_flowcontrol_current_executing_requests", "q", "alice")] == 1
    assert now[_key("apiserver_flowcontrol_current_inqueue_requests", "q", "alice")] == 1
    assert (await serve(fc, FakeRequest(), PODS, ALICE, quick)).status == 429  # the one queue is full
    release.set()
    assert (await holder).status == 200 and (await waiter).status == 200
    # Bob's level rejects rather than queues: a second request while his first runs is refused.
    release.clear()
    started.clear()
    bob_holder = asyncio.ensure_future(serve(fc, FakeRequest(), PODS, bob, slow))
    await started.wait()
    assert (await serve(fc, FakeRequest(), PODS, bob, quick)).status == 429
    release.set()
    await bob_holder
    # A wait that outlasts the limit (0.2 s), and one whose client leaves.
    release.clear()
    started.clear()
    holder = asyncio.ensure_future(serve(fc, FakeRequest(), PODS, ALICE, slow))
    await started.wait()
    assert (await serve(fc, FakeRequest(), PODS, ALICE, quick)).status == 429
    leaving = asyncio.ensure_future(serve(fc, FakeRequest(), PODS, ALICE, quick))
    while fc.levels["q"].waiting == 0:
        await asyncio.sleep(0)
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    release.set()
    await holder
    assert (await serve(fc, FakeRequest(), PODS, ADMIN, quick)).status == 200

    got = _scrape(metrics)
    dispatched = "apiserver_flowcontrol_dispatched_requests_total"
    rejected = "apiserver_flowcontrol_rejected_requests_total"
    assert got[_key(dispatched, "q", "alice")] == 3
    assert got[_key(dispatched, "r", "bob")] == 1
    assert got[_key(dispatched, "exempt", "exempt")] == 1
    assert {k: v for k, v in got.items() if k[0] == rejected} == {
        _key(rejected, "q", "alice", reason="queue-full"): 1, _key(rejected, "q", "alice", reason="time-out"): 1,
        _key(rejected, "q", "alice", reason="cancelled"): 1, _key(rejected, "r", "bob", reason="concurrency-limit"): 1}
    for gauge in ("current_executing_requests", "current_inqueue_requests"):
        assert {v for k, v in got.items() if k[0] == f"apiserver_flowcontrol_{gauge}"} == {0}
    wait = "apiserver_flowcontrol_request_wait_duration_seconds"
    # Alice: two seats at once (0 s, the le="0" bucket) and one after waiting for the holder.
    assert got[_key(f"{wait}_bucket", "q", "alice", execute="true", le="0.0")] == 2
    assert got[_key(f"{wait}_count", "q", "alice", execute="true")] == 3
    assert got[_key(f"{wait}_count", "q", "alice", execute="false")] == 3
    assert got[_key(f"{wait}_sum", "q", "alice", execute="false")] >= 0.2  # the timed-out wait at least
    assert got[_key(f"{wait}_bucket", "q", "alice", execute="true", le="30.0")] == 3
