"""ServiceAccount (Kubernetes' ``plugin/pkg/admission/serviceaccount``, on by default; mutating, pod CREATE).

A pod without ``serviceAccountName`` runs as ``default``. A pod that names no
``imagePullSecrets`` gets its ServiceAccount's. Unless automounting is turned off (on the pod or
its ServiceAccount), every container that mounts nothing at
``/var/run/secrets/kubernetes.io/serviceaccount`` gets the ``kube-api-access-<suffix>`` projected
volume (a bound token, the cluster CA from the ``kube-root-ca.crt`` ConfigMap and the namespace)
mounted read-only there; the volume is added once. Mirror pods of static pods
are left alone.
"""

from __future__ import annotations

import copy

from kybernetes.api.obj import Obj
from kybernetes.apiserver.admission.chain import CREATE, Attributes, Handler, PluginInit
from kybernetes.apiserver.auth.serviceaccounts import DEFAULT_EXPIRATION, TOKEN_MOUNT, cached_service_account
from kybernetes.apiserver.registry.objutil import random_suffix
from kybernetes.apiserver.registry.store import Registry

NAME = "ServiceAccount"
VOLUME_PREFIX = "kube-api-access-"



class ServiceAccountAdmission(Handler):
    operations = frozenset({CREATE})
    resources = frozenset({("", "pods")})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def admit(self, attrs: Attributes) -> None:
        pod = attrs.object
        spec = (pod or {}).get("spec")
        if attrs.subresource or pod is None or not isinstance(spec, dict):
            return
        if pod.get("metadata", {}).get("annotations", {}).get("kubernetes.io/config.mirror"):
            return  # mirror pods of static pods get no service account
        sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = sa_name
        spec["serviceAccount"] = sa_name
        sa = await cached_service_account(self.registry, attrs.namespace, sa_name)
        if not spec.get("imagePullSecrets") and sa and sa.get("imagePullSecrets"):
            spec["imagePullSecrets"] = copy.deepcopy(sa["imagePullSecrets"])
        automount = spec.get("automountServiceAccountToken")
        if automount is None and sa:
            automount = sa.get("automountServiceAccountToken")
        if automount is False:
            return
        _mount_token(spec)


def _mount_token(spec: Obj) -> None:
    """``mountServiceAccountToken``: every container without a mount at the token path gets one of
    the pod's ``kube-api-access-*`` volume, which is added if some container needed it and the pod
    has none yet (so a container added later, e.g. by a mutating webhook before the chain's second
    round, gets the mount too)."""
    volumes = spec.get("volumes") if spec.get("volumes") is not None else []
    if not isinstance(volumes, list):
        return
    existing = next((v["name"] for v in volumes if isinstance(v, dict)
                     and str(v.get("name") or "").startswith(VOLUME_PREFIX)), None)
    name = existing or VOLUME_PREFIX + random_suffix(5)
    needs_volume = False
    for c in (c for key in ("initContainers", "containers") for c in spec.get(key) or [] if isinstance(c, dict)):
        mounts = c.setdefault("volumeMounts", [])
        if not isinstance(mounts, list) or any(isinstance(m, dict) and m.get("mountPath") == TOKEN_MOUNT
                                               for m in mounts):
            continue
        mounts.append({"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT})
        needs_volume = True
    if needs_volume and existing is None:
        spec["volumes"] = volumes
        volumes.append({"name": name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": DEFAULT_EXPIRATION, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                          "fieldPath": "metadata.namespace"}}]}},
        ]}})


def new(init: PluginInit) -> ServiceAccountAdmission:
    return ServiceAccountAdmission(init.registry)
