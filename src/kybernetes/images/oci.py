"""Container images built from Debian's busybox-static, without a registry or Docker.

These machines reach package registries but no container registry, so kybernetes writes its own
small images: one layer holding `/bin/busybox` plus a symlink per applet (a script for the applets
`applets.APPLET_WRAPPERS` fixes, such as wget's -T), a minimal `/etc`
(passwd, group, nsswitch) and the usual empty directories. The archive is an OCI image layout
(`oci-layout`, `index.json`, `blobs/sha256/...`) in a tar, which `ctr images import` reads and
which `push_to_registry` (kybernetes.images.importer) can upload to a registry; `format="docker"`
writes the `docker save` layout (`manifest.json` with RepoTags) instead.

Everything is deterministic: fixed mtimes, numeric owners, sorted entries, gzip without a name or
timestamp. The same inputs give the same bytes and therefore the same image digest, so re-importing
an image on every start costs nothing and the kubelet sees a stable image ID.

The project's images:

- `PAUSE_IMAGE` (docker.io/kybernetes/pause:3.10): the pod sandbox. PID 1 is a busybox shell that
  traps TERM/INT and exits 0, and otherwise sleeps in `wait` (which reaps orphaned zombies too, as
  the real pause does when the pod shares its PID namespace);
- `BUSYBOX_IMAGE` (docker.io/library/busybox:1.36): the test workload image, `CMD ["sh"]`, also
  named `BUSYBOX_LATEST` (busybox:latest, what `--image=busybox` means).

`ensure_builtin_images(data_dir)` writes them under `images_dir(data_dir)` (rewriting only when the
content changed) and returns their paths.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import platform
import subprocess
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from kybernetes.images.applets import APPLET_WRAPPERS

BUSYBOX_BINARY = Path("/bin/busybox")

PAUSE_IMAGE = "docker.io/kybernetes/pause:3.10"
BUSYBOX_IMAGE = "docker.io/library/busybox:1.36"
BUSYBOX_LATEST = "docker.io/library/busybox:latest"
"""The same busybox image under the name `--image=busybox` means (the documentation's
`kubectl run -it --rm --image=busybox -- nslookup kubernetes.default`): no registry is reachable."""

# A fixed timestamp (2024-01-01T00:00:00Z) for every file and for the config's "created", so that
# digests do not depend on when or where the image was built.
EPOCH = 1704067200
CREATED = "2024-01-01T00:00:00Z"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The applets the test image links (those the installed busybox lacks are skipped).
BUSYBOX_APPLETS: tuple[str, ...] = (
    "sh", "ash", "sleep", "echo", "cat", "ls", "wget", "httpd", "nc", "env", "date", "true",
    "false", "kill", "ps", "id", "mount", "umount", "grep", "touch", "mkdir", "rm", "dd", "head",
    "tail", "seq", "yes", "printf", "test", "[", "hostname", "ip", "ping", "wc", "cp", "mv",
    "ln", "chmod", "chown", "df", "du", "find", "sed", "awk", "tr", "cut", "sort", "uniq", "xargs",
    "basename", "dirname", "stat", "uname", "whoami", "nslookup", "ifconfig", "netstat", "timeout",
    "top", "free", "nproc", "usleep", "base64", "md5sum", "sha256sum", "tee", "mktemp", "readlink",
    "realpath", "pwd", "expr", "vi", "less", "more", "tar", "gzip", "gunzip", "zcat", "which",
    "pidof", "pkill", "pgrep", "killall", "hexdump", "od", "nohup", "sync", "watch", "logger",
    "mkfifo", "rmdir", "truncate", "fold", "rev", "diff", "cmp", "arping", "traceroute",
    "telnet", "udhcpc", "init", "halt", "reboot", "poweroff", "su", "getty",
)
PAUSE_APPLETS: tuple[str, ...] = ("sh", "sleep")

# PID 1 of every pod sandbox: exits 0 on TERM/INT (PID 1 ignores signals it has no handler for, so
# the trap is what makes it stoppable), otherwise waits; `wait` returns at once when a trapped
# signal arrives.
PAUSE_SCRIPT = 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait; done'

_PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
)
_GROUP = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def go_arch() -> str:
    """This machine's architecture as OCI names it (the image must match or containerd skips it)."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: Any) -> bytes:
    # Canonical JSON: sorted keys, no spaces, so equal content has one digest.
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class BuiltImage:
    """What `build_image` made: the archive bytes and the digests that name the image."""

    name: str
    archive: bytes
    manifest_digest: str
    config_digest: str
    layer_digest: str
    diff_id: str


