"""Network namespaces as machines, on a test bridge of the host: the multi-machine tests' harness.

::

    host:  bridge kybtN (10.N.0.1/24)
             |-- veth kybtNa -- netns kybtN-a: eth0 10.N.0.2
             |-- veth kybtNb -- netns kybtN-b: eth0 10.N.0.3
             `-- ...

Shared by tests/network (three agents of one server on the host) and tests/ha (three servers).
Guarantees:

- :func:`free_octets` finds second octets N whose 10.N.0.0/16 is on no route or address of this
  machine and whose bridge name ``kybtN`` is free, from a start derived from the PID: concurrent
  runs and other clusters here never share an address, and no test traffic leaves the bridge.
- :func:`make_network` creates the bridge, one namespace per :class:`Machine` with a veth on the
  bridge (``eth0``, its address, ``lo`` up); :func:`remove_network` deletes them (safe after a
  partial start). Deleting a namespace deletes what was made inside it (links, routes, nftables
  tables).
- :meth:`Machine.enter` is the argv prefix that runs a command in the machine: ``nsenter
  --net=NETNS unshare --mount --propagation slave`` with the namespace's own sysfs bound over
  ``/sys/class/net`` and ``/sys/devices/virtual/net``. (``ip netns exec`` remounts all of ``/sys``,
  which hides ``/sys/fs/cgroup`` and so every cgroup from runc.) Mounts made by what runs there (a
  containerd's rootfs overlays, pods' network namespace files) stay in that mount namespace.
- :meth:`Machine.processes` lists the PIDs in the machine's network namespace, so that a test can
  pull a machine's plug (:meth:`Machine.kill_all`: SIGKILL to each, by PID) and teardown can find
  anything left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

# Run the command with the namespace's own network devices in /sys (see the module doc).
ENTER_SCRIPT = ('set -e; mount -t sysfs sysfs "$0"; mount --bind "$0/class/net" /sys/class/net; '
                'mount --bind "$0/devices/virtual/net" /sys/devices/virtual/net; exec "$@"')


def require_root(what: str, binaries: tuple[str, ...] = ("nsenter", "unshare", "nft")) -> None:
    """Skip (outside CI) or fail (on CI) unless this runs as root with ``binaries`` installed;
    ``what`` names the tests in the message."""
    missing = [b for b in binaries if shutil.which(b) is None]
    if os.geteuid() != 0:
        missing.insert(0, "root")
    if missing:
        reason = f"{what} need " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def free_octets(count: int) -> list[int]:
    """``count`` second octets N, each with 10.N.0.0/16 on no route or address of this machine, and
    no link named kybtN (the test bridge); searched from a start derived from the PID."""
    used = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    used += subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    start = 100 + os.getpid() % 50
    found = [n for n in [*range(start, 200), *range(100, start)]
             if n != 88 and f"10.{n}." not in used and f"kybt{n}" not in links and f"kybt{n}:" not in links]
    if len(found) < count:
        raise RuntimeError("no free 10.N.0.0/16 networks between 10.100 and 10.199")
    return found[:count]


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


@dataclass
class Machine:
    """One machine: a network namespace with a veth on the test bridge."""

    name: str
    netns: str
    veth: str
    address: str

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A short command in the machine's network namespace."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], capture_output=True, text=True,
                              timeout=30, check=check)

    def enter(self, sysfs: Path) -> list[str]:
        """The argv prefix that runs a long-lived command in the machine (see the module doc);
        ``sysfs`` is an empty directory of the machine's for its sysfs mount."""
        sysfs.mkdir(parents=True, exist_ok=True)
        return ["nsenter", f"--net=/var/run/netns/{self.netns}", "unshare", "--mount", "--propagation", "slave",
                "sh", "-c", ENTER_SCRIPT, str(sysfs)]

    def processes(self) -> list[int]:
        """The PIDs of every process in this machine's network namespace."""
        try:
            ns = os.stat(f"/var/run/netns/{self.netns}")
        except OSError:
            return []
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    st = os.stat(entry / "ns" / "net")
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == (ns.st_dev, ns.st_ino):
                    found.append(int(entry.name))
        return found

    def kill_all(self) -> list[int]:
        """SIGKILL every process of the machine, by PID (the machine loses power); their PIDs."""
        pids = self.processes()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids


def make_network(bridge: str, gateway: str, machines: list[Machine]) -> None:
    """The bridge (``gateway``/24 on the host) and each machine's namespace, veth and addresses."""
    ip("link", "add", bridge, "type", "bridge")
    ip("addr", "add", f"{gateway}/24", "dev", bridge)
    ip("link", "set", bridge, "up")
    for m in machines:
        ip("netns", "add", m.netns)
        ip("link", "add", m.veth, "type", "veth", "peer", "name", "eth0", "netns", m.netns)
        ip("link", "set", m.veth, "master", bridge, "up")
        ip("-n", m.netns, "addr", "add", f"{m.address}/24", "dev", "eth0")
        ip("-n", m.netns, "link", "set", "eth0", "up")
        ip("-n", m.netns, "link", "set", "lo", "up")


def remove_network(bridge: str, machines: list[Machine]) -> None:
    """Delete every machine's namespace (and with it what was made inside) and veth, and the bridge."""
    for m in machines:
        ip("netns", "delete", m.netns, check=False)
        ip("link", "delete", m.veth, check=False)  # gone with the namespace, unless that failed
    ip("link", "delete", bridge, check=False)


def pids_naming(path: Path) -> list[int]:
    """The PIDs of processes (other than this one) whose command line contains ``path``."""
    needle = os.fsencode(str(path))
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
