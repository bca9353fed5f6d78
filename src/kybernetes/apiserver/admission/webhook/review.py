"""AdmissionReview v1: the request as Kubernetes fills it, and the response checked as Kubernetes does.

``k8s.io/apiserver/pkg/admission/plugin/webhook/request/admissionreview.go``: the request names
the resource and kind the webhook is called for (the matched equivalent under ``matchPolicy:
Equivalent``) and, as ``requestKind``/``requestResource``/``requestSubResource``, those of the
request itself; ``object``/``oldObject`` are null where the operation has none; ``dryRun`` is
always present; ``options`` are the operation's options (``CreateOptions``, ``UpdateOptions``,
``DeleteOptions``); a request for a Namespace carries its own name as ``namespace`` (since
Kubernetes 1.20, on create too). Fields are in Go's order. :func:`verify_response` is
``VerifyAdmissionResponse`` with its wording.
"""

from __future__ import annotations

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
        if attrs.field_manager:
            out["fieldManager"] = attrs.field_manager
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
    namespace = attrs.namespace
    if not namespace and attrs.group == "" and attrs.resource == "namespaces":
        namespace = attrs.name  # a Namespace's own name, on create too (kubernetes/kubernetes#95012)
    if namespace:
        req["namespace"] = namespace
    req["operation"] = attrs.operation
    req["userInfo"] = user_info(attrs.user)
    req["object"] = obj
    req["oldObject"] = old
    req["dryRun"] = attrs.dry_run
    req["options"] = operation_options(attrs)
    return req


def review_version(hook_versions: list[Any]) -> str:
    """The AdmissionReview version to send (``CreateAdmissionObjects``): the first of the webhook's
    ``admissionReviewVersions`` this server speaks (v1, v1beta1); empty if none."""
    for version in hook_versions:
        if version in ("v1", "v1beta1"):
            return str(version)
    return ""


def admission_review(request: dict[str, Any], version: str = "v1") -> dict[str, Any]:
    """The AdmissionReview of ``version`` carrying ``request`` (v1 and v1beta1 requests have the same fields)."""
    return {"kind": "AdmissionReview", "apiVersion": f"admission.k8s.io/{version}", "request": request}


class InvalidResponse(Exception):
    """The webhook's answer is not a valid AdmissionReview response (message: Kubernetes' words)."""


@dataclass
class Response:
    allowed: bool
    result: dict[str, Any] | None = None
    patch: str = ""
    """The JSON patch as sent (base64); decoded by the mutating dispatcher."""
    patch_type: str = ""
    audit_annotations: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _v1_patch(response: dict[str, Any], mutating: bool) -> tuple[str, str]:
    raw, patch_type = str(response.get("patch") or ""), response.get("patchType")
    if not mutating:
        if raw:
            raise InvalidResponse("validating webhook may not return response.patch")
        if patch_type is not None:
            raise InvalidResponse("validating webhook may not return response.patchType")
        return "", ""
    if raw and patch_type is None:
        raise InvalidResponse("webhook returned response.patch but not response.patchType")
    if not raw and patch_type is not None:
        raise InvalidResponse("webhook returned response.patchType but not response.patch")
    if patch_type is not None and not patch_type:
        raise InvalidResponse('webhook returned invalid response.patchType of ""')
    return raw, str(patch_type or "")


def _gvk_string(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind}"


def verify_response(uid: str, mutating: bool, review: Any, version: str = "v1") -> Response:
    """``VerifyAdmissionResponse``: for v1 the uid, the kind and the patch fields are checked; v1beta1
    answers are taken as they come (a patch is a JSON patch), as Kubernetes does."""
    response = review.get("response") if isinstance(review, dict) else None
    if not isinstance(response, dict):
        raise InvalidResponse("webhook response was absent")
    if version == "v1":
        if response.get("uid") != uid:
            raise InvalidResponse(f'expected response.uid="{uid}", got "{response.get("uid") or ""}"')
        got = _gvk_string(str(review.get("apiVersion") or ""), str(review.get("kind") or ""))
        if got != f"{API_VERSION}, Kind=AdmissionReview":
            raise InvalidResponse(f"expected webhook response of {API_VERSION}, Kind=AdmissionReview, got {got}")
        patch, patch_type = _v1_patch(response, mutating)
    else:
        patch = str(response.get("patch") or "") if mutating else ""
        patch_type = "JSONPatch" if patch else ""
    annotations, warnings = response.get("auditAnnotations"), response.get("warnings")
    return Response(
        response.get("allowed") is True, response.get("status") if isinstance(response.get("status"), dict) else None,
        patch, patch_type,
        {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {},
        [str(w) for w in warnings] if isinstance(warnings, list) else [])
