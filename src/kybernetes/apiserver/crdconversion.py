"""Custom resources converted by a conversion webhook (a CRD's ``spec.conversion.strategy: Webhook``).

apiextensions-apiserver's ``pkg/apiserver/conversion/webhook_converter.go``:

* the objects not yet in the desired apiVersion go to the webhook in one ``ConversionReview``
  (the first of the CRD's ``conversionReviewVersions`` this server speaks: ``v1`` or ``v1beta1``)
  with a fresh ``request.uid``, the ``desiredAPIVersion`` and the ``objects``; objects already in
  that version are not sent, and nothing is called when none is left;
* the answer is checked as Kubernetes checks it: a ``v1`` review's apiVersion and kind, a
  ``response``, the same ``uid`` (``v1`` only), ``result.status: Success`` (else its message),
  as many ``convertedObjects`` as objects sent, each in the desired group/version with the same
  kind, name, namespace and uid; its metadata is the original's, except labels and annotations,
  which the webhook may change (validated when it did);
* every failure is the request's own ``500`` Status, worded as Kubernetes words it
  (``conversion webhook for <group>/<version>, Kind=<kind> failed: ...``); the server and other
  requests go on.

The HTTPS call is the admission webhooks' client (:class:`~kybernetes.apiserver.admission.webhook.
client.WebhookClient`: ``url`` or a ``service`` resolved to a ready endpoint, ``caBundle``), with
the 30 s timeout kube-apiserver gives conversion webhooks.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import orjson

from kybernetes import errors
from kybernetes.api import validation as v
from kybernetes.api.obj import Obj
from kybernetes.api.validation import Path
from kybernetes.apiserver.admission.webhook.client import CallError, WebhookClient
from kybernetes.apiserver.registry.crdconversion import REVIEW_VERSIONS

TIMEOUT_SECONDS = 30
_REVIEW_GROUP = "apiextensions.k8s.io"


class ConversionFailed(errors.StatusError):
    """A conversion that could not be done: a 500 with the error's text alone, no reason (what
    kube-apiserver answers for an error that is not a Status)."""

    code = 500
    reason = ""


class InvalidResponse(Exception):
    """The webhook answered, but not with what was asked (the text after ``failed: ``)."""


def gvk(api_version: str, kind: str) -> str:
    """Go's ``GroupVersionKind.String()``."""
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind}"


class WebhookConverter:
    """Converts one CRD's objects through its conversion webhook."""

    def __init__(self, crd: Obj, client: WebhookClient) -> None:
        conv = (crd.get("spec") or {}).get("conversion") or {}
        webhook = conv.get("webhook") or {}
        self.client_config: dict[str, Any] = dict(webhook.get("clientConfig") or {})
        self.review_versions = [str(x) for x in webhook.get("conversionReviewVersions") or []]
        self.client = client

    async def convert(self, objs: list[Obj], desired: str, *, as_list: str = "") -> list[Obj]:
        """``objs`` in apiVersion ``desired`` (new objects; the inputs are left as they are).

        ``as_list`` is the list kind when ``objs`` are a list's items (one review for all of
        them, and Kubernetes' wording for lists); empty for a single object."""
        todo = [i for i, o in enumerate(objs) if o.get("apiVersion") != desired]
        if not todo:
            return list(objs)
        first = objs[todo[0]]
        what = gvk(str(first.get("apiVersion") or ""), as_list or str(first.get("kind") or ""))
        sent = [objs[i] for i in todo]
        uid = str(uuid.uuid4())
        version = next((x for x in self.review_versions if x in REVIEW_VERSIONS), None)
        if version is None:
            raise ConversionFailed("no supported conversion review versions")
        try:
            answer = await self.client.post(self.client_config, TIMEOUT_SECONDS,
                                            review_request(version, uid, sent, desired))
            converted = converted_objects(version, uid, answer)
        except CallError as e:
            raise ConversionFailed(f"conversion webhook for {what} failed: {e.detail}") from None
        except InvalidResponse as e:
            raise ConversionFailed(f"conversion webhook for {what} failed: {e}") from None
        if len(converted) != len(sent):
            raise ConversionFailed(f"conversion webhook for {what} returned {len(converted)} objects, "
                                   f"expected {len(sent)}")
        out = list(objs)
        for n, (i, got) in enumerate(zip(todo, converted, strict=True)):
            out[i] = checked_object(objs[i], got, desired, what, n if as_list else None)
        return out


def review_request(version: str, uid: str, objects: list[Obj], desired: str) -> Obj:
    """A ``ConversionReview`` request of ``apiextensions.k8s.io/<version>``."""
    return {"kind": "ConversionReview", "apiVersion": f"{_REVIEW_GROUP}/{version}",
            "request": {"uid": uid, "desiredAPIVersion": desired, "objects": objects}}


