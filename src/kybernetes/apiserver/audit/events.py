"""The audit.k8s.io/v1 ``Event``: what kube-apiserver records about one request, stage by stage.

Kubernetes' ``apis/audit/v1/types.go`` (the fields and their JSON order) and ``audit/request.go``
(what fills them). One :class:`AuditEvent` lives for the whole request; each stage is
:meth:`AuditEvent.encode`-d as it happens (one JSON line: the event as it stands, with that stage
and its ``stageTimestamp``). Guarantees:

- The JSON is the Go struct's: ``kind``, ``apiVersion``, ``level``, ``auditID``, ``stage``,
  ``requestURI``, ``verb``, ``user``, ``impersonatedUser``, ``sourceIPs``, ``userAgent``,
  ``objectRef``, ``responseStatus``, ``requestObject``, ``responseObject``,
  ``requestReceivedTimestamp``, ``stageTimestamp``, ``annotations``; empty optional fields are left
  out (``omitempty``); timestamps are ``MicroTime`` (UTC, microseconds).
- ``requestObject`` only at level Request and above, ``responseObject`` only at RequestResponse
  (both without ``metadata.managedFields`` when the policy says ``omitManagedFields``);
  ``objectRef`` takes the name, namespace, uid and resourceVersion of the request's object when the
  URL does not say them (a create), at every level from Metadata.
- An annotation once set keeps its first value (``AddAuditAnnotation``).
"""

from __future__ import annotations

import time
from typing import Any

from kybernetes.api import gojson
from kybernetes.api.timeutil import format_micro_epoch
from kybernetes.apiserver.audit.policy import (
    RANK,
    REQUEST,
    REQUEST_RECEIVED,
    REQUEST_RESPONSE,
    RequestAuditConfig,
)
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import RequestInfo

MAX_USER_AGENT = 1024
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})
"""kube-apiserver's long-running check: these get a ResponseStarted stage when their response starts."""
_REF_ORDER = ("resource", "namespace", "name", "uid", "apiGroup", "apiVersion", "resourceVersion", "subresource")
"""``ObjectReference``'s fields in the Go struct's order."""


def long_running(info: RequestInfo) -> bool:
    return info.verb in LONG_RUNNING_VERBS or (info.is_resource_request and info.subresource in
                                               LONG_RUNNING_SUBRESOURCES)


def user_info(user: User) -> dict[str, Any]:
    """``authentication/v1.UserInfo`` with its ``omitempty`` fields."""
    out: dict[str, Any] = {"username": user.name} if user.name else {}
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


def source_ips(forwarded_for: str | None, real_ip: str | None, remote: str | None) -> list[str]:
    """``utilnet.SourceIPs``: X-Forwarded-For's addresses, then X-Real-Ip, then the peer, each once."""
    ips: list[str] = [a.strip() for a in forwarded_for.split(",") if a.strip()] if forwarded_for else []
    if real_ip and real_ip.strip() not in ips:
        ips.append(real_ip.strip())
    if remote and remote not in ips:
        ips.append(remote)
    return ips


def without_managed_fields(obj: Any) -> Any:
    """A copy of an object, a list or a Table with no ``metadata.managedFields`` (the input is not changed)."""
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    if isinstance(out.get("items"), list):
        out["items"] = [without_managed_fields(i) for i in out["items"]]
    if out.get("kind") == "Table" and isinstance(out.get("rows"), list):
        out["rows"] = [{**row, "object": without_managed_fields(row.get("object"))} if isinstance(row, dict) else row
                       for row in out["rows"]]
    return out


def _object_ref(**fields: str) -> dict[str, str]:
    return {k: v for k in _REF_ORDER if (v := fields.get(k, ""))}


