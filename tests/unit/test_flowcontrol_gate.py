"""The APF gate (``FlowControl.serve``) and the seats each priority level gets."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.flowcontrol import FlowControl, bootstrap
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import request_info
from kybernetes.apiserver.transport.requests import ResourcePath
from kybernetes.httpserver.messages import Response

ALICE = User("alice", ("system:authenticated",))
ADMIN = User("admin", ("system:masters", "system:authenticated"))


class FakeRequest:
    def __init__(self, method: str = "GET", query_string: str = "", path: str = "/api/v1/pods") -> None:
        self.method, self.query_string, self.path = method, query_string, path
        self.extra_headers: Any = None
        self.on_stream_start: Any = None

    @property
    def query(self) -> dict[str, str]:
        return dict(p.split("=", 1) for p in self.query_string.split("&") if "=" in p)


def serve(fc: FlowControl, req: Any, rp: ResourcePath, user: User, call: Any) -> Any:
    """The gate as the server calls it: with the request's RequestInfo."""
    return fc.serve(req, request_info(req.method, req.path, rp, req.query), user, call)


def gate(total: int = 600, extra_levels: tuple[dict, ...] = (), extra_schemas: tuple[dict, ...] = ()) -> FlowControl:
    fc = FlowControl(None, Catalogue.builtin(), total, wait_limit=5.0)  # type: ignore[arg-type]
    pls = {o["metadata"]["name"]: copy.deepcopy(o) for o in
           (*bootstrap.MANDATORY_PRIORITY_LEVELS, *bootstrap.SUGGESTED_PRIORITY_LEVELS, *extra_levels)}
    fss = {o["metadata"]["name"]: copy.deepcopy(o) for o in
           (*bootstrap.MANDATORY_FLOW_SCHEMAS, *bootstrap.SUGGESTED_FLOW_SCHEMAS, *extra_schemas)}
    for o in (*pls.values(), *fss.values()):
        o["metadata"]["uid"] = "uid-" + o["metadata"]["name"]
    fc._rebuild(pls, fss)
    return fc


def test_seats_are_the_nominal_share_of_the_server_limit() -> None:
    fc = gate()
    # 600 seats over 5+30+40+10+40+100+20 = 245 shares, rounded up.
    assert {n: qs.limit for n, qs in fc.levels.items()} == {
        "catch-all": 13, "exempt": None, "system": 74, "node-high": 98, "leader-election": 25,
        "workload-high": 98, "workload-low": 245, "global-default": 49}
    assert len(fc.levels["workload-low"]._queues) == 128 and fc.levels["catch-all"]._queues == []


async def test_headers_and_seat_for_the_handler_duration() -> None:
    fc = gate()
    seen: list[int] = []

    async def handler() -> Response:
        seen.append(fc.levels["global-default"].executing)
        return Response(body=b"{}")

    req = FakeRequest()
    resp = await serve(fc, req, ResourcePath("", "v1", "pods"), ALICE, handler)
    assert resp.status == 200 and seen == [1] and fc.levels["global-default"].executing == 0
    assert req.extra_headers == (b"X-Kubernetes-PF-FlowSchema-UID: uid-global-default\r\n"
                                 b"X-Kubernetes-PF-PriorityLevel-UID: uid-global-default\r\n")


async def test_long_running_requests_bypass_and_watches_hold_a_seat_until_their_stream_starts() -> None:
    fc = gate()
    levels: list[int] = []

    async def handler() -> Response:
        levels.append(fc.levels["global-default"].executing)
        return Response()

    exec_req = FakeRequest("POST", "command=ls")
    await serve(fc, exec_req, ResourcePath("", "v1", "pods", "default", "p", "exec"), ALICE, handler)
    assert exec_req.extra_headers is None
    assert levels == [0]

    watch_req = FakeRequest("GET", "watch=true")

    async def watch() -> Response:
        levels.append(fc.levels["global-default"].executing)  # gathering the initial events
        watch_req.on_stream_start()  # what StreamResponse.prepare does
        levels.append(fc.levels["global-default"].executing)  # streaming
        return Response()

    await serve(fc, watch_req, ResourcePath("", "v1", "pods"), ALICE, watch)
    assert watch_req.extra_headers is not None
    assert levels == [0, 1, 0] and fc.levels["global-default"].executing == 0
    failing = FakeRequest("GET", "watch=1")

    async def broken() -> Response:
        raise RuntimeError("no stream")

    with pytest.raises(RuntimeError):
        await serve(fc, failing, ResourcePath("", "v1", "pods"), ALICE, broken)
    assert fc.levels["global-default"].executing == 0