def converted_objects(version: str, uid: str, answer: Any) -> list[Any]:
    """``getConvertedObjectsFromResponse``: the converted objects of a well-formed, successful
    answer; :class:`InvalidResponse` otherwise."""
    if not isinstance(answer, dict) or not answer.get("kind"):
        raise InvalidResponse(f"Object 'Kind' is missing in '{orjson.dumps(answer).decode()}'")
    if version == "v1":
        got = gvk(str(answer.get("apiVersion") or ""), str(answer.get("kind")))
        want = gvk(f"{_REVIEW_GROUP}/v1", "ConversionReview")
        if got != want:
            raise InvalidResponse(f"expected webhook response of {want}, got {got}")
    response = answer.get("response")
    if not isinstance(response, dict):
        raise InvalidResponse("no response provided")
    if version == "v1" and response.get("uid") != uid:
        raise InvalidResponse(f'expected response.uid="{uid}", got "{response.get("uid") or ""}"')
    result = response.get("result")
    result = result if isinstance(result, dict) else {}
    if result.get("status") != "Success":
        if result.get("message"):
            raise InvalidResponse(str(result["message"]))
        raise InvalidResponse(f"response.result.status was '{result.get('status') or ''}', not 'Success'")
    objs = response.get("convertedObjects")
    return objs if isinstance(objs, list) else []


def checked_object(original: Obj, converted: Any, desired: str, what: str, index: int | None) -> Obj:
    """One converted object, checked against the one sent (``index`` None: a single object's
    wording), with the original's metadata but the webhook's labels and annotations."""
    prefix = f"conversion webhook for {what} returned invalid"
    # A list's messages name the index Kubernetes has already counted one up.
    at = f" converted object at index {index + 1}" if index is not None else " object at index 0"
    if not isinstance(converted, dict):
        raise ConversionFailed(f"{prefix}{at}: the object is not a JSON object")
    group_version = str(converted.get("apiVersion") or "")
    if group_version != desired:
        raise ConversionFailed(f"{prefix}{at}: invalid groupVersion (expected {desired}, received {group_version})")
    if converted.get("kind") != original.get("kind"):
        raise ConversionFailed(f"{prefix}{at}: invalid kind (expected {original.get('kind')}, received "
                               f"{converted.get('kind')})")
    problem = _identity_changed(original, converted)
    if problem:
        raise ConversionFailed(f"{prefix}{at if index is not None else ' object'}: {problem}")
    try:
        return restore_metadata(original, converted)
    except InvalidResponse as e:
        where = f" in object at index {index + 1}" if index is not None else ""
        raise ConversionFailed(f"conversion webhook for {what} returned invalid metadata{where}: {e}") from None


def _identity_changed(original: Obj, converted: Obj) -> str:
    """``validateConvertedObject``: kind, name, namespace and uid must stay."""
    before, after = original.get("metadata") or {}, converted.get("metadata")
    after = after if isinstance(after, dict) else {}
    if original.get("kind") != converted.get("kind"):
        return f"must have the same kind: {original.get('kind')} != {converted.get('kind')}"
    for key, label in (("name", "name"), ("namespace", "namespace"), ("uid", "UID")):
        if (before.get(key) or "") != (after.get(key) or ""):
            return f"must have the same {label}: {before.get(key) or ''} != {after.get(key) or ''}"
    return ""


def restore_metadata(original: Obj, converted: Obj) -> Obj:
    """``restoreObjectMeta``: ``converted`` with ``original``'s metadata and its own labels and
    annotations (validated when they differ from the original's)."""
    theirs = converted.get("metadata")
    if "metadata" not in converted:
        raise InvalidResponse("missing metadata in converted object")
    if not isinstance(theirs, dict):
        raise InvalidResponse(f"invalid metadata of type {_go_type(theirs)} in converted object")
    meta = copy.deepcopy(original.get("metadata") or {})
    for fld in ("labels", "annotations"):
        value = theirs.get(fld)
        if value is None:
            meta.pop(fld, None)
            continue
        if not isinstance(value, dict):
            raise InvalidResponse(f"invalid metadata.{fld} of type {_go_type(value)} in converted object")
        for k, item in value.items():
            if not isinstance(item, str):
                raise InvalidResponse(f"metadata.{fld}[{k}] must be a string, but is {_go_type(item)} in "
                                      "converted object")
        if value != (meta.get(fld) or {}):
            errs = (v.validate_labels(value, Path("metadata", "labels")) if fld == "labels"
                    else v.validate_annotations(value, Path("metadata", "annotation")))
            if errs:
                raise InvalidResponse(_aggregate([str(e) for e in errs]))
        meta[fld] = value
    return {**converted, "metadata": meta}


def _aggregate(messages: list[str]) -> str:
    """Go's ``ErrorList.ToAggregate().Error()``."""
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


def _go_type(value: Any) -> str:
    """The Go type ``encoding/json`` decodes ``value`` to, as ``%T`` prints it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return "<nil>"


__all__ = ["REVIEW_VERSIONS", "ConversionFailed", "WebhookConverter", "checked_object", "converted_objects",
           "gvk", "restore_metadata", "review_request"]
