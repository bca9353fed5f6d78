"""ServiceAccount (Kubernetes' ``plugin/pkg/admission/serviceaccount``, on by default; mutating, pod CREATE).

A pod without ``serviceAccountName`` runs as ``default``. A pod that names no
``imagePullSecrets`` gets its ServiceAccount's. Unless automounting is turned off (on the pod or
its ServiceAccount) or a container already mounts something at the token path, the pod gets the
``kube-api-access-<suffix>`` projected volume (a bound token, the cluster CA from the
``kube-root-ca.crt`` ConfigMap and the namespace) mounted read-only at
``/var/run/secrets/kubernetes.io/serviceaccount`` in every container. Mirror pods of static pods
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
    containers = [c for key in ("initContainers", "containers") for c in spec.get(key) or []
                  if isinstance(c, dict)]
    if any(m.get("mountPath") == TOKEN_MOUNT for c in containers for m in c.get("volumeMounts") or []
           if isinstance(m, dict)):
        return
    name = "kube-api-access-" + random_suffix(5)
    volumes = spec.setdefault("volumes", [])
    if not isinstance(volumes, list):
        return
    volumes.append({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": DEFAULT_EXPIRATION, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                      "fieldPath": "metadata.namespace"}}]}},
    ]}})
    for c in containers:
        mounts = c.setdefault("volumeMounts", [])
        if isinstance(mounts, list):
            mounts.append({"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT})


def new(init: PluginInit) -> ServiceAccountAdmission:
    return ServiceAccountAdmission(init.registry)
