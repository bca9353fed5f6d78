"""The kybernetes system image: this Python, the kybernetes package and its runtime dependencies.

`docker.io/kybernetes/system:<version>` runs the cluster's add-ons (the DNS server of
`kyb server`'s CoreDNS Deployment, and the add-ons later issues bring) from the very code that
runs the cluster, without a registry. Its entrypoint is `kyb`: a pod runs `kyb dns ...`.

What the one layer holds:

- the busybox rootfs of `oci.build_rootfs_layer` (`sh` and the applets, /etc basics), for
  `kubectl exec` and probes;
- this interpreter under /usr/local (`bin/python3.X`, `python3`, `python`) with its standard
  library, less what no server uses (test/, idlelib, tkinter, turtledemo, ensurepip, the
  static-library config dir) and every `__pycache__`;
- the kybernetes package (from the running tree) and the distributions its requirements name,
  walked through `importlib.metadata` (the `test` extra left out), in
  /usr/local/lib/python3.X/site-packages; kubernetes-validate keeps only the schema version
  kybernetes reads;
- the shared libraries `ldd` names for the interpreter and every extension module, each at the
  path `ldd` resolved it to (libpython sits where the interpreter's RUNPATH looks for it);
  every ELF file without its debug sections (`strip --strip-debug`: 46 of 159 MB);
- /usr/local/bin/kyb, the entrypoint.

Deterministic: entries sorted, the fixed time and owner of `oci`, an uncompressed layer (gzip
would cost most of the build for ~100 MB), so equal inputs give equal bytes and one image ID.
Built once per input change: `system_archive` compares a fingerprint of the inputs (every file's
path, size and mtime, the interpreter and distribution versions) with the one stored beside the
archive, and rebuilds only when they differ. The archive lives in a machine-wide cache
(`cache_dir()`), shared by every node of this machine, and is imported into each node's
containerd at start with the built-in images (`kybernetes.kubelet.images.import_builtin_images`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import io
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import tomllib
from collections.abc import Iterator, Set
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from packaging.requirements import Requirement

import kybernetes
from kybernetes.api.schema import K8S_SCHEMA_DIR
from kybernetes.images.oci import (
    BUSYBOX_APPLETS,
    BUSYBOX_BINARY,
    BuiltinArchive,
    _info,
    blob_path,
    build_rootfs_layer,
    image_config,
    image_manifest,
    oci_layout_members,
    sha256,
    write_archive,
)

SYSTEM_REPOSITORY = "docker.io/kybernetes/system"
PREFIX = "usr/local"
FORMAT = "2"
"""Bumped when the layout changes, so that a cached archive of the old layout is rebuilt."""

_STDLIB_EXCLUDED = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "site-packages", "__pycache__",
                    f"config-{sys.version_info.major}.{sys.version_info.minor}-{sys.implementation._multiarch}"}
_DYNLOAD_EXCLUDED = re.compile(r"^(_tkinter|_test\w*|_xxtestfuzz|xxlimited\w*|_ctypes_test|xxsubtype)[.]")
"""Extension modules of the excluded packages and CPython's own test modules (Tk alone pulls X11)."""
_PRUNED_DATA = {
    # 1.25 to 1.37 schemas, 70 MB; kybernetes reads one version.
    "kubernetes-validate": ("kubernetes_validate/kubernetes-json-schema/", f"kubernetes_validate/{K8S_SCHEMA_DIR}/"),
}


def version() -> str:
    try:
        return metadata.version("kybernetes")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def system_image_name() -> str:
    """The system image's reference: docker.io/kybernetes/system:<kybernetes version>."""
    return f"{SYSTEM_REPOSITORY}:{version()}"


def cache_dir() -> Path:
    """Where the archive is cached for the whole machine: /var/cache/kybernetes/images for root,
    $XDG_CACHE_HOME/kybernetes/images (~/.cache) for others; KYB_IMAGE_CACHE overrides both."""
    if os.environ.get("KYB_IMAGE_CACHE"):
        return Path(os.environ["KYB_IMAGE_CACHE"])
    if os.geteuid() == 0:
        return Path("/var/cache/kybernetes/images")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kybernetes" / "images"


# ---- the inputs ----


