"""The API objects a pod references by name: its secrets, configmaps, claims and service account.

Kubernetes' ``VisitPodSecretNames`` / ``VisitPodConfigmapNames`` (``pkg/api/v1/pod/util.go``, over
every container: init, regular and ephemeral) and the claim names the Node authorizer's graph
links to a pod (``graph.go``: a ``persistentVolumeClaim`` volume's claim; an ``ephemeral``
volume's generated claim ``<pod>-<volume>``). The Node authorizer and NodeRestriction read these.

Pure functions over plain-dict pods, tolerant of malformed input (a missing or wrongly typed part
reads as empty; nothing raises). Names come back in a set: empty names are left out.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

# volume source -> the field naming its secret (``secretRef`` style fields are objects with a name).
_VOLUME_SECRET_REFS = {
    "cephfs": "secretRef", "cinder": "secretRef", "flexVolume": "secretRef", "rbd": "secretRef",
    "scaleIO": "secretRef", "iscsi": "secretRef", "storageos": "secretRef", "csi": "nodePublishSecretRef",
}


def _dict(value: Any) -> Mapping[str, Any]:
    if type(value) is dict:  # the usual case, without the ABC check's cost
        return value
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _name(value: Any, field: str = "name") -> str:
    name = _dict(value).get(field)
    return name if isinstance(name, str) else ""


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for field in _CONTAINER_LISTS:
        for c in _list(spec.get(field)):
            yield _dict(c)


def _env_refs(spec: Mapping[str, Any], key_ref: str, from_ref: str) -> Iterator[str]:
    for c in _containers(spec):
        for env in _list(c.get("env")):
            yield _name(_dict(_dict(env).get("valueFrom")).get(key_ref))
        for env_from in _list(c.get("envFrom")):
            yield _name(_dict(env_from).get(from_ref))


def _projected(volume: Mapping[str, Any], source: str) -> Iterator[str]:
    for src in _list(_dict(volume.get("projected")).get("sources")):
        yield _name(_dict(src).get(source))


def secret_names(pod: Mapping[str, Any]) -> set[str]:
    """Every secret the pod names (``VisitPodSecretNames``)."""
    spec = _dict(pod.get("spec"))
    names = {_name(ref) for ref in _list(spec.get("imagePullSecrets"))}
    names.update(_env_refs(spec, "secretKeyRef", "secretRef"))
    for vol in _list(spec.get("volumes")):
        vol = _dict(vol)
        for source, value in vol.items():  # the sources a volume has, not every source there is
            if source == "projected":
                names.update(_projected(vol, "secret"))
            elif source in ("secret", "azureFile"):
                names.add(_name(value, "secretName"))
            elif (field := _VOLUME_SECRET_REFS.get(source)) is not None:
                names.add(_name(_dict(value).get(field)))
    names.discard("")
    return names


def configmap_names(pod: Mapping[str, Any]) -> set[str]:
    """Every configmap the pod names (``VisitPodConfigmapNames``)."""
    spec = _dict(pod.get("spec"))
    names = set(_env_refs(spec, "configMapKeyRef", "configMapRef"))
    for vol in _list(spec.get("volumes")):
        vol = _dict(vol)
        names.update(_projected(vol, "configMap"))
        names.add(_name(vol.get("configMap")))
    names.discard("")
    return names


def claim_names(pod: Mapping[str, Any]) -> set[str]:
    """The PersistentVolumeClaims the pod's volumes use, ephemeral ones included."""
    pod_name = _name(pod.get("metadata"))
    names: set[str] = set()
    for vol in _list(_dict(pod.get("spec")).get("volumes")):
        vol = _dict(vol)
        names.add(_name(vol.get("persistentVolumeClaim"), "claimName"))
        if vol.get("ephemeral") is not None and _name(vol):
            names.add(f"{pod_name}-{_name(vol)}")
    names.discard("")
    return names


def service_account_name(pod: Mapping[str, Any]) -> str:
    return _name(pod.get("spec"), "serviceAccountName")


def has_cluster_trust_bundles(pod: Mapping[str, Any]) -> bool:
    """Whether a projected volume names a ClusterTrustBundle."""
    for vol in _list(_dict(pod.get("spec")).get("volumes")):
        for src in _list(_dict(_dict(vol).get("projected")).get("sources")):
            if _dict(src).get("clusterTrustBundle") is not None:
                return True
    return False
