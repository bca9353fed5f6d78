"""ServiceAccount (Kubernetes' ``plugin/pkg/admission/serviceaccount``, on by default; mutating, pod CREATE).

A pod without ``serviceAccountName`` runs as ``default``. A pod that names no
``imagePullSecrets`` gets its ServiceAccount's. Unless automounting is turned off (on the pod or
its ServiceAccount), every container that mounts nothing at
``/var/run/secrets/kubernetes.io/serviceaccount`` gets the ``kube-api-access-<suffix>`` projected
volume (a bound token, the cluster CA from the ``kube-root-ca.crt`` ConfigMap and the namespace)
mounted read-only there; the volume is added once. Mirror pods of static pods
are left alone.

Refusals, as Kubernetes words them (403, ``admission.NewForbidden``):

- the pod's ServiceAccount does not exist (after a live lookup when the watch cache misses, see
  :func:`~kybernetes.apiserver.auth.serviceaccounts.live_service_account`): ``error looking up
  service account NS/NAME: serviceaccount "NAME" not found``;
- the account is annotated ``kubernetes.io/enforce-mountable-secrets: "true"`` (any value Go's
  ``strconv.ParseBool`` reads as true) and the pod names a Secret (volume, ``env`` secretKeyRef,
  ``envFrom`` secretRef, imagePullSecrets) that the account's ``secrets`` (``imagePullSecrets``
  for pull secrets) does not list; ephemeral containers added later through
  ``pods/ephemeralcontainers`` are checked the same way.
"""

from __future__ import annotations

import copy

from kybernetes.api.obj import Obj
from kybernetes.apiserver.admission.chain import CREATE, UPDATE, Attributes, Handler, PluginInit, forbidden
from kybernetes.apiserver.auth.serviceaccounts import DEFAULT_EXPIRATION, TOKEN_MOUNT, live_service_account
from kybernetes.apiserver.registry.objutil import random_suffix
from kybernetes.apiserver.registry.store import Registry

NAME = "ServiceAccount"
ENFORCE_MOUNTABLE_SECRETS = "kubernetes.io/enforce-mountable-secrets"
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})  # strconv.ParseBool's true
VOLUME_PREFIX = "kube-api-access-"



class ServiceAccountAdmission(Handler):
    operations = frozenset({CREATE, UPDATE})
    resources = frozenset({("", "pods")})

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def admit(self, attrs: Attributes) -> None:
        pod = attrs.object
        spec = (pod or {}).get("spec")
        if attrs.operation != CREATE or attrs.subresource or pod is None or not isinstance(spec, dict):
            return
        if _is_mirror(pod):
            return  # mirror pods of static pods get no service account
        sa_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = sa_name
        spec["serviceAccount"] = sa_name
        sa = await self._service_account(attrs, sa_name)
        if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
            spec["imagePullSecrets"] = copy.deepcopy(sa["imagePullSecrets"])
        automount = spec.get("automountServiceAccountToken")
        if automount is None:
            automount = sa.get("automountServiceAccountToken")
        if automount is False:
            return
        _mount_token(spec)

    async def validate(self, attrs: Attributes) -> None:
        """The account exists and, if it enforces mountable secrets, the pod (or, on
        ``pods/ephemeralcontainers``, its ephemeral containers) names only secrets it lists."""
        pod = attrs.object
        spec = (pod or {}).get("spec")
        if pod is None or not isinstance(spec, dict) or _is_mirror(pod):
            return
        ephemeral = attrs.operation == UPDATE and attrs.subresource == "ephemeralcontainers"
        if not ephemeral and (attrs.operation != CREATE or attrs.subresource):
            return
        sa_name = spec.get("serviceAccountName") or ""
        if not sa_name:
            name = (pod.get("metadata") or {}).get("name", "")
            raise forbidden(attrs, f"no service account specified for pod {attrs.namespace}/{name}")
        sa = await self._service_account(attrs, sa_name)
        if not _enforces_mountable_secrets(sa):
            return
        problem = (_ephemeral_secret_problem(sa, spec) if ephemeral else _secret_problem(sa, spec))
        if problem:
            raise forbidden(attrs, problem)

    async def _service_account(self, attrs: Attributes, name: str) -> Obj:
        sa = await live_service_account(self.registry, attrs.namespace, name)
        if sa is None:
            raise forbidden(attrs, f"error looking up service account {attrs.namespace}/{name}: "
                                   f'serviceaccount "{name}" not found')
        return sa


def _is_mirror(pod: Obj) -> bool:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return "kubernetes.io/config.mirror" in annotations


def _enforces_mountable_secrets(sa: Obj) -> bool:
    annotations = (sa.get("metadata") or {}).get("annotations") or {}
    return annotations.get(ENFORCE_MOUNTABLE_SECRETS) in _GO_TRUE


def _names(refs: object) -> set[str]:
    return {str(r.get("name")) for r in refs or [] if isinstance(r, dict)} if isinstance(refs, list) else set()


def _container_secret_problem(kind: str, c: Obj, mountable: set[str], sa_name: str) -> str:
    """Kubernetes' message for the first env/envFrom Secret of container ``c`` not in ``mountable``."""
    tail = f"is not allowed because service account {sa_name} does not reference that secret"
    for env in c.get("env") or []:
        ref = ((env or {}).get("valueFrom") or {}).get("secretKeyRef")
        if isinstance(ref, dict) and ref.get("name", "") not in mountable:
            return (f'{kind} {c.get("name", "")} with envVar {env.get("name", "")} referencing '
                    f'secret.secretName="{ref.get("name", "")}" {tail}')
    for env_from in c.get("envFrom") or []:
        ref = (env_from or {}).get("secretRef")
        if isinstance(ref, dict) and ref.get("name", "") not in mountable:
            return (f'{kind} {c.get("name", "")} with envFrom referencing '
                    f'secret.secretName="{ref.get("name", "")}" {tail}')
    return ""


def _secret_problem(sa: Obj, spec: Obj) -> str:
    """limitSecretReferences: volumes, then init containers, containers, then pull secrets."""
    sa_name = sa["metadata"]["name"]
    mountable = _names(sa.get("secrets"))
    for volume in spec.get("volumes") or []:
        secret = (volume or {}).get("secret")
        if isinstance(secret, dict) and secret.get("secretName", "") not in mountable:
            return (f'volume with secret.secretName="{secret.get("secretName", "")}" is not allowed '
                    f"because service account {sa_name} does not reference that secret")
    for key, kind in (("initContainers", "init container"), ("containers", "container")):
        for c in spec.get(key) or []:
            problem = _container_secret_problem(kind, c, mountable, sa_name) if isinstance(c, dict) else ""
            if problem:
                return problem
    pull = _names(sa.get("imagePullSecrets"))
    for i, ref in enumerate(spec.get("imagePullSecrets") or []):
        name = (ref or {}).get("name", "")
        if name not in pull:
            return (f'imagePullSecrets[{i}].name="{name}" is not allowed because service account '
                    f"{sa_name} does not reference that imagePullSecret")
    return ""


def _ephemeral_secret_problem(sa: Obj, spec: Obj) -> str:
    mountable = _names(sa.get("secrets"))
    for c in spec.get("ephemeralContainers") or []:
        problem = (_container_secret_problem("ephemeral container", c, mountable, sa["metadata"]["name"])
                   if isinstance(c, dict) else "")
        if problem:
            return problem
    return ""


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