def _info(name: str, *, mode: int, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    """A tar header with the fixed time and owner every image entry has."""
    info = tarfile.TarInfo(name)
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = mode
    info.type = kind
    info.linkname = linkname
    return info


def _add(tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, linkname: str = "") -> None:
    info = _info(name, mode=mode, kind=kind, linkname=linkname)
    if data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


@functools.cache
def _busybox_applets(busybox: Path) -> frozenset[str]:
    """The applets compiled into `busybox` (empty if it cannot say), so no symlink dangles."""
    try:
        out = subprocess.run([str(busybox), "--list"], capture_output=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(out.stdout.decode().split())


def build_rootfs_layer(*, applets: Iterable[str], extra_files: Mapping[str, bytes] | None = None,
                       busybox: Path = BUSYBOX_BINARY) -> bytes:
    """One uncompressed layer tar: busybox, its applet symlinks, /etc basics and `extra_files`.

    `extra_files` maps absolute paths in the image to contents (mode 0755 when the path is under a
    bin directory, else 0644); their parent directories are created.
    """
    binary = busybox.read_bytes()
    available = _busybox_applets(busybox)
    dirs = {"bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr", "usr/bin", "usr/sbin",
            "sbin", "var", "var/run", "var/log", "var/www"}
    files: dict[str, tuple[bytes, int]] = {
        "bin/busybox": (binary, 0o755),
        "etc/passwd": (_PASSWD.encode(), 0o644),
        "etc/group": (_GROUP.encode(), 0o644),
        "etc/nsswitch.conf": (b"hosts: files dns\n", 0o644),
    }
    for path, content in (extra_files or {}).items():
        rel = path.lstrip("/")
        parts = rel.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
        executable = len(parts) > 1 and parts[-2] in ("bin", "sbin")
        files[rel] = (content, 0o755 if executable else 0o644)
    wanted = [a for a in applets if a != "busybox" and (not available or a in available)]
    for applet in wanted:
        # Applets Debian's build gets wrong are scripts that fix their arguments (see applets.py).
        if applet in APPLET_WRAPPERS and f"bin/{applet}" not in files:
            files[f"bin/{applet}"] = (APPLET_WRAPPERS[applet], 0o755)
    links = {f"bin/{a}": "busybox" for a in wanted if f"bin/{a}" not in files}

    out = io.BytesIO()
    # GNU format: no pax headers with per-build values (pax would add mtimes with fractions).
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        entries: list[tuple[str, str]] = [(d, "dir") for d in dirs]
        entries += [(f, "file") for f in files] + [(link, "link") for link in links]
        for name, kind in sorted(entries):
            if kind == "dir":
                mode = 0o1777 if name in ("tmp", "var/tmp") else (0o700 if name == "root" else 0o755)
                _add(tar, name + "/", mode=mode, kind=tarfile.DIRTYPE)
            elif kind == "file":
                data, mode = files[name]
                _add(tar, name, data=data, mode=mode)
            else:
                _add(tar, name, mode=0o777, kind=tarfile.SYMTYPE, linkname=links[name])
    return out.getvalue()


def _split_name(name: str) -> tuple[str, str]:
    """("repo", "tag") of a reference; the tag defaults to latest."""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = name.rsplit(":", 1)
        return repo, tag
    return name, "latest"


def image_config(diff_id: str, *, entrypoint: Sequence[str] | None = None, cmd: Sequence[str] | None = None,
                 env: Mapping[str, str] | None = None, workdir: str | None = None,
                 labels: Mapping[str, str] | None = None) -> bytes:
    """The image config (canonical JSON) of a one-layer image whose uncompressed layer is `diff_id`."""
    environment = {"PATH": DEFAULT_PATH, **(env or {})}
    config: dict[str, Any] = {
        "Env": [f"{k}={v}" for k, v in environment.items()],
    }
    if entrypoint:
        config["Entrypoint"] = list(entrypoint)
    if cmd:
        config["Cmd"] = list(cmd)
    if workdir:
        config["WorkingDir"] = workdir
    if labels:
        config["Labels"] = dict(labels)
    return _json({
        "architecture": go_arch(),
        "os": "linux",
        "created": CREATED,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": CREATED, "created_by": "kybernetes.images.oci"}],
    })


def image_manifest(config_json: bytes, blob_digest: str, blob_size: int, *, compressed: bool) -> bytes:
    """The OCI manifest (canonical JSON) of `config_json` and one layer blob."""
    return _json({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": sha256(config_json), "size": len(config_json)},
        "layers": [{"mediaType": MEDIA_LAYER_GZIP if compressed else MEDIA_LAYER, "digest": blob_digest,
                    "size": blob_size}],
    })


def oci_layout_members(name: str, manifest_json: bytes) -> dict[str, bytes]:
    """`oci-layout` and `index.json` of an OCI image layout holding one image named `name`."""
    _, tag = _split_name(name)
    index = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": sha256(manifest_json),
            "size": len(manifest_json),
            # containerd names the imported image after this annotation; the OCI one is
            # the tag alone, for other tools.
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": tag},
            "platform": {"architecture": go_arch(), "os": "linux"},
        }],
    }
    return {"oci-layout": _json({"imageLayoutVersion": "1.0.0"}), "index.json": _json(index)}