@dataclass(frozen=True)
class Entry:
    """One entry of the layer: a file copied from `source`, literal `data`, or a symlink."""

    source: Path | None = None
    data: bytes | None = None
    mode: int = 0o644
    link: str = ""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _own_requirements() -> list[str]:
    """kybernetes' requirements: its installed metadata's, and those of the source tree it runs
    from (an editable install's metadata is as old as its last `pip install`: a dependency added
    to pyproject.toml since would be missing from the image)."""
    reqs = list(metadata.distribution("kybernetes").requires or [])
    pyproject = Path(kybernetes.__file__).resolve().parents[2] / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text()).get("project") or {}
    except (OSError, tomllib.TOMLDecodeError):
        return reqs
    if project.get("name") == "kybernetes":
        reqs += [str(r) for r in project.get("dependencies") or []]
    return reqs


def runtime_distributions() -> list[metadata.Distribution]:
    """The distributions kybernetes requires at run time, transitively (no extras), itself excluded."""
    seen: dict[str, metadata.Distribution] = {}
    todo: list[str | None] = [None]
    while todo:
        name = todo.pop()
        for text in _own_requirements() if name is None else metadata.distribution(name).requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            if _norm(req.name) not in seen:
                seen[_norm(req.name)] = metadata.distribution(req.name)
                todo.append(req.name)
    return [seen[k] for k in sorted(seen)]


def _walk(root: Path, excluded: Set[str] = frozenset()) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in excluded and d != "__pycache__")
        for f in sorted(filenames):
            if not f.endswith(".pyc"):
                yield Path(dirpath) / f


def _python_entries(site: str) -> dict[str, Entry]:
    entries: dict[str, Entry] = {}
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in _walk(stdlib, _STDLIB_EXCLUDED):
        if path.parent.name == "lib-dynload" and _DYNLOAD_EXCLUDED.match(path.name):
            continue
        entries[f"{PREFIX}/lib/{ver}/{path.relative_to(stdlib)}"] = Entry(path, mode=_mode(path))
    interpreter = Path(sys.base_prefix) / "bin" / ver
    entries[f"{PREFIX}/bin/{ver}"] = Entry(interpreter.resolve(), mode=0o755)
    entries[f"{PREFIX}/bin/python3"] = Entry(link=ver)
    entries[f"{PREFIX}/bin/python"] = Entry(link=ver)
    package = Path(kybernetes.__file__).parent
    for path in _walk(package):
        entries[f"{site}/kybernetes/{path.relative_to(package)}"] = Entry(path, mode=_mode(path))
    own = metadata.distribution("kybernetes")
    meta = own.read_text("METADATA") or f"Metadata-Version: 2.1\nName: kybernetes\nVersion: {version()}\n"
    entries[f"{site}/kybernetes-{version()}.dist-info/METADATA"] = Entry(data=meta.encode())
    for dist in runtime_distributions():
        entries.update(_distribution_entries(dist, site))
    entries[f"{PREFIX}/bin/kyb"] = Entry(data=(
        f"#!/{PREFIX}/bin/{ver}\nimport sys\n\nfrom kybernetes.cli import main\n\nsys.exit(main())\n").encode(),
        mode=0o755)
    return entries


def _distribution_entries(dist: metadata.Distribution, site: str) -> dict[str, Entry]:
    pruned = _PRUNED_DATA.get(_norm(dist.metadata["Name"]))
    out: dict[str, Entry] = {}
    for file in dist.files or []:
        rel = file.as_posix()
        if rel.startswith("..") or "__pycache__" in file.parts or rel.endswith((".pyc", ".pth")):
            continue  # scripts outside site-packages, bytecode, path hooks
        if pruned is not None and rel.startswith(pruned[0]) and not rel.startswith(pruned[1]):
            continue
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            out[f"{site}/{rel}"] = Entry(path, mode=_mode(path))
    return out


def _mode(path: Path) -> int:
    return 0o755 if os.stat(path).st_mode & stat.S_IXUSR else 0o644


_LDD_LINE = re.compile(r"^\s*(?:\S+\s+=>\s+)?(/\S+)\s+\(0x[0-9a-f]+\)\s*$")


def shared_libraries(binaries: list[Path]) -> set[Path]:
    """Every library `ldd` resolves for `binaries` (the paths it prints, not their link targets)."""
    libs: set[Path] = set()
    for i in range(0, len(binaries), 64):
        out = subprocess.run(["ldd", *map(str, binaries[i:i + 64])], capture_output=True, text=True, timeout=120,
                             check=False).stdout
        for line in out.splitlines():
            m = _LDD_LINE.match(line)
            if m:
                libs.add(Path(m.group(1)))
    return libs


