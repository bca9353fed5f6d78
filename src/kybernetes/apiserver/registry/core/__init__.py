"""The core API group (``v1``): one module per resource with code of its own, as Kubernetes'
``pkg/registry/core/<resource>``.

pods (strategy: ``pods.py``; the PodSpec rules every workload shares: ``podvalidation.py``;
binding, eviction, ephemeralcontainers: ``podstorage.py``; what ephemeral containers may be:
``ephemeral.py``), services (``services.py``; IP and port allocation: ``serviceallocator.py``),
namespaces (and ``/finalize``), nodes, config (ConfigMaps, Secrets), serviceaccounts (and
``/token``), events, quota (ResourceQuotas, LimitRanges), volumes (PersistentVolumes and claims),
replicationcontrollers (and ``/scale``); ``common.py`` holds what several of them share.

This package exports the group's :data:`STRATEGIES` (keyed by ``("", kind)``), its kind-specific
:data:`SUBRESOURCES` and :data:`CREATE` (the older ``bindings`` resource), and the PodSpec rules
the workload groups reuse.
"""

from __future__ import annotations

from collections.abc import Callable

from kybernetes.api.defaults import default_pod_spec, default_pod_template
from kybernetes.apiserver.registry.core.config import ConfigMapStrategy, SecretStrategy
from kybernetes.apiserver.registry.core.events import EventStrategy
from kybernetes.apiserver.registry.core.namespaces import FinalizeREST, NamespaceStrategy
from kybernetes.apiserver.registry.core.nodes import NodeStrategy
from kybernetes.apiserver.registry.core.pods import POD_FIELD_SELECTORS, PodStrategy, PodTemplateStrategy
from kybernetes.apiserver.registry.core.podstorage import (
    BindingREST,
    EphemeralContainersREST,
    EvictionREST,
    LegacyBindingREST,
)
from kybernetes.apiserver.registry.core.podvalidation import validate_pod_spec, validate_pod_template
from kybernetes.apiserver.registry.core.quota import LimitRangeStrategy, ResourceQuotaStrategy
from kybernetes.apiserver.registry.core.replicationcontrollers import ReplicationControllerStrategy
from kybernetes.apiserver.registry.core.serviceaccounts import ServiceAccountStrategy, TokenREST
from kybernetes.apiserver.registry.core.services import EndpointsStrategy, ServiceStrategy
from kybernetes.apiserver.registry.core.volumes import PersistentVolumeClaimStrategy, PersistentVolumeStrategy
from kybernetes.apiserver.registry.rest import REPLICAS_PATHS, ScaleREST, SubresourceREST
from kybernetes.apiserver.registry.strategy import Strategy

STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("", s.kind): s
    for s in (
        NamespaceStrategy(),
        PodStrategy(),
        NodeStrategy(),
        ServiceStrategy(),
        EndpointsStrategy(),
        ConfigMapStrategy(),
        SecretStrategy(),
        ServiceAccountStrategy(),
        EventStrategy(),
        ResourceQuotaStrategy(),
        LimitRangeStrategy(),
        PersistentVolumeStrategy(),
        PersistentVolumeClaimStrategy(),
        ReplicationControllerStrategy(),
        PodTemplateStrategy(),
    )
}

SUBRESOURCES: dict[tuple[str, str], Callable[[], dict[str, SubresourceREST]]] = {
    ("", "pods"): lambda: {"binding": BindingREST(), "eviction": EvictionREST(),
                           "ephemeralcontainers": EphemeralContainersREST()},
    ("", "namespaces"): lambda: {"finalize": FinalizeREST()},
    ("", "replicationcontrollers"): lambda: {"scale": ScaleREST(REPLICAS_PATHS)},
}
"""(group, plural) -> the kind-specific subresources of its REST object. serviceaccounts' ``token``
(:class:`TokenREST`) and pods' connect subresources need the server's parts: it installs them."""

CREATE: dict[tuple[str, str], Callable[[], SubresourceREST]] = {
    ("", "bindings"): LegacyBindingREST,
}
"""(group, plural) -> what serves its create instead of the generic store."""

__all__ = [
    "CREATE",
    "POD_FIELD_SELECTORS",
    "STRATEGIES",
    "SUBRESOURCES",
    "TokenREST",
    "default_pod_spec",
    "default_pod_template",
    "validate_pod_spec",
    "validate_pod_template",
]
