"""The API server reaching a Service itself: a ready endpoint of one of its ports.

kube-apiserver's endpoint-based ``ServiceResolver`` (``--enable-aggregator-routing``, and what
webhooks use): the Service must exist and not be ExternalName, the requested Service port must
exist, and the answer is a ready address of the Service's EndpointSlices together with the slice
port of the same name. Admission webhooks and the aggregation layer both resolve through here, so
they work on any node without cluster networking. Reads come from the watch cache.
"""

from __future__ import annotations

import random

from kybernetes import errors
from kybernetes.api.label_selectors import parse_label_selector
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.registry.request import ListOptions
from kybernetes.apiserver.registry.store import Registry

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


async def get_service(registry: Registry, catalogue: Catalogue, namespace: str, name: str) -> Obj:
    """The Service (``errors.NotFound`` if there is none)."""
    services = catalogue.get("", "v1", "services")
    assert services is not None
    return await registry.get(services, namespace, name, "0")


def port_name(service: Obj, port: int) -> str | None:
    """The name of the Service's port ``port`` ("" when unnamed), None if it has no such port."""
    for p in (service.get("spec") or {}).get("ports") or []:
        if p.get("port") == port:
            return str(p.get("name") or "")
    return None


async def endpoint_slices(registry: Registry, catalogue: Catalogue, namespace: str, name: str) -> list[Obj]:
    """The Service's EndpointSlices (by their ``kubernetes.io/service-name`` label)."""
    slices = catalogue.get("discovery.k8s.io", "v1", "endpointslices")
    assert slices is not None
    opts = ListOptions(label_selector=parse_label_selector(f"{SERVICE_NAME_LABEL}={name}"), resource_version="0")
    return list((await registry.list(slices, namespace, opts)).items)


def ready_endpoints(slices: list[Obj], name_of_port: str) -> list[tuple[str, int]]:
    """Every ready (or not unready) address with the number of the slice port named ``name_of_port``."""
    ready: list[tuple[str, int]] = []
    for es in slices:
        numbers = [p.get("port") for p in es.get("ports") or [] if str(p.get("name") or "") == name_of_port]
        if not numbers or not isinstance(numbers[0], int):
            continue
        for ep in es.get("endpoints") or []:
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            ready.extend((str(addr), numbers[0]) for addr in ep.get("addresses") or [])
    return ready


async def resolve_endpoint(registry: Registry, catalogue: Catalogue, namespace: str, name: str,
                           port: int) -> tuple[str, int]:
    """A ready endpoint (address, port) of the Service's port ``port``; ``errors.ServiceUnavailable``
    with ``ResolveEndpoint``'s wording when there is none."""
    try:
        service = await get_service(registry, catalogue, namespace, name)
    except errors.NotFound:
        raise errors.ServiceUnavailable(f'service "{name}" not found') from None
    spec = service.get("spec") or {}
    if spec.get("type", "ClusterIP") not in ("ClusterIP", "NodePort", "LoadBalancer"):
        raise errors.ServiceUnavailable(f'unsupported service type "{spec.get("type")}"')
    name_of_port = port_name(service, port)
    if name_of_port is None:
        raise errors.ServiceUnavailable(f'no service port {port} found for service "{name}"')
    ready = ready_endpoints(await endpoint_slices(registry, catalogue, namespace, name), name_of_port)
    if not ready:
        raise errors.ServiceUnavailable(f'no endpoints available for service "{name}"')
    return random.choice(ready)
