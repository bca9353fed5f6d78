"""The node's cgroups: where a cgroup lives, and the node's CPU and memory usage read from the root
cgroup as cAdvisor reads it for container "/".

Contract:

- One home for cgroup paths: a cgroup is named by its absolute path from the hierarchy root
  (``/kubepods/burstable/pod<uid>``, what runc calls cgroupsPath with the cgroupfs driver);
  :func:`hierarchies` are the mounted trees (the one v2 tree, or every v1 hierarchy: controllers,
  named ones such as ``name=systemd``, a hybrid's ``unified``), :func:`cgroup_dirs` the
  directories of a named cgroup in those trees and :func:`controller_dir` the one that holds a
  given controller's files; :func:`remove` takes a named cgroup out of every tree.

- ``node_usage(cgroup_root, proc_root)`` returns one :class:`Usage` sample of the whole node: the
  cumulative CPU time in nanoseconds and the memory figures of the Summary API (bytes).
- cgroup v1 (a ``cpuacct`` hierarchy under the root, hybrid layouts included): CPU from
  ``cpuacct/cpuacct.usage``; memory from ``memory/memory.usage_in_bytes`` and ``memory/memory.stat``'s
  hierarchical ``total_*`` counters. The working set is usage minus ``total_inactive_file``, floored at 0
  (cAdvisor's definition, what the kubelet evicts on and metrics-server reports).
- cgroup v2 (``cgroup.controllers`` at the root): the root cgroup has no ``memory.current``, so, as runc
  does for it, memory comes from ``/proc/meminfo`` (usage = MemTotal - MemFree, working set = usage -
  Inactive(file)) and CPU from the root's ``cpu.stat`` ``usage_usec`` (``/proc/stat`` when a kernel has
  no root ``cpu.stat``).
- Parsers are pure functions of a file's text and raise ``ValueError`` on a malformed file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_ROOT = Path("/proc")


@dataclass(frozen=True)
class Usage:
    """One sample of a cgroup's CPU and memory usage (the Summary API's fields, in its units)."""

    cpu_ns: int
    memory_usage: int
    working_set: int
    rss: int
    page_faults: int
    major_page_faults: int


def parse_flat_keyed(text: str) -> dict[str, int]:
    """A cgroup "flat keyed" file (``memory.stat``, ``cpu.stat``): one ``key value`` per line."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, _, value = line.partition(" ")
        out[key] = int(value)
    return out


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` in bytes (its ``kB`` are KiB)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if not fields:
            continue
        value = int(fields[0])
        out[key.strip()] = value * 1024 if len(fields) > 1 and fields[1] == "kB" else value
    return out


def parse_proc_stat_cpu_ns(text: str) -> int:
    """The busy CPU time of ``/proc/stat``'s ``cpu`` line in nanoseconds (all but idle and iowait;
    guest time is already inside user and nice)."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(x) for x in fields[1:]]
            user, nice, system, _idle, _iowait, irq, softirq, steal = (ticks + [0] * 8)[:8]
            busy = user + nice + system + irq + softirq + steal
            return busy * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    raise ValueError("/proc/stat has no cpu line")


def working_set(usage: int, inactive_file: int) -> int:
    """cAdvisor's working set: usage less the inactive file cache, never below 0."""
    return max(0, usage - inactive_file)


def usage_v1(memory_usage_in_bytes: str, memory_stat: str, cpuacct_usage: str) -> Usage:
    """A cgroup v1 sample from its three files' texts."""
    usage = int(memory_usage_in_bytes.strip())
    stat = parse_flat_keyed(memory_stat)
    return Usage(cpu_ns=int(cpuacct_usage.strip()), memory_usage=usage,
                 working_set=working_set(usage, stat.get("total_inactive_file", 0)),
                 rss=stat.get("total_rss", 0), page_faults=stat.get("total_pgfault", 0),
                 major_page_faults=stat.get("total_pgmajfault", 0))


def usage_v2_root(meminfo: str, vmstat: str, cpu_ns: int) -> Usage:
    """A cgroup v2 root sample: memory from ``/proc/meminfo`` and ``/proc/vmstat``, CPU given."""
    info = parse_meminfo(meminfo)
    usage = info["MemTotal"] - info["MemFree"]
    events = parse_flat_keyed(vmstat)
    return Usage(cpu_ns=cpu_ns, memory_usage=usage, working_set=working_set(usage, info.get("Inactive(file)", 0)),
                 rss=info.get("AnonPages", 0), page_faults=events.get("pgfault", 0),
                 major_page_faults=events.get("pgmajfault", 0))


def is_v2(cgroup_root: Path = CGROUP_ROOT) -> bool:
    """True on a pure cgroup v2 host (a hybrid v1 layout counts as v1: its controllers are there)."""
    return (cgroup_root / "cgroup.controllers").exists() and not (cgroup_root / "cpuacct").exists()


def hierarchies(cgroup_root: Path = CGROUP_ROOT) -> list[Path]:
    """The mounted cgroup trees: ``[cgroup_root]`` on v2, each v1 hierarchy's directory otherwise
    (symlinked aliases such as ``cpu,cpuacct`` -> ``cpu`` are listed once, under their target)."""
    if is_v2(cgroup_root):
        return [cgroup_root]
    try:
        return sorted(p for p in cgroup_root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return []


def cgroup_dirs(name: str, cgroup_root: Path = CGROUP_ROOT) -> list[Path]:
    """The existing directories of cgroup `name` (an absolute cgroup path) in every hierarchy."""
    relative = name.strip("/")
    return [d for d in (h / relative for h in hierarchies(cgroup_root)) if d.is_dir()]


def controller_dir(name: str, controller: str, cgroup_root: Path = CGROUP_ROOT) -> Path:
    """The directory of cgroup `name` whose files belong to `controller` (``cpu``, ``memory``, ``pids``...)."""
    relative = name.strip("/")
    return cgroup_root / relative if is_v2(cgroup_root) else cgroup_root / controller / relative


def remove(name: str, cgroup_root: Path = CGROUP_ROOT) -> bool:
    """Removes cgroup `name` from every hierarchy, empty child cgroups first (runc leaves the
    parents it made on the way); False if one is still there (it holds a process)."""
    return all([_remove_tree(d) for d in cgroup_dirs(name, cgroup_root)])


def _remove_tree(directory: Path) -> bool:
    ok = True
    try:
        children = [p for p in directory.iterdir() if p.is_dir()]
    except OSError:
        children = []
    for child in children:
        ok &= _remove_tree(child)
    try:
        directory.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return ok


def node_usage(cgroup_root: Path = CGROUP_ROOT, proc_root: Path = PROC_ROOT) -> Usage:
    """The whole node's usage now (see the module contract); OSError if the files are missing."""
    if not is_v2(cgroup_root):
        return usage_v1((cgroup_root / "memory" / "memory.usage_in_bytes").read_text(),
                        (cgroup_root / "memory" / "memory.stat").read_text(),
                        (cgroup_root / "cpuacct" / "cpuacct.usage").read_text())
    cpu_stat = cgroup_root / "cpu.stat"
    if cpu_stat.exists():
        cpu_ns = parse_flat_keyed(cpu_stat.read_text())["usage_usec"] * 1000
    else:
        cpu_ns = parse_proc_stat_cpu_ns((proc_root / "stat").read_text())
    return usage_v2_root((proc_root / "meminfo").read_text(), (proc_root / "vmstat").read_text(), cpu_ns)
