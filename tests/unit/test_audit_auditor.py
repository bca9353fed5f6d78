"""The request path's side of auditing on a real HTTP server (loopback): stages, codes, Panic, Audit-Id."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kybernetes import errors
from kybernetes.apiserver.audit import Auditor
from kybernetes.apiserver.audit.events import AuditEvent, long_running
from kybernetes.apiserver.audit.policy import Policy, PolicyRule
from kybernetes.apiserver.audit.writer import LogBackend
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import RequestInfo
from kybernetes.httpserver.messages import AnyResponse, Request, Response, StreamResponse
from kybernetes.httpserver.protocol import HTTPServer

USER = User("jane", ("devs",))


def info_for(path: str) -> RequestInfo:
    name = path.strip("/")
    if name == "watch":
        return RequestInfo(True, path, "watch", "", "v1", "ns", "configmaps")
    if name == "exec":
        return RequestInfo(True, path, "create", "", "v1", "ns", "pods", "exec", "p")
    return RequestInfo(True, path, "create" if name == "create" else "get", "", "v1", "ns", "configmaps", "", name)


class App:
    def __init__(self, auditor: Auditor) -> None:
        self.auditor = auditor
        self.started_when_streaming: dict[str, bool] = {}
        """Whether ResponseStarted was recorded as soon as the stream or the upgrade began."""

    async def __call__(self, req: Request) -> AnyResponse:
        info = info_for(req.path)
        return await self.auditor.serve(req, info, USER, self.auditor.audit_id(req),
                                        lambda ev: self.serve(req, info, ev))

    async def serve(self, req: Request, info: RequestInfo, ev: AuditEvent | None) -> AnyResponse:
        if ev is not None and long_running(info):  # as APIServer._serve does
            self.auditor.on_response_start(req, ev)
        if req.path == "/create":
            return Response(body=req.body, status=201, content_type="application/json")
        if req.path == "/missing":
            raise errors.NotFound.of("configmaps", "missing")
        if req.path == "/boom":
            raise RuntimeError("boom")
        if req.path == "/watch":
            resp = StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(req)
            self.started_when_streaming["watch"] = ev is not None and ev.started
            await resp.write(b"{}\n")
            await resp.write_eof()
            return resp
        if req.path == "/exec":
            stream = await req.upgrade({"Connection": "Upgrade", "Upgrade": "echo"})
            self.started_when_streaming["exec"] = ev is not None and ev.started
            await stream.write(await stream.read())
            return Response(status=101)
        return Response(status=404, text="no")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[int, Auditor, Path]]:
    log = tmp_path / "audit.log"
    policy = Policy((PolicyRule("RequestResponse"),))
    auditor = Auditor(policy, LogBackend(str(log)))
    auditor.start()
    app = App(auditor)
    srv = HTTPServer(app, max_body=10_000)
    port = await srv.start("127.0.0.1", 0)
    auditor.app = app  # type: ignore[attr-defined]
    try:
        yield port, auditor, log
    finally:
        await srv.stop(timeout=1.0)
        auditor.stop()


async def request(port: int, head: str, body: bytes = b"") -> tuple[bytes, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + b"\r\n" + body)
    if head.startswith("POST /exec"):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"ping")
        data = await reader.readexactly(4)
        writer.close()
        return b"", data
    raw = await reader.read()
    writer.close()
    headers, _, rest = raw.partition(b"\r\n\r\n")
    return headers, rest


def read_events(auditor: Auditor, log: Path) -> list[dict[str, Any]]:
    auditor.stop()
    return [orjson.loads(line) for line in log.read_bytes().splitlines()]


async def test_create_is_recorded_at_each_stage_with_objects(served: tuple[int, Auditor, Path]) -> None:
    port, auditor, log = served
    body = b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"made","uid":"u"},"data":{"a":"b"}}'
    headers, _ = await request(port, f"POST /create?x=1&y=2 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
                                     f"Audit-ID: given-id\r\nContent-Type: application/json\r\n"
                                     f"Content-Length: {len(body)}\r\n", body)
    assert b"\r\nAudit-Id: given-id\r\n" in headers
    evs = read_events(auditor, log)
    assert [e["stage"] for e in evs] == ["RequestReceived", "ResponseComplete"]
    done = evs[1]
    assert done["auditID"] == "given-id" and done["requestURI"] == "/create?x=1&y=2"
    assert done["objectRef"]["name"] == "create" and done["objectRef"]["uid"] == "u"
    assert done["requestObject"]["data"] == {"a": "b"} and done["responseObject"]["metadata"]["name"] == "made"
    assert done["responseStatus"] == {"metadata": {}, "code": 201}
    assert "responseStatus" not in evs[0] and "requestObject" in evs[0]


async def test_errors_and_panics(served: tuple[int, Auditor, Path]) -> None:
    port, auditor, log = served
    await request(port, "GET /missing HTTP/1.1\r\nHost: h\r\nConnection: close\r\n")
    await request(port, "GET /boom HTTP/1.1\r\nHost: h\r\nConnection: close\r\n")
    evs = read_events(auditor, log)
    assert [(e["objectRef"]["name"], e["stage"]) for e in evs] == [
        ("missing", "RequestReceived"), ("missing", "ResponseComplete"), ("boom", "RequestReceived"),
        ("boom", "Panic")]
    assert evs[1]["responseStatus"]["reason"] == "NotFound" and evs[1]["responseStatus"]["code"] == 404
    assert evs[1]["responseObject"]["kind"] == "Status"
    assert evs[3]["responseStatus"] == {"metadata": {}, "status": "Failure",
                                        "message": "APIServer panic'd: RuntimeError: boom",
                                        "reason": "InternalError", "code": 500}


async def test_long_running_requests_have_response_started(served: tuple[int, Auditor, Path]) -> None:
    port, auditor, log = served
    headers, _ = await request(port, "GET /watch HTTP/1.1\r\nHost: h\r\nConnection: close\r\n")
    assert b"\r\nAudit-Id: " in headers  # on a streamed response too
    _, echoed = await request(port, "POST /exec HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: echo\r\n")
    assert echoed == b"ping"
    for _ in range(250):  # the exec handler finishes after the client has its echo
        text = log.read_bytes() if log.exists() else b""
        if b'"exec"' in text and text.count(b"ResponseComplete") == 2:
            break
        await asyncio.sleep(0.02)
    evs = read_events(auditor, log)
    watch = [(e["stage"], e["responseStatus"]["code"]) for e in evs if e["verb"] == "watch" and "responseStatus" in e]
    assert watch == [("ResponseStarted", 200), ("ResponseComplete", 200)]
    execs = [(e["stage"], e["responseStatus"]["code"]) for e in evs if e["objectRef"].get("subresource") == "exec"
             and "responseStatus" in e]
    assert execs == [("ResponseStarted", 101), ("ResponseComplete", 101)]
    assert auditor.app.started_when_streaming == {"watch": True, "exec": True}  # type: ignore[attr-defined]