def blob_path(digest: str) -> str:
    """Where an OCI image layout keeps the blob of `digest`."""
    return "blobs/sha256/" + digest.split(":", 1)[1]


def write_archive(out: BinaryIO, members: Mapping[str, bytes | Path]) -> None:
    """An image archive (tar) of `members`, deterministically: their parent directories first, then
    the members in sorted order; a Path member is streamed from that file (a large layer blob)."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs = {"/".join(m.split("/")[:i]) for m in members for i in range(1, m.count("/") + 1)}
        for d in sorted(dirs):
            _add(tar, d + "/", mode=0o755, kind=tarfile.DIRTYPE)
        for member in sorted(members):
            content = members[member]
            if isinstance(content, Path):
                info = _info(member, mode=0o644, kind=tarfile.REGTYPE)
                info.size = content.stat().st_size
                with open(content, "rb") as f:
                    tar.addfile(info, f)
            else:
                _add(tar, member, data=content)


def build_image(name: str, layer: bytes, *, entrypoint: Sequence[str] | None = None,
                cmd: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
                workdir: str | None = None, compress: bool = False,
                format: Literal["oci", "docker"] = "oci", labels: Mapping[str, str] | None = None,
                ) -> BuiltImage:
    """Wraps one layer into an image archive named `name` (a full reference, e.g. docker.io/x/y:1)."""
    diff_id = sha256(layer)
    blob = gzip.compress(layer, compresslevel=6, mtime=0) if compress else layer
    config_json = image_config(diff_id, entrypoint=entrypoint, cmd=cmd, env=env, workdir=workdir, labels=labels)
    manifest_json = image_manifest(config_json, sha256(blob), len(blob), compressed=compress)
    _, tag = _split_name(name)

    members: dict[str, bytes | Path] = {}
    if format == "oci":
        members.update(oci_layout_members(name, manifest_json))
        for data in (blob, config_json, manifest_json):
            members[blob_path(sha256(data))] = data
    else:
        # `docker save`: a config file, a directory per layer, manifest.json with RepoTags.
        config_name = sha256(config_json).split(":", 1)[1] + ".json"
        layer_name = diff_id.split(":", 1)[1] + "/layer.tar"
        members[config_name] = config_json
        members[layer_name] = blob
        members["manifest.json"] = _json([
            {"Config": config_name, "RepoTags": [name], "Layers": [layer_name]}])
        members["repositories"] = _json({_split_name(name)[0]: {tag: diff_id.split(":", 1)[1]}})

    out = io.BytesIO()
    write_archive(out, members)
    return BuiltImage(name=name, archive=out.getvalue(), manifest_digest=sha256(manifest_json),
                      config_digest=sha256(config_json), layer_digest=sha256(blob), diff_id=diff_id)


def build_busybox_image(name: str, *, applets: Iterable[str] = BUSYBOX_APPLETS,
                        entrypoint: Sequence[str] | None = None, cmd: Sequence[str] | None = None,
                        env: Mapping[str, str] | None = None, workdir: str | None = None,
                        extra_files: Mapping[str, bytes] | None = None, compress: bool = False,
                        format: Literal["oci", "docker"] = "oci") -> bytes:
    """An image archive (OCI layout tar by default) of busybox named `name`; returns its bytes."""
    layer = build_rootfs_layer(applets=applets, extra_files=extra_files)
    return build_image(name, layer, entrypoint=entrypoint, cmd=cmd, env=env, workdir=workdir,
                       compress=compress, format=format).archive


def _pause_image(name: str = PAUSE_IMAGE) -> BuiltImage:
    layer = build_rootfs_layer(applets=PAUSE_APPLETS)
    return build_image(name, layer, entrypoint=["/bin/sh", "-c", PAUSE_SCRIPT])


def _test_image(name: str = BUSYBOX_IMAGE) -> BuiltImage:
    return build_image(name, build_rootfs_layer(applets=BUSYBOX_APPLETS), cmd=["sh"])


def build_pause_image(name: str = PAUSE_IMAGE) -> bytes:
    return _pause_image(name).archive


def build_test_image(name: str = BUSYBOX_IMAGE) -> bytes:
    return _test_image(name).archive


def images_dir(data_dir: Path) -> Path:
    """Where the built-in image archives of a data directory are cached."""
    return Path(data_dir) / "images"


BUILTIN_IMAGES: dict[str, str] = {
    "pause.tar": PAUSE_IMAGE,
    "busybox.tar": BUSYBOX_IMAGE,
    "busybox-latest.tar": BUSYBOX_LATEST,
}


@dataclass(frozen=True)
class BuiltinArchive:
    """A built-in image written to disk: its name, archive, and the ID containerd gives it."""

    name: str
    path: Path
    image_id: str  # the config digest, which is what CRI reports as the image's ID


def builtin_archives(directory: Path) -> list[BuiltinArchive]:
    """Writes the built-in images into `directory`; a file is rewritten only if its bytes differ."""
    directory.mkdir(parents=True, exist_ok=True)
    builders = {PAUSE_IMAGE: _pause_image, BUSYBOX_IMAGE: _test_image, BUSYBOX_LATEST: _test_image}
    out = []
    for filename, name in BUILTIN_IMAGES.items():
        image = builders[name](name)
        path = directory / filename
        if not path.exists() or path.read_bytes() != image.archive:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(image.archive)
            tmp.replace(path)
        out.append(BuiltinArchive(name, path, image.config_digest))
    return out


def write_builtin_images(directory: Path) -> list[Path]:
    """The paths of `builtin_archives(directory)`."""
    return [archive.path for archive in builtin_archives(directory)]


def ensure_builtin_images(data_dir: Path) -> list[Path]:
    """The built-in image archives of `data_dir`, built if missing or stale."""
    return write_builtin_images(images_dir(data_dir))