def _site_dirs() -> set[Path]:
    """The directories the Python entries are copied from (a library under one is copied already)."""
    dirs = {Path(sysconfig.get_paths()["stdlib"]).resolve(), Path(kybernetes.__file__).parent.resolve()}
    dirs |= {Path(str(d.locate_file(""))).resolve() for d in runtime_distributions()}
    return dirs


def python_entries() -> dict[str, Entry]:
    """The interpreter, the standard library, kybernetes and its distributions, by path in the image."""
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return _python_entries(f"{PREFIX}/lib/{ver}/site-packages")


def library_entries(entries: dict[str, Entry]) -> dict[str, Entry]:
    """The shared libraries the executables and extension modules among `entries` need, by path in
    the image (the path `ldd` printed); those bundled in site-packages (NAME.libs/, found through
    $ORIGIN) are there already and left out."""
    binaries = [e.source for name, e in entries.items()
                if e.source is not None and (name.endswith(".so") or ".so." in name or e.mode == 0o755)
                and name.startswith(PREFIX + "/") and not name.endswith(("/kyb", ".py"))]
    roots = _site_dirs()
    out: dict[str, Entry] = {}
    for lib in sorted(shared_libraries([b for b in binaries if b is not None])):
        real = lib.resolve()
        if any(real.is_relative_to(r) for r in roots):
            continue
        out[str(lib).lstrip("/")] = Entry(real, mode=0o755)
    return out


def fingerprint(entries: dict[str, Entry]) -> str:
    """What the build depends on, cheaply: each entry's path and its source's size and mtime (no
    file is read), the literal contents, the busybox binary, the layout version."""
    h = hashlib.sha256(f"{FORMAT}\n{sys.version}\n{version()}\n".encode())
    for name in sorted(entries):
        e = entries[name]
        if e.source is not None:
            st = os.stat(e.source)
            h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0{e.mode}\n".encode())
        else:
            h.update(f"{name}\0{e.link}\0{e.mode}\n".encode() + (e.data or b""))
    for tool in (BUSYBOX_BINARY, shutil.which("strip")):
        found = os.stat(tool) if tool else None
        h.update(f"{tool}\0{found.st_size if found else 0}\0{found.st_mtime_ns if found else 0}\n".encode())
    return h.hexdigest()


def _is_elf(name: str) -> bool:
    return name.endswith(".so") or ".so." in name or re.search(r"/bin/python\d[.]\d+$", name) is not None


def strip_debug_info(entries: dict[str, Entry], directory: Path) -> dict[str, Entry]:
    """`entries` with each shared object and the interpreter replaced by a copy in `directory`
    without debug sections (`strip --strip-debug`; symbols stay): a quarter less to write and import
    (libpython alone carries 16 MB of DWARF). Unchanged where `strip` is missing or fails."""
    strip = shutil.which("strip")
    if strip is None:
        return entries
    out = dict(entries)
    for i, (name, e) in enumerate(sorted(entries.items())):
        if e.source is None or not _is_elf(name):
            continue
        target = directory / f"{i}.elf"
        done = subprocess.run([strip, "--strip-debug", "-o", str(target), str(e.source)], capture_output=True,
                              timeout=120, check=False)
        if done.returncode == 0:
            out[name] = Entry(target, mode=e.mode)
    return out


# ---- the build ----


