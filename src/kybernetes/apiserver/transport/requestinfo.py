"""What a request asks for, in the terms authorization, API Priority and Fairness and audit use.

Kubernetes' ``RequestInfoFactory`` (``k8s.io/apiserver/pkg/endpoints/request/requestinfo.go``),
computed once per request in the server and shared by every step after authentication. The rules:

- A path under ``/api/v1/...`` or ``/apis/GROUP/VERSION/...`` that names at least a resource is a
  *resource request*; anything else (``/healthz``, ``/apis``, ``/api/v1``, ``/openapi/v2``) is a
  non-resource request whose verb is the lower-cased HTTP method.
- The verb of a resource request comes from the method (POST create, GET/HEAD get, PUT update,
  PATCH patch, DELETE delete); the legacy ``/watch/`` path segment makes it ``watch``. A get
  without a name is a ``list``, or a ``watch`` with ``?watch=true``; a delete without a name is a
  ``deletecollection``.
- ``namespaces/NS/...`` sets the namespace; a namespace is in itself (``/api/v1/namespaces/NS``
  and its ``status`` and ``finalize`` subresources have namespace NS, resource ``namespaces``).
- A list or watch with ``fieldSelector=metadata.name=X`` names X (so a role limited by
  ``resourceNames`` may watch that one object, as ``kubectl get pod X -w`` does).
- A list, watch or deletecollection carries its raw ``fieldSelector`` (Kubernetes' field
  selector attributes), for the Node authorizer's ``spec.nodeName=N`` pod lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kybernetes import errors
from kybernetes.api.field_selectors import parse_field_selector
from kybernetes.apiserver.transport.requests import ResourcePath, bool_param

_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(slots=True)
class RequestInfo:
    is_resource_request: bool
    path: str
    verb: str
    api_group: str = ""
    api_version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    field_selector: str = ""
    """The request's raw ``fieldSelector`` on a list, watch or deletecollection, else empty."""


def request_info(method: str, path: str, rp: ResourcePath | None, query: Mapping[str, str] | None = None) -> RequestInfo:
    """The RequestInfo of a request whose resource path (if any) is ``rp`` (:func:`parse_resource_path`)."""
    if rp is None:
        return RequestInfo(False, path, method.lower())
    verb = "watch" if rp.watch else _VERBS.get(method, "")
    namespace = rp.namespace
    if not namespace and rp.plural == "namespaces" and rp.name:
        namespace = rp.name
    name = rp.name
    if not name and verb == "get":
        verb = "watch" if query is not None and bool_param(query.get("watch")) else "list"
    elif not name and verb == "delete":
        verb = "deletecollection"
    selector = ""
    if verb in ("list", "watch", "deletecollection") and query is not None:
        selector = query.get("fieldSelector") or ""
    if not name and verb in ("list", "watch") and selector:
        try:
            name = parse_field_selector(selector).requires_exact_match("metadata.name") or ""
        except errors.StatusError:
            pass  # the list itself answers the bad selector
    return RequestInfo(True, path, verb, rp.group, rp.version, namespace, rp.plural, rp.subresource, name,
                       selector)
