"""Micro-benchmark: what API Priority and Fairness adds to one GET.

Run from the repository root::

    .venv/bin/python -m bench.flowcontrol

Times, per request and on one core, ``FlowControl.serve`` around a handler that does nothing,
against calling that handler directly, for an admin GET (system:masters: the exempt level) and
for an ordinary user's GET (global-default: a limited level with a free seat), both classified
from the cache as every request but a user's first is; and the two PF response headers' share of
``Response.encode_head``. The configuration is Kubernetes' default one (``bootstrap.py``).
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.flowcontrol import FlowControl, bootstrap
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requests import ResourcePath
from kybernetes.httpserver.messages import Response

N = 200_000


class _Request:
    """The attributes of ``httpserver.Request`` that the gate reads."""

    def __init__(self) -> None:
        self.method = "GET"
        self.query_string = ""
        self.path = "/api/v1/namespaces/default/configmaps/c1"
        self.extra_headers: Any = None


def _flow_control() -> FlowControl:
    fc = FlowControl(None, Catalogue.builtin())  # type: ignore[arg-type]
    pls = {o["metadata"]["name"]: copy.deepcopy(o) for o in
           (*bootstrap.MANDATORY_PRIORITY_LEVELS, *bootstrap.SUGGESTED_PRIORITY_LEVELS)}
    fss = {o["metadata"]["name"]: copy.deepcopy(o) for o in
           (*bootstrap.MANDATORY_FLOW_SCHEMAS, *bootstrap.SUGGESTED_FLOW_SCHEMAS)}
    for i, o in enumerate((*pls.values(), *fss.values())):
        o["metadata"]["uid"] = f"00000000-0000-0000-0000-{i:012d}"
    fc._rebuild(pls, fss)
    return fc


async def _time(fn: Any) -> float:
    for _ in range(1000):
        await fn()
    t = time.perf_counter()
    for _ in range(N):
        await fn()
    return (time.perf_counter() - t) / N * 1e6


async def main() -> None:
    fc = _flow_control()
    resp = Response(body=b"{}")
    rp = ResourcePath("", "v1", "configmaps", "default", "c1")
    req = _Request()

    async def handler() -> Response:
        return resp

    admin = User("kubernetes-admin", ("system:masters", "system:authenticated"))
    alice = User("alice", ("system:authenticated",))
    base = await _time(handler)
    for label, user in (("admin GET (exempt)", admin), ("user GET (global-default)", alice)):
        gated = await _time(lambda u=user: fc.serve(req, rp, u, handler))  # type: ignore[misc]
        m = fc.classifier.classify(user.name, user.groups, "get", "", "configmaps", "default", "", True)
        assert m is not None
        print(f"{label:<28} {gated - base:6.2f} us added per request  (flow schema {m.flow_schema})")
    headers = req.extra_headers
    t = time.perf_counter()
    for _ in range(N):
        resp.encode_head(True)
    plain = (time.perf_counter() - t) / N * 1e6
    t = time.perf_counter()
    for _ in range(N):
        resp.encode_head(True, headers)
    with_pf = (time.perf_counter() - t) / N * 1e6
    print(f"{'PF headers in encode_head':<28} {with_pf - plain:6.2f} us added per response")


if __name__ == "__main__":
    asyncio.run(main())
