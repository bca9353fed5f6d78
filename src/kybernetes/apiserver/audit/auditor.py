"""Auditing on the request path: kube-apiserver's ``WithAuditInit`` and ``WithAudit`` filters.

``APIServer`` has an :class:`Auditor` only when ``--audit-policy-file`` and ``--audit-log-path`` are
both given (otherwise nothing here runs: no cost). Then, for every request:

- :meth:`Auditor.audit_id` answers with an ``Audit-Id`` header (the client's ``Audit-ID`` when it
  sent one, else a new UUID), on every response, health checks and refusals included;
- :meth:`Auditor.serve`, after authentication, evaluates the policy on the user and the
  RequestInfo; at level None the request runs unrecorded. Otherwise an :class:`AuditEvent` is made
  and written at each stage the policy does not omit: ``RequestReceived`` before the request is
  served; ``ResponseStarted`` for long-running requests (watch, exec, attach, log, port-forward,
  proxy) when their response head goes out; ``ResponseComplete`` when the answer is complete (a
  Status error included, with its status, message, reason and details); ``Panic`` instead when the
  handler failed with an unexpected exception (500).
- The request's object (create, update, patch, delete options) is decoded from the body for the
  event (at Metadata only to name it in ``objectRef``); the response object is decoded from the
  JSON body at RequestResponse.
- ``call(event)`` gets the event so that later steps add to it: the authorization decision, and
  through ``RequestContext.audit_annotations`` admission's annotations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from kybernetes import errors
from kybernetes.apiserver.audit.events import AuditEvent, long_running, source_ips
from kybernetes.apiserver.audit.policy import (
    NONE,
    PANIC,
    RANK,
    REQUEST,
    REQUEST_RECEIVED,
    REQUEST_RESPONSE,
    RESPONSE_COMPLETE,
    RESPONSE_STARTED,
    Policy,
)
from kybernetes.apiserver.audit.writer import LogBackend
from kybernetes.apiserver.registry.objutil import new_uid
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import RequestInfo
from kybernetes.apiserver.transport.requests import read_body
from kybernetes.httpserver.messages import AnyResponse, Request, Response

HEADER = "Audit-ID"
_WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_STATUS_PREFIX = b'{"kind":"Status",'


class Auditor:
    def __init__(self, policy: Policy, backend: LogBackend) -> None:
        self.policy = policy
        self.backend = backend

    @staticmethod
    def audit_id(request: Request) -> str:
        """The request's audit ID, echoed in its response's ``Audit-Id`` header."""
        audit_id = request.headers.get(HEADER) or new_uid()
        line = b"Audit-Id: " + audit_id.encode("latin-1", "replace") + b"\r\n"
        request.extra_headers = line if request.extra_headers is None else request.extra_headers + line
        return audit_id

    async def serve(self, request: Request, info: RequestInfo, user: User, audit_id: str,
                    call: Callable[[AuditEvent | None], Awaitable[AnyResponse]]) -> AnyResponse:
        config = self.policy.evaluate(user, info)
        if config.level == NONE:
            return await call(None)
        ev = self.new_event(request, info, user, audit_id, config)
        self.emit(ev, REQUEST_RECEIVED)
        streaming = long_running(info)
        try:
            response = await call(ev)
        except errors.StatusError as e:
            status = e.status()
            ev.log_status(status)
            ev.log_response_object(status)  # the Status is the response (ErrorNegotiated logs it)
            self._complete(ev, streaming)
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            self._complete(ev, streaming)  # the client left: what was answered so far is the answer
            raise
        except Exception as e:
            ev.response_status = {"metadata": {}, "status": "Failure",
                                  "message": f"APIServer panic'd: {type(e).__name__}: {e}",
                                  "reason": "InternalError", "code": 500}
            self.emit(ev, PANIC)
            raise
        self._log_response(ev, response)
        self._complete(ev, streaming)
        return response

    def new_event(self, request: Request, info: RequestInfo, user: User, audit_id: str, config: Any) -> AuditEvent:
        uri = request.raw_path + ("?" + request.query_string if request.query_string else "")
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        h = request.headers
        ips = source_ips(h.get("X-Forwarded-For"), h.get("X-Real-Ip"), peer[0] if peer else None)
        ev = AuditEvent(config, audit_id, uri, info, user, ips, h.get("User-Agent", ""))
        if info.is_resource_request and info.verb in _WRITE_VERBS and request.body.strip():
            self._log_request(ev, request, info)
        return ev

    @staticmethod
    def _log_request(ev: AuditEvent, request: Request, info: RequestInfo) -> None:
        try:
            obj = read_body(request.body, request.headers.get("Content-Type", "application/json"), words=False)
        except errors.StatusError:
            return  # the handler refuses it; the event records that answer
        if info.verb == "patch":  # LogRequestPatch: the patch itself, naming nothing
            if RANK[ev.level] >= RANK[REQUEST]:
                ev.request_object = obj
            return
        ev.log_request_object(obj)

    @staticmethod
    def _log_response(ev: AuditEvent, response: AnyResponse) -> None:
        if not ev.started:  # a started response keeps the code it started with (an exec's 101)
            ev.set_code(response.status)
        if not isinstance(response, Response) or not response.body:
            return
        body = response.body
        if ev.level == REQUEST_RESPONSE and b"json" in (_content_type(response) or b""):
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                return
            ev.log_response_object(obj)
            if isinstance(obj, dict) and obj.get("kind") == "Status":
                ev.log_status(obj)
        elif body.startswith(_STATUS_PREFIX):
            ev.log_status(orjson.loads(body))

    def on_response_start(self, request: Request, ev: AuditEvent) -> None:
        """ResponseStarted when a long-running request's response head goes out (a watch's stream, an
        exec's 101), after any gate's own callback: installed by the server once the gates have set theirs."""
        before = request.on_stream_start

        def started() -> None:
            if before is not None:
                before()
            if not ev.started:
                ev.started = True
                ev.set_code(request.stream_status)
                self.emit(ev, RESPONSE_STARTED)

        request.on_stream_start = started

    def _complete(self, ev: AuditEvent, streaming: bool) -> None:
        if ev.response_status is None:
            ev.response_status = {"metadata": {}, "status": "Success", "message": "Connection closed early",
                                  "code": 200}
        if streaming and not ev.started:
            ev.started = True
            self.emit(ev, RESPONSE_STARTED)
        self.emit(ev, RESPONSE_COMPLETE)

    def emit(self, ev: AuditEvent, stage: str) -> None:
        if stage not in ev.omit_stages:
            self.backend.process(ev.encode(stage, time.time()))

    def start(self) -> None:
        self.backend.start()

    def stop(self) -> None:
        """Write every event recorded so far, then close the log."""
        self.backend.stop()


def _content_type(response: Response) -> bytes | None:
    ctype = response.content_type
    if response.headers and "Content-Type" in response.headers:
        ctype = response.headers["Content-Type"]
    return ctype.encode() if ctype else None
