"""Facts about the machine the kubelet runs on, read from the local kernel and files only.

What cAdvisor and the kubelet's node status setters find out about a host, without cAdvisor:

- resources: online CPUs, ``MemTotal`` from ``/proc/meminfo``, and the size of the filesystem that
  holds the kubelet's data directory (the node's ``ephemeral-storage``);
- identity: ``/etc/machine-id``, the DMI product UUID (readable by root only; the machine id
  stands in for it elsewhere), the boot id from ``/proc/sys/kernel/random/boot_id``;
- software: kernel release, ``PRETTY_NAME`` from ``/etc/os-release``, the Go name of the
  architecture (``amd64``, ``arm64``...);
- addresses: the IPv4 address of the interface that carries the default route (found in
  ``/proc/net/route`` and asked of the kernel with ``SIOCGIFADDR``), else of any non-loopback
  interface, else ``127.0.0.1``.

Nothing here sends a packet: the usual trick of "connecting" a UDP socket to a public address to
learn the outgoing interface is avoided on purpose, so the kubelet never contacts other hosts just
to describe itself. Every reader is cheap and tolerant: a missing file yields a fallback, not an
exception, because a node that cannot read its boot id should still register.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import socket
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

_SIOCGIFADDR = 0x8915

_GOARCH = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
    "armv6l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x",
    "riscv64": "riscv64", "mips64": "mips64",
}


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def cpu_count() -> int:
    """CPUs this process may run on (what cAdvisor reports as cores for a cgroup-v1 root)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def memory_bytes() -> int:
    """Total memory (``MemTotal``) in bytes."""
    return _meminfo("MemTotal")


def memory_available_bytes() -> int:
    """``MemAvailable`` in bytes (what the eviction manager calls ``memory.available``)."""
    return _meminfo("MemAvailable")


def _meminfo(field: str) -> int:
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        if key == field:
            parts = rest.split()
            value = int(parts[0])
            return value * 1024 if len(parts) > 1 and parts[1].lower() == "kb" else value
    return 0


def filesystem_bytes(path: Path) -> tuple[int, int]:
    """(capacity, available) bytes of the filesystem holding ``path`` (its nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def boot_id() -> str:
    return _read("/proc/sys/kernel/random/boot_id")


def machine_id() -> str:
    return _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")


def system_uuid() -> str:
    """The DMI product UUID (as the kubelet reports it), or one derived from the machine id."""
    found = _read("/sys/class/dmi/id/product_uuid")
    if found:
        return found.upper()
    mid = machine_id()
    with contextlib.suppress(ValueError):
        return str(uuid.UUID(mid)).upper()
    return str(uuid.uuid5(uuid.NAMESPACE_OID, mid or socket.gethostname())).upper()


def kernel_version() -> str:
    return os.uname().release


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"')
    return "Linux"


def architecture() -> str:
    machine = platform.machine()
    return _GOARCH.get(machine, machine.lower())


def operating_system() -> str:
    return platform.system().lower() or "linux"


def hostname() -> str:
    """The host name in the form the kubelet uses for its default node name (lower case)."""
    return socket.gethostname().split(".")[0].lower()


def _interface_ipv4(name: str) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            raw = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(raw[20:24])


def default_route_interface() -> str | None:
    """The interface of the IPv4 default route with the lowest metric."""
    best: tuple[int, str] | None = None
    for line in _read("/proc/net/route").splitlines()[1:]:
        fields = line.split()
        # Iface Destination Gateway Flags RefCnt Use Metric Mask ...: a default route is 0/0 and up.
        if len(fields) < 8 or fields[1] != "00000000" or fields[7] != "00000000" or not int(fields[3], 16) & 1:
            continue
        metric = int(fields[6])
        if best is None or metric < best[0]:
            best = (metric, fields[0])
    return best[1] if best else None


def node_ip() -> str:
    """The address other nodes would reach this one at (never found by contacting anybody)."""
    iface = default_route_interface()
    if iface:
        found = _interface_ipv4(iface)
        if found:
            return found
    for _, name in socket.if_nameindex():
        if name == "lo":
            continue
        found = _interface_ipv4(name)
        if found and not found.startswith("127."):
            return found
    return "127.0.0.1"


@dataclass(frozen=True)
class MachineInfo:
    """A snapshot of everything the node status reports about the machine."""

    cpu: int
    memory: int
    ephemeral_storage: int
    machine_id: str
    system_uuid: str
    boot_id: str
    kernel_version: str
    os_image: str
    operating_system: str
    architecture: str
    hostname: str


def machine_info(data_dir: Path) -> MachineInfo:
    """Reads the machine's facts; ``data_dir`` decides which filesystem is ephemeral storage."""
    capacity, _ = filesystem_bytes(data_dir)
    return MachineInfo(
        cpu=cpu_count(), memory=memory_bytes(), ephemeral_storage=capacity, machine_id=machine_id(),
        system_uuid=system_uuid(), boot_id=boot_id(), kernel_version=kernel_version(), os_image=os_image(),
        operating_system=operating_system(), architecture=architecture(), hostname=hostname(),
    )
