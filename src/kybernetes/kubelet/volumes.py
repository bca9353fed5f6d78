"""The kubelet's volume manager: every volume of a pod as a directory on this host.

``VolumeManager.setup(pod)`` materialises each volume of the pod and returns ``{name: host path}``;
``mounts_for`` turns a container's ``volumeMounts`` into CRI mounts over those paths; ``refresh``
keeps API-backed contents current; ``teardown`` removes everything a pod had. The layout is the
kubelet's, ``ROOT/<pod uid>/volumes/<plugin>/<volume name>`` with the plugin directories named as
the kubelet names them (``kubernetes.io~configmap``...), so tools that know the kubelet find
their way around.

Volume types (plugins):

``emptyDir``      a directory (mode 0777, so any container user can write), or with
                  ``medium: Memory`` a tmpfs mounted there (``size=`` from ``sizeLimit``).
``hostPath``      the host path itself, after the type check the kubelet does
                  (``DirectoryOrCreate``, ``Directory``, ``FileOrCreate``, ``File``, ``Socket``,
                  ``CharDevice``, ``BlockDevice``, or none).
``configMap``     keys (or ``items``) of a ConfigMap / Secret fetched from the API, as files
``secret``        with ``defaultMode``/per-item modes; a missing object or key is a
                  :class:`VolumeError` (the core's FailedMount event, retried) unless the source
                  is ``optional``. Secrets (and downward API and projected volumes, as in the
                  kubelet) live on a tmpfs so that their contents never reach a disk.
``downwardAPI``   pod fields (``metadata.name/namespace/uid/labels/annotations``, single labels
                  and annotations, ``spec.nodeName``, ``spec.serviceAccountName``,
                  ``status.podIP``/``hostIP``) and container resources (``limits.cpu``... with
                  ``divisor``; a missing limit is the node's allocatable, as in the kubelet).
``projected``     any mix of ``serviceAccountToken``, ``configMap``, ``secret`` and
                  ``downwardAPI`` in one directory. Tokens come from TokenRequest bound to the
                  pod (audience: the API server's unless given) and are re-issued when older than
                  80% of their lifetime or 24 hours — what the kubelet's token manager does.
``persistentVolumeClaim``  the claim must be Bound to a PV with a ``hostPath`` or ``local``
                  source and volumeMode Filesystem; that path is the volume. ``readOnly`` of the
                  claim source makes every mount of it read-only. A ``local`` volume that is not
                  read-only gets the pod's fsGroup (``fsGroupChangePolicy``) once per pod
                  (:mod:`kybernetes.kubelet.volume_ownership`).
``ephemeral``     a generic ephemeral volume: the claim ``<pod>-<volume>`` (made by the ephemeral
                  volume controller, owned by the pod), then as ``persistentVolumeClaim``.

The atomic writer is :mod:`kybernetes.kubelet.atomic_writer`; tmpfs mounts, the hostPath check and
subPath resolution are in :mod:`kybernetes.kubelet.volume_host`.

``teardown`` unmounts every tmpfs below the pod's volume directory first and refuses to delete
anything while a mount is left, so that it can never remove files of another filesystem; the
deletion itself never follows symlinks, so hostPath data is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kybernetes import errors
from kybernetes.api import gobytes
from kybernetes.api.fieldpath import container_resource_value, field_value
from kybernetes.api.obj import Obj
from kybernetes.api.quantity import parse_quantity
from kybernetes.api.scheduling import node_view
from kybernetes.api.storageutil import ephemeral_claim_name, node_affinity_matcher, volume_is_for_pod
from kybernetes.api.timeutil import parse_epoch
from kybernetes.client.rest import Client
from kybernetes.kubelet import machine
from kybernetes.kubelet.atomic_writer import FileProjection, write_atomic
from kybernetes.kubelet.containerd import mounts_under
from kybernetes.kubelet.volume_host import (
    VolumeError,
    check_host_path,
    expand_subpath_expr,
    is_mount,
    mount_tmpfs,
    resolve_subpath,
    umount,
)
from kybernetes.kubelet.volume_ownership import VolumeOwnership

log = logging.getLogger(__name__)



EMPTY_DIR = "kubernetes.io~empty-dir"
CONFIGMAP = "kubernetes.io~configmap"
SECRET = "kubernetes.io~secret"
DOWNWARD_API = "kubernetes.io~downward-api"
PROJECTED = "kubernetes.io~projected"

DEFAULT_MODE = 0o644
TOKEN_REFRESH_FRACTION = 0.8
TOKEN_MAX_AGE = 24 * 3600.0
DEFAULT_TOKEN_EXPIRATION = 3600

# Volume types whose contents come from the API and are always mounted read-only (the kubelet's
# "ReadOnly API data volumes").
_API_DATA = ("configMap", "secret", "downwardAPI", "projected")

_PROPAGATION = {None: 0, "": 0, "None": 0, "HostToContainer": 1, "Bidirectional": 2}

# --- downward API ----------------------------------------------------------------------------------


def resource_value(pod: Obj, ref: Obj, allocatable: dict[str, Any], default_container: str = "") -> str:
    """``resourceFieldRef`` of a downwardAPI volume item: the named container's (or the default's)."""
    name = ref.get("containerName") or default_container
    containers = [c for key in ("containers", "initContainers") for c in (pod.get("spec") or {}).get(key) or []]
    container = next((c for c in containers if c.get("name") == name), None)
    if container is None:
        raise ValueError(f"container {name!r} not found")
    return container_resource_value(container, ref, allocatable)


# --- the manager ----------------------------------------------------------------------------------


@dataclass
class _Token:
    token: str
    issued: float
    """Wall-clock second the token's lifetime started (expiration minus expirationSeconds)."""
    expires: float


