"""The audit Event's JSON: field order and omitempty of ``audit/v1.Event``, levels, MicroTime stamps."""

from __future__ import annotations

import datetime as dt
import re

import orjson

from kybernetes.apiserver.audit.events import AuditEvent, long_running, source_ips, without_managed_fields
from kybernetes.apiserver.audit.policy import RequestAuditConfig
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import RequestInfo

CREATE_CM = RequestInfo(True, "/api/v1/namespaces/ns/configmaps", "create", "", "v1", "ns", "configmaps")
T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, dt.UTC).timestamp()
MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
OBJ = {"apiVersion": "v1", "kind": "ConfigMap",
       "metadata": {"name": "c", "uid": "u1", "resourceVersion": "7", "managedFields": [{"manager": "m"}]},
       "data": {"k": "v"}}


def event(level: str, managed: bool = False, user: User | None = None) -> AuditEvent:
    return AuditEvent(RequestAuditConfig(level, omit_managed_fields=managed), "id-1",
                      "/api/v1/namespaces/ns/configmaps?fieldManager=kubectl", CREATE_CM,
                      user or User("jane", ("devs",), "uid-9", {"scopes": ["a"]}), ["10.0.0.1", "127.0.0.1"],
                      "kubectl/v1.32", received=T0)


def test_metadata_event_has_every_field_in_go_order_and_no_objects() -> None:
    ev = event("Metadata")
    ev.log_request_object(OBJ)
    ev.annotate("authorization.k8s.io/decision", "allow")
    ev.annotate("authorization.k8s.io/reason", "")
    ev.annotate("authorization.k8s.io/decision", "forbid")  # the first value stays
    ev.set_code(201)
    line = ev.encode("ResponseComplete", T0 + 0.5)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    doc = orjson.loads(line)
    assert list(doc) == ["kind", "apiVersion", "level", "auditID", "stage", "requestURI", "verb", "user", "sourceIPs",
                         "userAgent", "objectRef", "responseStatus", "requestReceivedTimestamp", "stageTimestamp",
                         "annotations"]
    assert doc["kind"] == "Event" and doc["apiVersion"] == "audit.k8s.io/v1"
    assert doc["user"] == {"username": "jane", "uid": "uid-9", "groups": ["devs"], "extra": {"scopes": ["a"]}}
    # The name, uid and resourceVersion come from the request's object; the core group has no apiGroup.
    assert list(doc["objectRef"].items()) == [("resource", "configmaps"), ("namespace", "ns"), ("name", "c"),
                                              ("uid", "u1"), ("apiVersion", "v1"), ("resourceVersion", "7")]
    assert doc["responseStatus"] == {"metadata": {}, "code": 201}
    assert doc["requestReceivedTimestamp"] == "2026-01-02T03:04:05.123456Z"
    assert doc["stageTimestamp"] == "2026-01-02T03:04:05.623456Z"
    assert doc["annotations"] == {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""}
    assert b"\\u0026" not in line and b'"&' not in line
    # RequestReceived is stamped with the time the request arrived.
    assert orjson.loads(ev.encode("RequestReceived", T0 + 9))["stageTimestamp"] == doc["requestReceivedTimestamp"]


def test_request_and_response_objects_by_level() -> None:
    req = event("Request")
    req.log_request_object(OBJ)
    req.log_response_object(OBJ)
    doc = orjson.loads(req.encode("ResponseComplete", T0))
    assert doc["requestObject"] == OBJ and "responseObject" not in doc
    full = event("RequestResponse", managed=True)
    full.log_request_object(OBJ)
    full.log_response_object({"kind": "ConfigMapList", "items": [OBJ]})
    doc = orjson.loads(full.encode("ResponseComplete", T0))
    assert list(doc)[list(doc).index("requestObject") + 1] == "responseObject"
    assert "managedFields" not in doc["requestObject"]["metadata"]
    assert "managedFields" not in doc["responseObject"]["items"][0]["metadata"]
    assert "managedFields" in OBJ["metadata"]  # the objects themselves are not changed


def test_failure_status_and_optional_fields() -> None:
    ev = AuditEvent(RequestAuditConfig("Metadata"), "x", "/healthz", RequestInfo(False, "/healthz", "get"),
                    User(""), [], "", received=T0)
    ev.log_status({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "no",
                   "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403})
    doc = orjson.loads(ev.encode("ResponseComplete", T0))
    assert doc["user"] == {}
    assert "objectRef" not in doc and "sourceIPs" not in doc and "userAgent" not in doc and "annotations" not in doc
    assert list(doc["responseStatus"].items()) == [("metadata", {}), ("status", "Failure"), ("message", "no"),
                                                   ("reason", "Forbidden"), ("details", {"kind": "pods"}),
                                                   ("code", 403)]
    assert MICRO.match(doc["stageTimestamp"])
    ev.set_impersonated_user(User("bob", ("g",)))
    assert orjson.loads(ev.encode("ResponseComplete", T0))["impersonatedUser"] == {"username": "bob", "groups": ["g"]}


def test_user_agent_is_truncated_as_kubernetes_does() -> None:
    ev = AuditEvent(RequestAuditConfig("Metadata"), "x", "/", CREATE_CM, User("a"), [], "u" * 2000, received=T0)
    assert ev.user_agent == "u" * 1024 + "...TRUNCATED"


def test_source_ips_and_long_running() -> None:
    assert source_ips("1.1.1.1, 2.2.2.2", "3.3.3.3", "127.0.0.1") == ["1.1.1.1", "2.2.2.2", "3.3.3.3", "127.0.0.1"]
    assert source_ips(None, None, "127.0.0.1") == ["127.0.0.1"]
    assert source_ips("127.0.0.1", None, "127.0.0.1") == ["127.0.0.1"]
    watch = RequestInfo(True, "/api/v1/pods", "watch", "", "v1", "", "pods")
    logs = RequestInfo(True, "/api/v1/namespaces/n/pods/p/log", "get", "", "v1", "n", "pods", "log", "p")
    status = RequestInfo(True, "/api/v1/namespaces/n/pods/p/status", "get", "", "v1", "n", "pods", "status", "p")
    assert long_running(watch) and long_running(logs) and not long_running(status)
    assert not long_running(CREATE_CM)


def test_without_managed_fields_handles_tables() -> None:
    table = {"kind": "Table", "rows": [{"cells": [], "object": OBJ}]}
    assert "managedFields" not in without_managed_fields(table)["rows"][0]["object"]["metadata"]