async def test_full_reject_level_answers_429_while_exempt_passes() -> None:
    one = {"apiVersion": bootstrap.API_VERSION, "kind": "PriorityLevelConfiguration", "metadata": {"name": "one"},
           "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": 1, "lendablePercent": 0,
                                                   "limitResponse": {"type": "Reject"}}}}
    fs = {"apiVersion": bootstrap.API_VERSION, "kind": "FlowSchema", "metadata": {"name": "alice"},
          "spec": {"priorityLevelConfiguration": {"name": "one"}, "matchingPrecedence": 10,
                   "rules": [{"subjects": [{"kind": "User", "user": {"name": "alice"}}],
                              "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                                 "namespaces": ["*"], "clusterScope": True}]}]}}
    fc = gate(total=1, extra_levels=(one,), extra_schemas=(fs,))
    assert fc.levels["one"].limit == 1
    release = asyncio.Event()

    async def slow() -> Response:
        await release.wait()
        return Response(body=b"{}")

    rp = ResourcePath("", "v1", "pods")
    first = asyncio.ensure_future(serve(fc, FakeRequest(), rp, ALICE, slow))
    await asyncio.sleep(0)
    rejected_req = FakeRequest()
    rejected = await serve(fc, rejected_req, rp, ALICE, slow)
    assert isinstance(rejected, Response) and rejected.status == 429
    assert rejected.body == b"Too many requests, please try again later.\n"
    assert rejected.headers == {"Retry-After": "1", "X-Content-Type-Options": "nosniff"}
    assert b"uid-alice" in rejected_req.extra_headers

    async def quick() -> Response:
        return Response(body=b"ok")

    assert (await serve(fc, FakeRequest(), rp, ADMIN, quick)).status == 200
    release.set()
    assert (await first).status == 200
    assert fc.levels["one"].executing == 0


def test_retry_after_doubles_under_sustained_drops_and_relaxes_after() -> None:
    from kybernetes.apiserver.flowcontrol.dropped import DroppedRequests

    d = DroppedRequests()
    assert d.retry_after("l") == 1
    for _ in range(3):
        d.record("l", 100)
    d.record("l", 101)  # a new second: 3 drops in the last 1 s -> 2
    assert d.retry_after("l") == 2
    for _ in range(6):
        d.record("l", 102)
    d.record("l", 103)  # 6 + 1 drops in the last 2 s, 2 s after the last increase -> 4
    assert d.retry_after("l") == 4
    d.record("l", 120)  # nothing for a long while: one step down
    assert d.retry_after("l") == 3
    assert d.retry_after("other") == 1


async def test_a_namespace_request_is_in_that_namespace() -> None:
    fs = {"apiVersion": bootstrap.API_VERSION, "kind": "FlowSchema", "metadata": {"name": "ns-foo"},
          "spec": {"priorityLevelConfiguration": {"name": "workload-low"}, "matchingPrecedence": 10,
                   "rules": [{"subjects": [{"kind": "Group", "group": {"name": "*"}}],
                              "resourceRules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["namespaces"],
                                                 "namespaces": ["foo"]}]}]}}
    fc = gate(extra_schemas=(fs,))

    async def handler() -> Response:
        return Response()

    req = FakeRequest(path="/api/v1/namespaces/foo")
    await serve(fc, req, ResourcePath("", "v1", "namespaces", "", "foo"), ALICE, handler)
    assert b"uid-ns-foo" in req.extra_headers
    req = FakeRequest(path="/api/v1/namespaces")
    await serve(fc, req, ResourcePath("", "v1", "namespaces"), ALICE, handler)
    assert b"uid-global-default" in req.extra_headers