def _pod_meta(pod: Obj) -> tuple[str, str, str]:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid", "")), str(meta.get("namespace") or "default"), str(meta.get("name", ""))


class VolumeManager:
    """Sets up, refreshes and tears down the volumes of the pods on this node."""

    def __init__(self, client: Client, root: Path, node_name: str, *,
                 allocatable: Callable[[], dict[str, Any]] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.root = Path(root)
        self.node_name = node_name
        self._allocatable = allocatable or self._machine_allocatable
        self._now = clock
        self._tokens: dict[str, dict[tuple[str, str, int], _Token]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.ownership = VolumeOwnership()

    def _machine_allocatable(self) -> dict[str, Any]:
        capacity, _ = machine.filesystem_bytes(self.root)
        return {"cpu": machine.cpu_count(), "memory": machine.memory_bytes(), "ephemeral-storage": capacity}

    def pod_dir(self, pod_uid: str) -> Path:
        return self.root / pod_uid

    def volume_dir(self, pod_uid: str, plugin: str, name: str) -> Path:
        return self.root / pod_uid / "volumes" / plugin / name

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._locks.setdefault(uid, asyncio.Lock())

    # -- setup / refresh ----------------------------------------------------------------------

    async def setup(self, pod: Obj) -> dict[str, Path]:
        uid = _pod_meta(pod)[0]
        if not uid:
            raise VolumeError("", "pod has no uid")
        paths: dict[str, Path] = {}
        failures: list[VolumeError] = []
        async with self._lock(uid):
            for vol in (pod.get("spec") or {}).get("volumes") or []:
                name = str(vol.get("name", ""))
                try:
                    paths[name] = await self._setup_one(pod, vol)
                except VolumeError as e:
                    failures.append(e)
                except (OSError, ValueError) as e:
                    failures.append(VolumeError(name, str(e)))
        if failures:
            # Everything that could be set up is; the first failure is what the core reports.
            raise failures[0]
        return paths

    async def refresh(self, pod: Obj) -> None:
        """Rewrites API-backed volumes whose contents changed (a token due for renewal included)."""
        uid = _pod_meta(pod)[0]
        failures: list[VolumeError] = []
        async with self._lock(uid):
            for vol in (pod.get("spec") or {}).get("volumes") or []:
                if not any(k in vol for k in _API_DATA):
                    continue
                if not (self.root / uid / "volumes").exists():
                    return  # never set up (or torn down): nothing to refresh
                try:
                    await self._setup_one(pod, vol)
                except VolumeError as e:
                    failures.append(e)
                except (OSError, ValueError) as e:
                    failures.append(VolumeError(str(vol.get("name", "")), str(e)))
        if failures:
            raise failures[0]

    async def _setup_one(self, pod: Obj, vol: Obj) -> Path:
        uid = _pod_meta(pod)[0]
        name = str(vol.get("name", ""))
        gid = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        gid = int(gid) if isinstance(gid, int) else None
        if "hostPath" in vol:
            src = vol["hostPath"] or {}
            return check_host_path(name, Path(str(src.get("path", ""))), str(src.get("type") or ""))
        if "persistentVolumeClaim" in vol:
            source = vol["persistentVolumeClaim"] or {}
            return await self._pvc_path(pod, name, str(source.get("claimName", "")),
                                        read_only=source.get("readOnly") is True)
        if vol.get("ephemeral") is not None:
            # A generic ephemeral volume is the claim <pod>-<volume> the ephemeral volume
            # controller made for this pod; one the pod does not own is never used.
            return await self._pvc_path(pod, name, ephemeral_claim_name(pod, vol), ephemeral=True)
        if "configMap" in vol:
            src = vol["configMap"] or {}
            target = self.volume_dir(uid, CONFIGMAP, name)
            payload = await self._configmap_payload(pod, name, src, _mode(src.get("defaultMode")), gid)
            self._ensure_dir(target, memory=False, gid=gid)
            write_atomic(target, payload, gid=gid)
            return target
        if "secret" in vol:
            src = vol["secret"] or {}
            target = self.volume_dir(uid, SECRET, name)
            payload = await self._secret_payload(pod, name, src, _mode(src.get("defaultMode")), gid)
            self._ensure_dir(target, memory=True, gid=gid)
            write_atomic(target, payload, gid=gid)
            return target
        if "downwardAPI" in vol:
            src = vol["downwardAPI"] or {}
            target = self.volume_dir(uid, DOWNWARD_API, name)
            payload = self._downward_payload(pod, name, src.get("items") or [], _mode(src.get("defaultMode")), gid)
            self._ensure_dir(target, memory=True, gid=gid)
            write_atomic(target, payload, gid=gid)
            return target
        if "projected" in vol:
            src = vol["projected"] or {}
            target = self.volume_dir(uid, PROJECTED, name)
            payload = await self._projected_payload(pod, name, src, gid)
            self._ensure_dir(target, memory=True, gid=gid)
            write_atomic(target, payload, gid=gid)
            return target
        if "emptyDir" in vol or not any(isinstance(v, dict) for k, v in vol.items() if k != "name"):
            src = vol.get("emptyDir") or {}
            medium = src.get("medium") or ""
            if medium not in ("", "Memory"):
                raise VolumeError(name, f"emptyDir medium {medium!r} is not supported on this node")
            target = self.volume_dir(uid, EMPTY_DIR, name)
            size = None
            if medium == "Memory" and src.get("sizeLimit") is not None:
                size = math.ceil(parse_quantity(src["sizeLimit"]))
            self._ensure_dir(target, memory=medium == "Memory", gid=gid, size=size)
            return target
        kinds = [k for k in vol if k != "name"]
        raise VolumeError(name, f"volume type {kinds[0] if kinds else '?'} is not supported by this kubelet")

    def _ensure_dir(self, target: Path, *, memory: bool, gid: int | None, size: int | None = None) -> None:
        created = False
        if not target.is_dir():
            try:
                target.mkdir(parents=True)
                created = True
            except FileExistsError:
                if not target.is_dir():
                    raise  # as mkdir(exist_ok=True) does for a file in the way
        # Nothing can be mounted on a directory this call just made: no need to look.
        if memory and (created or not is_mount(target)) and not mount_tmpfs(target, size):
            log.debug("cannot mount tmpfs at %s (not privileged): a plain directory instead", target)
        # 0777 like the kubelet's emptyDir: containers run as any user; the pod dir stays private.
        os.chmod(target, 0o777)
        if gid is not None:
            os.chown(target, -1, gid)
            os.chmod(target, 0o777 | stat.S_ISGID)

    # -- API-backed sources ------------------------------------------------------------------------

    async def _get(self, plural: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self.client.get("v1", plural, name, namespace)
        except errors.NotFound:
            return None

    async def _configmap_payload(self, pod: Obj, volume: str, src: Obj, default_mode: int,
                                 gid: int | None) -> dict[str, FileProjection]:
        ns = _pod_meta(pod)[1]
        cm_name = str(src.get("name", ""))
        cm = await self._get("configmaps", ns, cm_name)
        if cm is None:
            if src.get("optional"):
                return {}
            raise VolumeError(volume, f'configmap "{cm_name}" not found')
        data: dict[str, bytes] = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
        for k, v in (cm.get("binaryData") or {}).items():
            data[k] = gobytes.decode(v)
        return _key_payload(volume, data, src, default_mode, gid, "configmap references non-existent config key")

    async def _secret_payload(self, pod: Obj, volume: str, src: Obj, default_mode: int,
                              gid: int | None, name_field: str = "secretName") -> dict[str, FileProjection]:
        ns = _pod_meta(pod)[1]
        secret_name = str(src.get(name_field, ""))
        secret = await self._get("secrets", ns, secret_name)
        if secret is None:
            if src.get("optional"):
                return {}
            raise VolumeError(volume, f'secret "{secret_name}" not found')
        data = {k: gobytes.decode(v) for k, v in (secret.get("data") or {}).items()}
        for k, v in (secret.get("stringData") or {}).items():
            data.setdefault(k, str(v).encode())
        return _key_payload(volume, data, src, default_mode, gid, "references non-existent secret key")

    def _downward_payload(self, pod: Obj, volume: str, items: list[Obj], default_mode: int,
                          gid: int | None) -> dict[str, FileProjection]:
        out: dict[str, FileProjection] = {}
        for item in items:
            path = str(item.get("path", ""))
            try:
                if item.get("fieldRef"):
                    value = field_value(pod, str(item["fieldRef"].get("fieldPath", "")))
                elif item.get("resourceFieldRef"):
                    value = resource_value(pod, item["resourceFieldRef"], self._allocatable())
                else:
                    raise ValueError(f"item {path!r} has neither fieldRef nor resourceFieldRef")
            except ValueError as e:
                raise VolumeError(volume, str(e))
            out[path] = FileProjection(value.encode(), _with_group(_mode(item.get("mode"), default_mode), gid))
        return out

    async def _projected_payload(self, pod: Obj, volume: str, src: Obj, gid: int | None) -> dict[str, FileProjection]:
        default_mode = _mode(src.get("defaultMode"))
        out: dict[str, FileProjection] = {}
        for source in src.get("sources") or []:
            if source.get("configMap") is not None:
                out.update(await self._configmap_payload(pod, volume, source["configMap"], default_mode, gid))
            elif source.get("secret") is not None:
                out.update(await self._secret_payload(pod, volume, source["secret"], default_mode, gid,
                                                      name_field="name"))
            elif source.get("downwardAPI") is not None:
                out.update(self._downward_payload(pod, volume, source["downwardAPI"].get("items") or [],
                                                  default_mode, gid))
            elif source.get("serviceAccountToken") is not None:
                tok = source["serviceAccountToken"]
                token = await self._token(pod, volume, tok)
                # The kubelet narrows the token file to 0600 when an fsGroup changes its group.
                mode = 0o600 if gid is not None else default_mode
                out[str(tok.get("path", "token"))] = FileProjection(token.encode(), _with_group(mode, gid))
            elif source.get("clusterTrustBundle") is not None:
                raise VolumeError(volume, "clusterTrustBundle projections are not supported by this kubelet")
        return out

    async def _token(self, pod: Obj, volume: str, src: Obj) -> str:
        uid, ns, pod_name = _pod_meta(pod)
        sa = str((pod.get("spec") or {}).get("serviceAccountName") or "default")
        audience = str(src.get("audience") or "")
        expiration = int(src.get("expirationSeconds") or DEFAULT_TOKEN_EXPIRATION)
        key = (sa, audience, expiration)
        cache = self._tokens.setdefault(uid, {})
        now = self._now()
        cached = cache.get(key)
        if cached is not None and not self._needs_refresh(cached, now):
            return cached.token
        body = {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": [audience] if audience else [], "expirationSeconds": expiration,
                     "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": uid}},
        }
        try:
            answer = await self.client.create("v1", "serviceaccounts", body, namespace=ns, subresource="token",
                                              name=sa)
        except errors.StatusError as e:
            if cached is not None and cached.expires > now:
                log.warning("renewing token for %s/%s failed (%s); keeping the current one", ns, pod_name, e)
                return cached.token
            raise VolumeError(volume, f"failed to fetch token: {e}")
        status = answer.get("status") or {}
        expires = parse_epoch(status.get("expirationTimestamp"))
        if expires is None:
            raise VolumeError(volume, f"token has no valid expirationTimestamp: {status.get('expirationTimestamp')!r}")
        granted = int((answer.get("spec") or {}).get("expirationSeconds") or expiration)
        cache[key] = _Token(str(status.get("token", "")), expires - granted, expires)
        return cache[key].token

    def _needs_refresh(self, token: _Token, now: float) -> bool:
        ttl = token.expires - token.issued
        return now >= token.issued + TOKEN_REFRESH_FRACTION * ttl or now >= token.issued + TOKEN_MAX_AGE

    def token_due(self, pod_uid: str) -> float | None:
        """Wall-clock time the first of this pod's tokens is due for renewal (None: no tokens)."""
        due = [t.issued + min(TOKEN_REFRESH_FRACTION * (t.expires - t.issued), TOKEN_MAX_AGE)
               for t in self._tokens.get(pod_uid, {}).values()]
        return min(due) if due else None

    async def _pvc_path(self, pod: Obj, volume: str, claim: str, ephemeral: bool = False,
                        read_only: bool = False) -> Path:
        """The host path of a claim's volume: the claim must be Bound to a hostPath or local PV of
        volumeMode Filesystem; for an ``ephemeral`` volume the claim must be that pod's."""
        ns = _pod_meta(pod)[1]
        pvc = await self._get("persistentvolumeclaims", ns, claim)
        if pvc is None:
            raise VolumeError(volume, f'persistentvolumeclaim "{claim}" not found')
        not_for_pod = volume_is_for_pod(pod, pvc) if ephemeral else ""
        if not_for_pod:
            raise VolumeError(volume, not_for_pod)
        if pvc.get("metadata", {}).get("deletionTimestamp"):
            raise VolumeError(volume, f'persistentvolumeclaim "{claim}" is being deleted')
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if (pvc.get("status") or {}).get("phase") != "Bound" or not pv_name:
            raise VolumeError(volume, f"PVC {ns}/{claim} is not bound")
        pv = await self._get("persistentvolumes", "", str(pv_name))
        if pv is None:
            raise VolumeError(volume, f'persistentvolume "{pv_name}" not found')
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref and (ref.get("name") != claim or (ref.get("namespace") or ns) != ns):
            raise VolumeError(volume, f'persistentvolume "{pv_name}" is bound to another claim')
        spec = pv.get("spec") or {}
        await self._check_node_affinity(str(pv_name), spec)
        mode = spec.get("volumeMode") or "Filesystem"
        if mode != "Filesystem":
            if _in_volume_mounts(pod, volume):
                raise VolumeError(volume, f"volume {volume} has volumeMode {mode}, but is specified in volumeMounts")
            raise VolumeError(volume, f"volumeMode {mode} (volumeDevices) is not supported by this kubelet")
        if spec.get("hostPath"):
            return check_host_path(volume, Path(str(spec["hostPath"].get("path", ""))),
                                   str(spec["hostPath"].get("type") or ""))
        if spec.get("local"):
            path = Path(str(spec["local"].get("path", "")))
            if not path.exists():
                raise VolumeError(volume, f"path {path} does not exist")
            self.ownership.apply(pod, volume, path, read_only=read_only)  # fsGroup (volume_ownership)
            return path
        kinds = [k for k, v in spec.items() if isinstance(v, dict) and k not in ("claimRef", "capacity", "nodeAffinity")]
        raise VolumeError(volume, f'persistentvolume "{pv_name}" has a source this kubelet cannot mount ({kinds})')

    async def _check_node_affinity(self, pv_name: str, spec: Obj) -> None:
        """``checkNodeAffinity``: a PV whose required node affinity excludes this node is not mounted."""
        fits = node_affinity_matcher({"spec": spec})
        if fits is None:
            return
        node = await self._get("nodes", "", self.node_name)
        if node is None:
            raise VolumeError(pv_name, f'node "{self.node_name}" not found', "MountVolume.NodeAffinity check failed")
        if not fits(node_view(node)):
            raise VolumeError(pv_name, "no matching NodeSelectorTerms", "MountVolume.NodeAffinity check failed")

    # -- mounts -----------------------------------------------------------------------------------

    def mounts_for(self, pod: Obj, container: Obj, paths: dict[str, Path]) -> list[Obj]:
        """CRI mounts for ``container``'s volumeMounts (subPath resolved into ``host_path``)."""
        volumes = {str(v.get("name")): v for v in (pod.get("spec") or {}).get("volumes") or []}
        env = {str(e.get("name")): str(e.get("value", "")) for e in container.get("env") or [] if "value" in e}
        mounts: list[Obj] = []
        for vm in container.get("volumeMounts") or []:
            name = str(vm.get("name", ""))
            if name not in paths:
                raise VolumeError(name, "volume is not set up")
            vol = volumes.get(name, {})
            readonly = bool(vm.get("readOnly")) or any(k in vol for k in _API_DATA) or bool(
                (vol.get("persistentVolumeClaim") or {}).get("readOnly"))
            sub = str(vm.get("subPath") or "")
            if not sub and vm.get("subPathExpr"):
                sub = expand_subpath_expr(str(vm["subPathExpr"]), env)
            host = paths[name]
            if sub:
                host = resolve_subpath(name, host, sub)
            propagation = vm.get("mountPropagation")
            mounts.append({
                "container_path": str(vm.get("mountPath", "")),
                "host_path": str(host),
                "readonly": readonly,
                "propagation": _PROPAGATION.get(propagation, 0),
                "sub_path": sub,
            })
        return mounts

    # -- teardown ---------------------------------------------------------------------------------

    async def teardown(self, pod_uid: str) -> None:
        async with self._lock(pod_uid):
            pod_dir = self.pod_dir(pod_uid)
            volumes = pod_dir / "volumes"
            if volumes.exists():
                for _ in range(3):
                    points = mounts_under(volumes)
                    if not points:
                        break
                    for point in points:
                        umount(point)
                left = mounts_under(volumes)
                if left:
                    raise VolumeError("", f"cannot tear down pod {pod_uid}: still mounted: {', '.join(left)}")
                # rmtree removes symlinks, never what they point to: hostPath data is safe.
                shutil.rmtree(volumes)
            with contextlib.suppress(OSError):
                pod_dir.rmdir()  # only when nothing else (the core's files) is left in it
        self._tokens.pop(pod_uid, None)
        self._locks.pop(pod_uid, None)
        self.ownership.forget(pod_uid)

    def orphaned(self, live_uids: set[str]) -> list[str]:
        """Pods that have volume directories here but are no longer live (to tear down)."""
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        return sorted(e.name for e in entries
                      if e.name not in live_uids and e.is_dir() and not e.is_symlink() and (e / "volumes").is_dir())


# --- helpers ---------------------------------------------------------------------------------------


def _in_volume_mounts(pod: Obj, volume: str) -> bool:
    """Whether any container of the pod mounts ``volume`` through ``volumeMounts``."""
    spec = pod.get("spec") or {}
    return any(vm.get("name") == volume
               for key in ("initContainers", "containers") for c in spec.get(key) or []
               for vm in c.get("volumeMounts") or [])


def _mode(value: Any, default: int = DEFAULT_MODE) -> int:
    return int(value) & 0o7777 if isinstance(value, int) else default


def _with_group(mode: int, gid: int | None) -> int:
    # With an fsGroup the group may read everything, as the kubelet's SetVolumeOwnership makes it.
    return mode | 0o440 if gid is not None else mode


def _key_payload(volume: str, data: dict[str, bytes], src: Obj, default_mode: int, gid: int | None,
                 missing: str) -> dict[str, FileProjection]:
    items = src.get("items")
    out: dict[str, FileProjection] = {}
    if not items:
        for key, value in data.items():
            out[key] = FileProjection(value, _with_group(default_mode, gid))
        return out
    for item in items:
        key = str(item.get("key", ""))
        if key not in data:
            if src.get("optional"):
                continue
            raise VolumeError(volume, f"{missing}: {key}")
        out[str(item.get("path") or key)] = FileProjection(data[key], _with_group(_mode(item.get("mode"), default_mode), gid))
    return out