class _Hashing(io.RawIOBase):
    """A write-through file that hashes what passes (the layer's diff ID, without reading it again)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.hash.update(data)
        self.size += len(data)
        return self.out.write(data)


def write_layer(out: BinaryIO, entries: dict[str, Entry]) -> None:
    """The layer tar: the busybox rootfs, then `entries`, parents created, all sorted by path."""
    members: dict[str, tuple[tarfile.TarInfo, bytes | Path | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(build_rootfs_layer(applets=BUSYBOX_APPLETS))) as base:
        for info in base.getmembers():
            data = base.extractfile(info).read() if info.isfile() else None  # type: ignore[union-attr]
            members[info.name.rstrip("/")] = (info, data)
    for name, e in entries.items():
        parts = name.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            members.setdefault(d, (_info(d + "/", mode=0o755, kind=tarfile.DIRTYPE), None))
        if e.link:
            members[name] = (_info(name, mode=0o777, kind=tarfile.SYMTYPE, linkname=e.link), None)
        else:
            members[name] = (_info(name, mode=e.mode, kind=tarfile.REGTYPE), e.source or e.data)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:  # type: ignore[arg-type]
        for name in sorted(members):
            info, content = members[name]
            if isinstance(content, Path):
                info.size = os.stat(content).st_size
                with open(content, "rb") as f:
                    tar.addfile(info, f)
            elif content is not None:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)


def build_system_archive(path: Path, entries: dict[str, Entry] | None = None, name: str | None = None) -> str:
    """Writes the system image archive to `path` (via a temporary file); returns its image ID."""
    name = name or system_image_name()
    if entries is None:
        entries = python_entries()
        entries.update(library_entries(entries))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".build-") as tmp:
        (Path(tmp) / "stripped").mkdir()
        entries = strip_debug_info(entries, Path(tmp) / "stripped")
        layer_path = Path(tmp) / "layer.tar"
        with open(layer_path, "wb") as raw:
            hashing = _Hashing(raw)
            write_layer(hashing, entries)  # type: ignore[arg-type]
        diff_id = "sha256:" + hashing.hash.hexdigest()
        config = image_config(diff_id, entrypoint=[f"/{PREFIX}/bin/kyb"],
                              labels={"org.opencontainers.image.title": "kybernetes system image",
                                      "org.opencontainers.image.version": version()})
        manifest = image_manifest(config, diff_id, hashing.size, compressed=False)
        members: dict[str, bytes | Path] = dict(oci_layout_members(name, manifest))
        members[blob_path(diff_id)] = layer_path
        members[blob_path(sha256(config))] = config
        members[blob_path(sha256(manifest))] = manifest
        archive = Path(tmp) / "image.tar"
        with open(archive, "wb") as out:
            write_archive(out, members)
        archive.replace(path)
    return sha256(config)


def _stat_print(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


def system_archive(directory: Path | None = None) -> BuiltinArchive:
    """The system image archive in `directory` (default `cache_dir()`), built only when the
    inputs' fingerprint is not the cached build's; the least recently used builds beyond
    KEEP_BUILDS are removed.

    The fingerprint stats the Python entries (no ldd, no file read); the shared libraries a
    build found are listed in its record, `NAME.id` (image ID, their stat fingerprint, their
    paths), and stat-checked too, so an upgraded libc rebuilds as well."""
    directory = directory or cache_dir()
    entries = python_entries()
    name = system_image_name()
    key = hashlib.sha256((fingerprint(entries) + name).encode()).hexdigest()[:20]
    path = directory / f"system-{key}.tar"
    record = directory / f"system-{key}.id"
    if path.exists() and record.exists():
        image_id, libs_print, *libs = record.read_text().splitlines()
        if _stat_print([Path(p) for p in libs]) == libs_print:
            os.utime(record)  # recently used: kept by _prune
            return BuiltinArchive(name, path, image_id)
    libraries = library_entries(entries)
    image_id = build_system_archive(path, {**entries, **libraries}, name)
    sources = sorted(str(e.source) for e in libraries.values())
    tmp = record.with_suffix(".tmp")
    tmp.write_text("\n".join([image_id, _stat_print([Path(p) for p in sources]), *sources]) + "\n")
    tmp.replace(record)
    _prune(directory)
    return BuiltinArchive(name, path, image_id)


KEEP_BUILDS = 3


def _prune(directory: Path) -> None:
    """Removes all but the KEEP_BUILDS most recently used builds: several trees (or versions) on one
    machine each keep theirs, and a build another kubelet is importing right now is not pulled away."""
    records = sorted(directory.glob("system-*.id"), key=lambda p: p.stat().st_mtime, reverse=True)
    for record in records[KEEP_BUILDS:]:
        record.with_suffix(".tar").unlink(missing_ok=True)
        record.unlink(missing_ok=True)


__all__ = [
    "SYSTEM_REPOSITORY",
    "Entry",
    "build_system_archive",
    "cache_dir",
    "fingerprint",
    "library_entries",
    "python_entries",
    "runtime_distributions",
    "shared_libraries",
    "strip_debug_info",
    "system_archive",
    "system_image_name",
    "write_layer",
]
