"""AdmissionReview v1: the request as Kubernetes fills it, and the response checked as Kubernetes does.

``k8s.io/apiserver/pkg/admission/plugin/webhook/request/admissionreview.go``: the request names
the resource and kind the webhook is called for (the matched equivalent under ``matchPolicy:
Equivalent``) and, as ``requestKind``/``requestResource``/``requestSubResource``, those of the
request itself; ``object``/``oldObject`` are null where the operation has none; ``dryRun`` is
always present; ``options`` are the operation's options (``CreateOptions``, ``UpdateOptions``,
``DeleteOptions``). Fields are in Go's order. :func:`verify_response` is
``VerifyAdmissionResponse`` with its wording.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.apiserver.admission.chain import CREATE, DELETE, UPDATE, Attributes
from kybernetes.apiserver.registry.request import User

API_VERSION = "admission.k8s.io/v1"
_META = "meta.k8s.io/v1"


@dataclass(frozen=True)
class Target:
    """What a webhook is called for: its (group, version, plural) and kind."""

    group: str
    version: str
    resource: str
    kind: str


def _gvk(group: str, version: str, kind: str) -> dict[str, str]:
    return {"group": group, "version": version, "kind": kind}


def _gvr(group: str, version: str, resource: str) -> dict[str, str]:
    return {"group": group, "version": version, "resource": resource}


def user_info(user: User) -> dict[str, Any]:
    """``authenticationv1.UserInfo`` (username, uid, groups, extra; empty ones omitted)."""
    out: dict[str, Any] = {"username": user.name}
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra.items()}
    return out


def operation_options(attrs: Attributes) -> dict[str, Any] | None:
    """The operation's options object, as the API server received them."""
    dry_run = ["All"] if attrs.dry_run else None
    if attrs.operation in (CREATE, UPDATE):
        kind = "CreateOptions" if attrs.operation == CREATE else "UpdateOptions"
        out: dict[str, Any] = {"kind": kind, "apiVersion": _META}
        if dry_run:
            out["dryRun"] = dry_run
        return out
    if attrs.operation == DELETE:
        out = {"kind": "DeleteOptions", "apiVersion": _META}
        opts = attrs.options
        grace = getattr(opts, "grace_period_seconds", None)
        if grace is not None:
            out["gracePeriodSeconds"] = grace
        if getattr(opts, "preconditions", None):
            out["preconditions"] = dict(opts.preconditions)
        if getattr(opts, "propagation_policy", None):
            out["propagationPolicy"] = opts.propagation_policy
        if dry_run:
            out["dryRun"] = dry_run
        return out
    return attrs.options if isinstance(attrs.options, dict) else None


def admission_request(uid: str, attrs: Attributes, target: Target, obj: Obj | None,
                      old: Obj | None) -> dict[str, Any]:
    """``CreateV1AdmissionReview``'s request: ``obj``/``old`` already in ``target``'s version."""
    req: dict[str, Any] = {
        "uid": uid,
        "kind": _gvk(target.group, target.version, target.kind),
        "resource": _gvr(target.group, target.version, target.resource),
    }
    if attrs.subresource:
        req["subResource"] = attrs.subresource
    req["requestKind"] = _gvk(attrs.group, attrs.version, attrs.kind)
    req["requestResource"] = _gvr(attrs.group, attrs.version, attrs.resource)
    if attrs.subresource:
        req["requestSubResource"] = attrs.subresource
    if attrs.name:
        req["name"] = attrs.name
    if attrs.namespace:
        req["namespace"] = attrs.namespace
    req["operation"] = attrs.operation
    req["userInfo"] = user_info(attrs.user)
    req["object"] = obj
    req["oldObject"] = old
    req["dryRun"] = attrs.dry_run
    req["options"] = operation_options(attrs)
    return req


def admission_review(request: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "AdmissionReview", "apiVersion": API_VERSION, "request": request}


class InvalidResponse(Exception):
    """The webhook's answer is not a valid AdmissionReview response (message: Kubernetes' words)."""


@dataclass
class Response:
    allowed: bool
    result: dict[str, Any] | None = None
    patch: list[Any] | None = None
    audit_annotations: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _patch(response: dict[str, Any], mutating: bool) -> list[Any] | None:
    raw, patch_type = response.get("patch"), response.get("patchType")
    if not raw:
        if patch_type:
            raise InvalidResponse("webhook returned response.patchType but not response.patch")
        return None
    if not mutating:
        raise InvalidResponse("validating webhook may not return response.patch")
    if not patch_type:
        raise InvalidResponse("webhook returned response.patch but not response.patchType")
    if patch_type != "JSONPatch":
        raise InvalidResponse(f'webhook returned invalid response.patchType of "{patch_type}"')
    try:
        import orjson

        ops = orjson.loads(base64.b64decode(str(raw), validate=True))
    except (binascii.Error, ValueError) as e:
        raise InvalidResponse(f"webhook returned an undecodable response.patch: {e}") from None
    if not isinstance(ops, list):
        raise InvalidResponse("webhook returned a response.patch that is not a JSON patch")
    return ops


def verify_response(uid: str, mutating: bool, review: Any) -> Response:
    """``VerifyAdmissionResponse`` for AdmissionReview v1."""
    if not isinstance(review, dict):
        raise InvalidResponse("expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got "
                              "/, Kind=")
    api_version, kind = str(review.get("apiVersion") or ""), str(review.get("kind") or "")
    if api_version != API_VERSION or kind != "AdmissionReview":
        shown = api_version if "/" in api_version else f"/{api_version}"
        raise InvalidResponse(f"expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got "
                              f"{shown}, Kind={kind}")
    response = review.get("response")
    if not isinstance(response, dict):
        raise InvalidResponse("webhook response was absent")
    if response.get("uid") != uid:
        raise InvalidResponse(f'expected response.uid="{uid}", got "{response.get("uid") or ""}"')
    allowed = response.get("allowed") is True
    result = response.get("status") if isinstance(response.get("status"), dict) else None
    annotations = response.get("auditAnnotations")
    warnings = response.get("warnings")
    return Response(
        allowed, result, _patch(response, mutating),
        {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
        [str(w) for w in warnings] if isinstance(warnings, list) else [])
