"""The availability of remote APIServices: kube-aggregator's ``AvailableConditionController``.

For an APIService with a ``service``, the ``Available`` condition is, in this order of checks
(reasons and messages as kube-aggregator 1.32 words them):

* ``False`` ``ServiceNotFound``: ``service/<name> in "<namespace>" is not present``;
* for a ClusterIP Service: ``False`` ``ServicePortError`` when it has no such port, ``False``
  ``EndpointsNotFound`` when it has no EndpointSlice, ``False`` ``MissingEndpoints`` when no
  slice has a ready endpoint and the Service port's name;
* ``False`` ``FailedDiscoveryCheck`` with the probe's error when the backend's discovery
  endpoint does not answer 2xx (:meth:`Backend.probe`);
* else ``True`` ``Passed``, ``all checks passed``.

The status is written (through ``/status``) only when it changed; ``lastTransitionTime`` moves
only when the condition's status does (``SetAPIServiceCondition``). A successful check also
fetches the backend's discovery document for ``/apis`` (:mod:`.discovery`).
"""

from __future__ import annotations

import contextlib
from typing import Any

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Catalogue
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.apiserver.aggregator.backend import Backend, ProbeError
from kybernetes.apiserver.registry.request import RequestContext
from kybernetes.apiserver.registry.store import Registry
from kybernetes.apiserver.serviceresolver import endpoint_slices, get_service, port_name, ready_endpoints


def _false(reason: str, message: str) -> dict[str, str]:
    return {"type": "Available", "status": "False", "reason": reason, "message": message}


async def check(registry: Registry, catalogue: Catalogue, backend: Backend, apiservice: Obj) -> dict[str, str]:
    """The Available condition (without its time) the APIService has now."""
    svc = (apiservice.get("spec") or {}).get("service") or {}
    namespace, name, port = str(svc.get("namespace") or ""), str(svc.get("name") or ""), int(svc.get("port") or 443)
    where = f'service/{name} in "{namespace}"'
    try:
        service = await get_service(registry, catalogue, namespace, name)
    except errors.NotFound:
        return _false("ServiceNotFound", f"{where} is not present")
    if (service.get("spec") or {}).get("type", "ClusterIP") == "ClusterIP":
        name_of_port = port_name(service, port)
        if name_of_port is None:
            return _false("ServicePortError", f"{where} is not listening on port {port}")
        slices = await endpoint_slices(registry, catalogue, namespace, name)
        if not slices:
            return _false("EndpointsNotFound", f"cannot find endpointslices for {where}")
        if not ready_endpoints(slices, name_of_port):
            return _false("MissingEndpoints",
                          f'endpointslices for {where} have no addresses with port name "{name_of_port}"')
    try:
        await backend.probe(apiservice)
    except ProbeError as e:
        return _false("FailedDiscoveryCheck", str(e))
    return {"type": "Available", "status": "True", "reason": "Passed", "message": "all checks passed"}


def with_condition(apiservice: Obj, cond: dict[str, str]) -> list[dict[str, Any]] | None:
    """The APIService's conditions with ``cond`` set (``SetAPIServiceCondition``), or None if
    nothing would change."""
    conds = list((apiservice.get("status") or {}).get("conditions") or [])
    have = next((c for c in conds if isinstance(c, dict) and c.get("type") == "Available"), None)
    if have is not None and all(have.get(k) == cond[k] for k in ("status", "reason", "message")):
        return None
    same_status = have is not None and have.get("status") == cond["status"] and have.get("lastTransitionTime")
    new = {**cond, "lastTransitionTime": have["lastTransitionTime"] if same_status and have else now_rfc3339()}
    return [c for c in conds if not (isinstance(c, dict) and c.get("type") == "Available")] + [new]


async def write_condition(registry: Registry, catalogue: Catalogue, apiservice: Obj, cond: dict[str, str],
                          ctx: RequestContext) -> None:
    """Write ``cond`` into the APIService's status if it changes it."""
    conds = with_condition(apiservice, cond)
    if conds is None:
        return
    r = catalogue.get("apiregistration.k8s.io", "v1", "apiservices")
    assert r is not None
    with contextlib.suppress(errors.NotFound, errors.Conflict):
        await registry.patch(r, "", apiservice["metadata"]["name"], "merge", {"status": {"conditions": conds}},
                             ctx, subresource="status")