class AuditEvent:
    """One request's audit event, filled in as the request goes (``auditinternal.Event``)."""

    __slots__ = ("annotations", "audit_id", "impersonated_user", "level", "object_ref", "omit_managed_fields",
                 "omit_stages", "received", "request_object", "request_uri", "response_object", "response_status",
                 "source_ips", "started", "user", "user_agent", "verb")

    def __init__(self, config: RequestAuditConfig, audit_id: str, request_uri: str, info: RequestInfo,
                 user: User, source_ips: list[str], user_agent: str, received: float | None = None) -> None:
        self.level = config.level
        self.omit_stages = config.omit_stages
        self.omit_managed_fields = config.omit_managed_fields
        self.audit_id = audit_id
        self.request_uri = request_uri
        self.verb = info.verb
        self.user = user_info(user)
        self.impersonated_user: dict[str, Any] | None = None
        self.source_ips = source_ips
        self.user_agent = user_agent if len(user_agent) <= MAX_USER_AGENT else \
            user_agent[:MAX_USER_AGENT] + "...TRUNCATED"
        self.object_ref: dict[str, str] | None = None
        """In the Go struct's order, without empty fields (``omitempty``)."""
        if info.is_resource_request:
            self.object_ref = _object_ref(resource=info.resource, namespace=info.namespace, name=info.name,
                                          apiGroup=info.api_group, apiVersion=info.api_version,
                                          subresource=info.subresource)
        self.response_status: dict[str, Any] | None = None
        self.request_object: Any = None
        self.response_object: Any = None
        self.received = time.time() if received is None else received
        self.annotations: dict[str, str] = {}
        self.started = False
        """Whether ResponseStarted has been recorded."""

    def annotate(self, key: str, value: str) -> None:
        """``AddAuditAnnotation``: the first value set for a key stays."""
        self.annotations.setdefault(key, value)

    def set_impersonated_user(self, user: User) -> None:
        """The user a request acts as (``user`` stays the one who authenticated)."""
        self.impersonated_user = user_info(user)

    def log_request_object(self, obj: Any) -> None:
        """``LogRequestObject``: the object's identity into ``objectRef``; the object itself at Request+."""
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if self.object_ref is not None and isinstance(meta, dict):
            known = {k: v for k in ("namespace", "name", "uid", "resourceVersion")
                     if not self.object_ref.get(k) and isinstance(v := meta.get(k), str)}
            if known:
                self.object_ref = _object_ref(**self.object_ref, **known)
        if RANK[self.level] >= RANK[REQUEST]:
            self.request_object = without_managed_fields(obj) if self.omit_managed_fields else obj

    def log_response_object(self, obj: Any) -> None:
        """``LogResponseObject`` at RequestResponse (a Status's fields go to ``responseStatus`` at any level)."""
        if self.level == REQUEST_RESPONSE:
            self.response_object = without_managed_fields(obj) if self.omit_managed_fields else obj

    def log_status(self, status: dict[str, Any]) -> None:
        """A ``Status`` the request was answered with: its bounded fields become ``responseStatus``."""
        out: dict[str, Any] = {"metadata": {}}
        for key in ("status", "message", "reason", "details"):
            if status.get(key):
                out[key] = status[key]
        out["code"] = status.get("code", 0)
        self.response_status = out

    def set_code(self, code: int) -> None:
        if self.response_status is None:
            self.response_status = {"metadata": {}, "code": code}
        else:
            self.response_status["code"] = code

    def encode(self, stage: str, now: float | None = None) -> bytes:
        """The event at ``stage`` as one JSON line, as the log backend writes it."""
        ev: dict[str, Any] = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": self.level,
                              "auditID": self.audit_id, "stage": stage, "requestURI": self.request_uri,
                              "verb": self.verb, "user": self.user}
        if self.impersonated_user is not None:
            ev["impersonatedUser"] = self.impersonated_user
        if self.source_ips:
            ev["sourceIPs"] = self.source_ips
        if self.user_agent:
            ev["userAgent"] = self.user_agent
        if self.object_ref is not None:
            ev["objectRef"] = self.object_ref
        if self.response_status is not None:
            ev["responseStatus"] = self.response_status
        if self.request_object is not None:
            ev["requestObject"] = self.request_object
        if self.response_object is not None:
            ev["responseObject"] = self.response_object
        received = format_micro_epoch(self.received)
        ev["requestReceivedTimestamp"] = received
        ev["stageTimestamp"] = received if stage == REQUEST_RECEIVED or now is None else format_micro_epoch(now)
        if self.annotations:
            ev["annotations"] = self.annotations
        return gojson.dumps(ev)
