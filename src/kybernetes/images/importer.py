"""Getting image archives into a node's containerd, or into a registry.

`import_images` is `kind load` for kybernetes: it runs `ctr images import` against a containerd
socket in the CRI plugin's namespace (k8s.io), so the kubelet finds the images by the names the
archives carry. `ctr` reads both OCI image layouts (names from the `io.containerd.image.name`
annotation) and `docker save` archives (names from RepoTags), and unpacks each image into the
snapshotter the CRI plugin uses, so a container can start from it without a pull.

`push_to_registry` uploads an OCI-layout archive to a registry with the Docker Registry HTTP API v2
(monolithic blob uploads, then the manifest), which is how the tests prove that the kubelet's
PullImage path works against a real registry (Debian's docker-registry on loopback).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tarfile
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urljoin

import aiohttp

from kybernetes.aiorun import wait_for

CRI_NAMESPACE = "k8s.io"


class ImportError_(RuntimeError):
    """`ctr images import` failed."""


async def import_images(socket: str, tars: Sequence[Path], namespace: str = CRI_NAMESPACE, *,
                        snapshotter: str | None = None, ctr: str = "ctr",
                        timeout: float = 300.0) -> list[str]:
    """Imports each archive into the containerd at `socket`; returns the image names imported.

    `snapshotter` must be the CRI plugin's (overlayfs, or native where overlay is unusable) so the
    images are unpacked where containers will be created from them.
    """
    binary = shutil.which(ctr) or ctr
    names: list[str] = []
    for tar in tars:
        argv = [binary, "--address", socket.removeprefix("unix://"), "--namespace", namespace,
                "images", "import", "--all-platforms"]
        if snapshotter:
            argv += ["--snapshotter", snapshotter]
        argv.append(str(tar))
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ImportError_(f"importing {tar}: timed out after {timeout}s") from None
        except asyncio.CancelledError:  # the caller stops (a kubelet shutting down): no ctr left behind
            if proc.returncode is None:
                proc.kill()
                await asyncio.shield(proc.wait())
            raise
        if proc.returncode != 0:
            raise ImportError_(f"importing {tar}: ctr exited {proc.returncode}: {err.decode(errors='replace').strip()}")
        # ctr prints "unpacking NAME (sha256:...)...done" per image.
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("unpacking "):
                names.append(line.split()[1])
    return names


# ---- registry push ----


def _read_oci_layout(tar_path: Path) -> tuple[dict[str, bytes], bytes, str]:
    """(blobs by digest, manifest bytes, manifest media type) of the first image in an OCI layout tar."""
    blobs: dict[str, bytes] = {}
    index: dict[str, object] | None = None
    with tarfile.open(tar_path) as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            f = tar.extractfile(member)
            if f is None:
                continue
            name = member.name.removeprefix("./")
            if name == "index.json":
                index = json.loads(f.read())
            elif name.startswith("blobs/"):
                algorithm, hexdigest = name.split("/")[1:3]
                blobs[f"{algorithm}:{hexdigest}"] = f.read()
    if index is None:
        raise ValueError(f"{tar_path} is not an OCI image layout (no index.json)")
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        raise ValueError(f"{tar_path}: index.json lists no manifest")
    descriptor = manifests[0]
    manifest = blobs[descriptor["digest"]]
    return blobs, manifest, descriptor.get("mediaType", "application/vnd.oci.image.manifest.v1+json")


async def push_to_registry(tar: Path, registry_url: str, name: str, *,
                           session: aiohttp.ClientSession | None = None) -> str:
    """Pushes the image in an OCI layout archive to `registry_url` (e.g. http://127.0.0.1:5000) as
    `name` ("repo/path:tag"); returns the manifest digest the registry reports.
    """
    repo, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, ":", "latest")
    blobs, manifest_bytes, media_type = _read_oci_layout(Path(tar))
    manifest = json.loads(manifest_bytes)
    base = registry_url.rstrip("/") + "/"
    own = session is None
    http = session or aiohttp.ClientSession()
    try:
        for descriptor in [manifest["config"], *manifest["layers"]]:
            digest = descriptor["digest"]
            async with http.head(urljoin(base, f"v2/{repo}/blobs/{digest}")) as r:
                if r.status == 200:
                    continue
            async with http.post(urljoin(base, f"v2/{repo}/blobs/uploads/")) as r:
                if r.status != 202:
                    raise RuntimeError(f"registry refused upload of {digest}: {r.status} {await r.text()}")
                location = urljoin(base, r.headers["Location"])
            sep = "&" if "?" in location else "?"
            async with http.put(f"{location}{sep}digest={digest}", data=blobs[digest],
                                headers={"Content-Type": "application/octet-stream"}) as r:
                if r.status != 201:
                    raise RuntimeError(f"registry rejected blob {digest}: {r.status} {await r.text()}")
        async with http.put(urljoin(base, f"v2/{repo}/manifests/{tag}"), data=manifest_bytes,
                            headers={"Content-Type": media_type}) as r:
            if r.status != 201:
                raise RuntimeError(f"registry rejected manifest: {r.status} {await r.text()}")
            return r.headers.get("Docker-Content-Digest", "")
    finally:
        if own:
            await http.close()
