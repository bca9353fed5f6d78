"""Making sure a container's image is on the node: pull policy, registry credentials, pull back-off.

`ImageManager.ensure(pod, container)` is Kubernetes' EnsureImageExists:

    Never         present -> use it; missing -> ErrImageNeverPull (no pull, ever)
    IfNotPresent  present -> "Container image X already present on machine"; missing -> pull
    Always        pull (the runtime answers quickly when nothing changed), except over one of the
                  node's own built-in images (busybox, pause, the system image, as this kubelet
                  imported them): no registry has those, so `--image=busybox` (`:latest`, hence
                  Always) runs the built-in as it is, with the event saying so

A failed pull records `Failed` and raises ErrImagePull; until the back-off (10 s doubling to
5 min, per pod and image) has passed, later attempts do not pull but raise ImagePullBackOff
("Back-off pulling image X"), which is what the container's waiting state shows. The sync loop
comes back when the back-off expires (`retry_after`).

Credentials come from the pod's imagePullSecrets (ServiceAccount admission has already copied the
service account's into the pod): `kubernetes.io/dockerconfigjson` (`.dockerconfigjson`, `{"auths":
{...}}`) and legacy `kubernetes.io/dockercfg` secrets; then from the node's own docker config,
`config.json` or legacy `.dockercfg` in the kubelet's root (data) directory (the kubelet also looks
in the working and home directories; this node keeps its state in its data dir). An entry applies
when its registry host (scheme and path stripped; index.docker.io and registry-1.docker.io count as
docker.io) is the image's and its path, if any, is a prefix of the image's repository. The pod's
matching credentials are tried longest match first, then the node's, and an anonymous pull only if
nothing matched, as the kubelet's union keyring does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from kybernetes.api import gobytes
from kybernetes.api.obj import Obj
from kybernetes.kubelet.cri import CRIClient, CRIError, api
from kybernetes.kubelet.podworkers import Backoff

log = logging.getLogger(__name__)

Recorder = Callable[[Obj, str, str, str], None]  # (pod, type, reason, message)
SecretGetter = Callable[[str, str], Awaitable[Obj | None]]

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "docker.io"}


class ImagePullError(Exception):
    """The image cannot be made available: `reason` is the container's waiting reason."""

    def __init__(self, reason: str, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_after = retry_after


def split_image(image: str) -> tuple[str, str]:
    """(registry host, repository path) of an image reference, with Docker's defaults."""
    name = image.split("@", 1)[0]
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repo = first, rest
    else:
        host, repo = DOCKER_HUB, name if rest else f"library/{name}"
    last = repo.rsplit("/", 1)
    if ":" in last[-1]:
        repo = repo[: repo.rfind(":")]
    return (DOCKER_HUB if host in _HUB_ALIASES else host), repo


def valid_image(image: str) -> bool:
    return bool(image) and image == image.strip() and " " not in image and not image.endswith(":")


def _registry_key(key: str) -> tuple[str, str]:
    key = key.split("://", 1)[-1].rstrip("/")
    host, _, path = key.partition("/")
    if host in _HUB_ALIASES:
        host, path = DOCKER_HUB, "" if path.startswith("v1") or path.startswith("v2") else path
    return host, path


def _auth_field(auth: str) -> tuple[str, str]:
    """A docker config entry's ``auth`` as the kubelet decodes it (``decodeDockerConfigFieldAuth``):
    padded base64 if it ends in ``=``, unpadded otherwise; ``user:password``."""
    padded = auth.strip().endswith("=")
    user, sep, password = gobytes.decode(auth, padded=padded).decode(errors="replace").partition(":")
    if not sep:
        raise ValueError("auth has no ':'")
    return user, password


def credentials_for(image: str, secrets: list[Obj]) -> list[api.AuthConfig]:
    """AuthConfigs from docker config secrets that apply to `image`, best (longest) match first."""
    host, repo = split_image(image)
    found: list[tuple[int, api.AuthConfig]] = []
    for secret in secrets:
        data = secret.get("data") or {}
        raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
        if not raw:
            continue
        try:
            doc = json.loads(gobytes.decode(raw))
        except (ValueError, TypeError):
            log.warning("image pull secret %s: not valid JSON", (secret.get("metadata") or {}).get("name"))
            continue
        auths = doc.get("auths", doc) if ".dockerconfigjson" in data else doc
        for key, entry in (auths or {}).items():
            if not isinstance(entry, dict):
                continue
            key_host, key_path = _registry_key(key)
            if key_host != host or (key_path and not (repo == key_path or repo.startswith(key_path + "/"))):
                continue
            username, password = entry.get("username", ""), entry.get("password", "")
            if entry.get("auth") and not username:
                try:
                    username, password = _auth_field(str(entry["auth"]))
                except ValueError:
                    log.warning("image pull secret %s: invalid auth for %s",
                                (secret.get("metadata") or {}).get("name"), key)
                    continue
            # No server_address, as the kubelet's keyring sends none: containerd would compare it,
            # parsed as a URL, with the registry host, and "host:port" does not parse as one.
            found.append((len(key_path), api.AuthConfig(
                username=username, password=password,
                identity_token=entry.get("identitytoken", ""), registry_token=entry.get("registrytoken", ""))))
    found.sort(key=lambda x: -x[0])
    return [auth for _, auth in found]


NODE_CONFIG_FILES = {"config.json": ".dockerconfigjson", ".dockercfg": ".dockercfg"}


def node_pull_configs(directory: Path | None) -> list[Obj]:
    """The node's docker config files in `directory` (module doc), as secrets `credentials_for` reads."""
    if directory is None:
        return []
    found: list[Obj] = []
    for name, key in NODE_CONFIG_FILES.items():
        try:
            raw = (Path(directory) / name).read_bytes()
        except OSError:
            continue
        found.append({"metadata": {"name": str(Path(directory) / name)},
                      "data": {key: base64.b64encode(raw).decode()}})
    return found


class ImageManager:
    """Pull policy, credentials and back-off in front of the CRI ImageService (module doc)."""

    def __init__(self, cri: CRIClient, *, get_secret: SecretGetter, record: Recorder,
                 backoff: Backoff | None = None, builtins: Callable[[], set[tuple[str, str]]] = set,
                 node_config_dir: Path | None = None) -> None:
        """``builtins``: the (name, image ID) pairs of the built-in images this node imported;
        ``node_config_dir``: where the node's own docker config lives (the kubelet's root dir)."""
        self.cri = cri
        self.node_config_dir = node_config_dir
        self.builtins = builtins
        self.get_secret = get_secret
        self.record = record
        self.backoff = backoff or Backoff(10.0, 300.0)

    async def ensure(self, pod: Obj, container: Obj,
                     sandbox_config: api.PodSandboxConfig | None = None) -> str:
        """The image reference to create the container from; raises ImagePullError."""
        image = str(container.get("image") or "")
        if not valid_image(image):
            message = f'Failed to apply default image tag "{image}": couldn\'t parse image name'
            self.record(pod, "Warning", "InspectFailed", message)
            raise ImagePullError("InvalidImageName", message)
        policy = container.get("imagePullPolicy") or "IfNotPresent"
        try:
            present = await self.cri.image_status(image)
        except CRIError as err:
            raise ImagePullError("ErrImageInspect", f"Failed to inspect image {image!r}: {err.details}") from None
        if present is not None and policy != "Always":
            self.record(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine')
            return present.id or image
        if present is not None and any(image_id == present.id and name in present.repo_tags
                                       for name, image_id in self.builtins()):
            self.record(pod, "Normal", "Pulled",
                        f'Container image "{image}" already present on machine (a built-in image of this node: not pulled)')
            return present.id or image
        if present is None and policy == "Never":
            message = f'Container image "{image}" is not present with pull policy of Never'
            self.record(pod, "Warning", "ErrImageNeverPull", message)
            raise ImagePullError("ErrImageNeverPull", message)
        key = f"{(pod.get('metadata') or {}).get('uid', '')}_{image}"
        left = self.backoff.in_backoff_since_update(key)
        if left > 0:
            message = f'Back-off pulling image "{image}"'
            self.record(pod, "Normal", "BackOff", message)
            raise ImagePullError("ImagePullBackOff", message, retry_after=left)
        self.record(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        started = time.monotonic()
        try:
            ref = await self._pull(pod, image, sandbox_config)
        except CRIError as err:
            delay = self.backoff.next(key, self.backoff.clock())  # the clock the back-off is read with
            # The event names the image; the container's waiting message is the runtime's error
            # itself (evalCRIPullErr's fallback), both as the kubelet prints a gRPC error.
            self.record(pod, "Warning", "Failed", f'Failed to pull image "{image}": {err.go_error}')
            self.record(pod, "Warning", "Failed", "Error: ErrImagePull")
            raise ImagePullError("ErrImagePull", err.go_error, retry_after=delay) from None
        took = time.monotonic() - started
        size = ""
        try:
            status = await self.cri.image_status(image)
            if status is not None:
                size = f" Image size: {status.size} bytes."
        except CRIError:
            pass
        self.record(pod, "Normal", "Pulled",
                    f'Successfully pulled image "{image}" in {took:.3f}s ({took:.3f}s including waiting).{size}')
        return ref or image

    async def _pull(self, pod: Obj, image: str, sandbox_config: api.PodSandboxConfig | None) -> str:
        namespace = (pod.get("metadata") or {}).get("namespace", "")
        secrets = []
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            secret = await self.get_secret(namespace, ref.get("name", ""))
            if secret is not None:
                secrets.append(secret)
        auths = credentials_for(image, secrets) + credentials_for(image, node_pull_configs(self.node_config_dir))
        if not auths:
            return await self.cri.pull_image(image, None, sandbox_config)
        last: CRIError | None = None
        for auth in auths:
            try:
                return await self.cri.pull_image(image, auth, sandbox_config)
            except CRIError as err:
                last = err
        assert last is not None
        raise last


# ---- the built-in images ----

BUILTIN_RECORD = "imported-builtins"
"""In DATA/images: `NAME IMAGE_ID` per line, every built-in build this kubelet ever imported."""


def imported_builtins(directory: Path) -> set[tuple[str, str]]:
    """(name, image ID) of every built-in image imported into this node (DATA/images/imported-builtins)."""
    try:
        lines = (directory / BUILTIN_RECORD).read_text().splitlines()
    except FileNotFoundError:
        return set()
    return {(name, image_id) for name, _, image_id in (line.partition(" ") for line in lines) if image_id}


async def import_builtin_images(cri: CRIClient, socket: str, snapshotter: str | None, data_dir: Path, *,
                                system: bool = False) -> list[str]:
    """Imports, one by one, each built-in image (pause, busybox; with `system` instead, the
    kybernetes system image of `kybernetes.images.system`, built in the machine's cache when its
    inputs changed) the node should get; returns their names.

    A built-in is imported when the runtime has no image of its name, or when the image of that
    name is an older build of the built-in (one this kubelet imported before, as recorded in
    DATA/images/imported-builtins). Any other image of that name is the user's (`kyb image import`
    of their own busybox:1.36) and is never replaced.
    """
    from kybernetes.images.importer import import_images
    from kybernetes.images.oci import builtin_archives, images_dir
    from kybernetes.images.system import system_archive

    directory = images_dir(data_dir)
    if system:
        archives = [await asyncio.to_thread(system_archive)]
    else:
        archives = await asyncio.to_thread(builtin_archives, directory)
    ours = imported_builtins(directory)
    imported: list[str] = []
    for archive in archives:
        present = await cri.image_status(archive.name)
        if present is not None and (present.id == archive.image_id or (archive.name, present.id) not in ours):
            if present.id != archive.image_id:
                log.info("keeping %s (%s): not a kybernetes build of the built-in image", archive.name, present.id)
            continue
        with open(directory / BUILTIN_RECORD, "a") as record:  # before the import: a crash must not orphan it
            record.write(f"{archive.name} {archive.image_id}\n")
        imported += await import_images(socket, [archive.path], snapshotter=snapshotter)
    return imported
