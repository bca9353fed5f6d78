"""Printers for the core (``""``) API group: one module per family of kinds, and
:data:`BY_KIND`, the printer of each core kind.

Each ``_x_cells`` function computes one row from the JSON (v1) form of an object, the way the
matching ``printX`` function in Kubernetes' ``pkg/printers/internalversion`` does from the internal
form. The API server always asks for the wide variant (kubectl drops priority-1 columns itself
unless ``-o wide``), so every function returns all cells. Where Kubernetes relies on a value the
v1-to-internal conversion or defaulting fills in (``podIPs`` from ``podIP``, ``clusterIPs`` from
``clusterIP``, ``replicas`` defaulting to 1) we fall back the same way.
"""

from __future__ import annotations

from kybernetes.apiserver.printers._common import Printer
from kybernetes.apiserver.printers.core.config import (
    CONFIG_MAP,
    NAMESPACE,
    RESOURCE_QUOTA,
    SECRET,
    SERVICE_ACCOUNT,
)
from kybernetes.apiserver.printers.core.events import EVENT
from kybernetes.apiserver.printers.core.nodes import COMPONENT_STATUS, NODE
from kybernetes.apiserver.printers.core.pods import POD, POD_TEMPLATE, REPLICATION_CONTROLLER
from kybernetes.apiserver.printers.core.services import ENDPOINTS, SERVICE
from kybernetes.apiserver.printers.core.volumes import PERSISTENT_VOLUME, PERSISTENT_VOLUME_CLAIM

BY_KIND: dict[str, Printer] = {
    "ComponentStatus": COMPONENT_STATUS,
    "Pod": POD,
    "PodTemplate": POD_TEMPLATE,
    "Node": NODE,
    "Namespace": NAMESPACE,
    "ConfigMap": CONFIG_MAP,
    "Secret": SECRET,
    "ServiceAccount": SERVICE_ACCOUNT,
    "Service": SERVICE,
    "Endpoints": ENDPOINTS,
    "Event": EVENT,
    "ResourceQuota": RESOURCE_QUOTA,
    "PersistentVolume": PERSISTENT_VOLUME,
    "PersistentVolumeClaim": PERSISTENT_VOLUME_CLAIM,
    "ReplicationController": REPLICATION_CONTROLLER,
}
