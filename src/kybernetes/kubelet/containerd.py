"""Supervision of the node's containerd: the container runtime behind the kubelet's CRI calls.

A node agent runs its own containerd rather than the system one, with everything under its data
directory, so that several nodes (and the tests) can share one machine:

    DATA/containerd/config.toml      written on every start from the constructor's arguments
    DATA/containerd/root             images, snapshots, container metadata (persistent)
    DATA/containerd/state            runtime state: task bundles, sandbox shm mounts (ephemeral)
    DATA/containerd/containerd.sock  the gRPC socket; CRI is served there (runtime.v1)
    DATA/logs/containerd.log         its stdout and stderr

The process is spawned with `subprocess.Popen` in a new session (a terminal's Ctrl-C does not reach
it), dying by SIGKILL with the process that spawned it (`kybernetes.procctl`: its shims, and so the
pods, live on for the next containerd to adopt), and is waited on by polling, so one `Containerd` object is not tied to an asyncio event loop:
a test may start it in one loop and stop it in another. `start()` returns once the CRI Version call
answers, and raises with the tail of the log if the process dies first.

Containers outlive containerd: each runs under its own `containerd-shim-runc-v2` process, which a
restarted containerd re-attaches to. `stop()` therefore leaves pods running unless asked
(`remove_pods=True`), which is what a kubelet restart needs; the node's real shutdown removes them.
Killing containerd does leave mounts behind (sandbox /dev/shm tmpfs, container rootfs overlays);
`cleanup_mounts()` unmounts whatever remains under given directories.

`supervise()` (the kubelet runs it) restarts a containerd that died, e.g. was killed with -9:
containers outlive it in their shims, and the new one re-attaches to them, so pods are adopted,
not restarted.

`Containerd(endpoint="unix:///run/…")` uses a runtime someone else started (the agent's
--container-runtime-endpoint): nothing is written or spawned, `start()` only waits for it.

The CRI plugin is configured for this project's world: the sandbox image is kybernetes' own pause
image (built locally, `kybernetes.images`), CNI binaries come from Debian's
containernetworking-plugins, cgroups are managed by runc through cgroupfs (no systemd here), the
streaming server (exec/attach/port-forward URLs) listens on loopback on a free port, and registries
are reached only as configured through hosts.toml files (`registry_config_dir`). The runtime handlers
a RuntimeClass can name are `runc` (the default) and `crun` (when installed), both under the runc v2
shim (`runtime_handlers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from kybernetes import procctl
from kybernetes.images.oci import PAUSE_IMAGE

log = logging.getLogger(__name__)

DEFAULT_CNI_BIN_DIR = "/usr/lib/cni"
_MNT_DETACH = 2  # umount2 flag: detach now, finish when no longer busy


class ContainerdError(RuntimeError):
    """containerd could not be started, or died."""


def _toml_str(value: str) -> str:
    # A TOML basic string is a JSON string for everything we write (paths, names, URLs).
    return json.dumps(value)


def overlay_usable(directory: Path) -> bool:
    """Whether an overlay filesystem can be mounted with upper/work dirs inside `directory`.

    containerd's overlayfs snapshotter needs that (it fails on e.g. an overlay or some tmpfs roots);
    the native snapshotter (plain copies) works everywhere, only slower.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".overlay-check-") as tmp:
        base = Path(tmp)
        for name in ("lower", "upper", "work", "merged"):
            (base / name).mkdir()
        opts = f"lowerdir={base / 'lower'},upperdir={base / 'upper'},workdir={base / 'work'}"
        try:
            done = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(base / "merged")],
                                  capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return False
        if done.returncode != 0:
            return False
        _umount(base / "merged")
        return True


def apparmor_enabled() -> bool:
    """True when AppArmor is on and containerd could load its profile (needs apparmor_parser)."""
    try:
        enabled = Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False
    return enabled and shutil.which("apparmor_parser") is not None


CAP_SYS_RESOURCE = 24


def has_capability(cap: int) -> bool:
    """Whether this process has capability number `cap` in its effective set."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> cap & 1)
    except (OSError, ValueError):
        pass
    return False


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(*roots: Path) -> list[str]:
    """Mount points at or below any of `roots`, deepest first."""
    prefixes = [str(Path(r).resolve()) for r in roots]
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape_mountinfo(line.split()[4])
            if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
                found.append(point)
    return sorted(set(found), key=lambda p: (p.count("/"), p), reverse=True)


def _umount(path: Path | str) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.umount2(os.fsencode(str(path)), _MNT_DETACH) == 0


def cleanup_mounts(*roots: Path) -> list[str]:
    """Lazily unmounts everything mounted under `roots` (deepest first); returns what it unmounted.

    Needed after containerd was killed with sandboxes still present: their shm tmpfs and rootfs
    overlays stay mounted under its state and root directories.
    """
    done = []
    for _ in range(3):  # a lazy unmount can reveal a mount that was below it
        points = mounts_under(*roots)
        if not points:
            break
        for point in points:
            if _umount(point):
                done.append(point)
    return done


def write_registry_host(config_dir: Path, host: str, server: str, *, skip_verify: bool = True) -> Path:
    """Declares how containerd reaches registry `host` (e.g. "127.0.0.1:5000"): at `server` (e.g.
    "http://127.0.0.1:5000"), as a `hosts.toml` under `config_dir` (the CRI registry config_path).
    """
    directory = Path(config_dir) / host
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "hosts.toml"
    path.write_text(
        f"server = {_toml_str(server)}\n\n"
        f"[host.{_toml_str(server)}]\n"
        '  capabilities = ["pull", "resolve", "push"]\n'
        f"  skip_verify = {'true' if skip_verify else 'false'}\n"
    )
    return path


class Containerd:
    """One containerd for one node, or a handle on an existing CRI endpoint."""

    def __init__(self, data_dir: Path, *, sandbox_image: str = PAUSE_IMAGE,
                 cni_bin_dir: str = DEFAULT_CNI_BIN_DIR, cni_conf_dir: Path | str | None = None,
                 stream_address: str = "127.0.0.1", endpoint: str | None = None,
                 registry_config_dir: Path | None = None, snapshotter: str | None = None,
                 binary: str = "containerd", log_level: str = "info",
                 enable_unprivileged_ports: bool = False, enable_unprivileged_icmp: bool = False,
                 max_container_log_line_size: int = 16384) -> None:
        self.data_dir = Path(data_dir)
        self.dir = self.data_dir / "containerd"
        self.root = self.dir / "root"
        self.state = self.dir / "state"
        self.config_path = self.dir / "config.toml"
        self.log_path = self.data_dir / "logs" / "containerd.log"
        self.sandbox_image = sandbox_image
        self.cni_bin_dir = cni_bin_dir
        self.cni_conf_dir = Path(cni_conf_dir) if cni_conf_dir else self.data_dir / "cni" / "net.d"
        self.stream_address = stream_address
        self.registry_config_dir = registry_config_dir
        self.snapshotter = snapshotter
        self.binary = binary
        self.log_level = log_level
        self.enable_unprivileged_ports = enable_unprivileged_ports
        self.enable_unprivileged_icmp = enable_unprivileged_icmp
        self.max_container_log_line_size = max_container_log_line_size
        self.external = endpoint is not None
        self._endpoint = endpoint
        self._proc: subprocess.Popen[bytes] | None = None  # when we spawned it
        self._pid: int | None = None  # spawned or adopted

    # ---- addresses ----

    @property
    def socket(self) -> str:
        """The filesystem path of the gRPC socket."""
        if self._endpoint is not None:
            return self._endpoint.removeprefix("unix://")
        return str(self.dir / "containerd.sock")

    @property
    def endpoint(self) -> str:
        """The gRPC target for the CRI client (`unix:///path`)."""
        return self._endpoint if self._endpoint is not None else "unix://" + self.socket

    @property
    def pid(self) -> int | None:
        return self._pid

    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._pid is not None and process_alive(self._pid)

    # ---- configuration ----

    def choose_snapshotter(self) -> str:
        if self.snapshotter is None:
            self.snapshotter = "overlayfs" if overlay_usable(self.root) else "native"
        return self.snapshotter

    def render_config(self) -> str:
        cri = '[plugins."io.containerd.grpc.v1.cri"]'
        lines = [
            "version = 2",
            f"root = {_toml_str(str(self.root))}",
            f"state = {_toml_str(str(self.state))}",
            # Snapshotters that cannot work here only add failed-plugin noise and start time.
            'disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",'
            ' "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",'
            ' "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]',
            "",
            "[grpc]",
            f"  address = {_toml_str(self.socket)}",
            "",
            "[ttrpc]",
            f"  address = {_toml_str(self.socket + '.ttrpc')}",
            "",
            "[debug]",
            f"  level = {_toml_str(self.log_level)}",
            "",
            # Not /opt/containerd: keep everything of this node under its data directory.
            '[plugins."io.containerd.internal.v1.opt"]',
            f"  path = {_toml_str(str(self.dir / 'opt'))}",
            "",
            cri,
            f"  sandbox_image = {_toml_str(self.sandbox_image)}",
            f"  stream_server_address = {_toml_str(self.stream_address)}",
            '  stream_server_port = "0"',
            "  enable_tls_streaming = false",
            "  enable_selinux = false",
            f"  disable_apparmor = {'false' if apparmor_enabled() else 'true'}",
            # Without CAP_SYS_RESOURCE (some VMs and nested setups) the kernel refuses to lower
            # oom_score_adj, and runc fails on the sandbox's -998; containerd then clamps it.
            f"  restrict_oom_score_adj = {'false' if has_capability(CAP_SYS_RESOURCE) else 'true'}",
            f"  max_container_log_line_size = {self.max_container_log_line_size}",
            f"  enable_unprivileged_ports = {'true' if self.enable_unprivileged_ports else 'false'}",
            f"  enable_unprivileged_icmp = {'true' if self.enable_unprivileged_icmp else 'false'}",
            "",
            '[plugins."io.containerd.grpc.v1.cri".containerd]',
            f"  snapshotter = {_toml_str(self.choose_snapshotter())}",
            '  default_runtime_name = "runc"',
            "",
            *self._runtime_handlers(),
            '[plugins."io.containerd.grpc.v1.cri".cni]',
            f"  bin_dir = {_toml_str(self.cni_bin_dir)}",
            f"  conf_dir = {_toml_str(str(self.cni_conf_dir))}",
            "  max_conf_num = 1",
            "",
            '[plugins."io.containerd.grpc.v1.cri".registry]',
            # No mirrors and no host defaults beyond what hosts.toml files under config_path say.
            f"  config_path = {_toml_str(str(self.registry_config_dir) if self.registry_config_dir else '')}",
            "",
        ]
        return "\n".join(lines)

    def runtime_handlers(self) -> dict[str, str]:
        """The CRI runtime handlers this containerd serves (RuntimeClass `handler` -> OCI runtime
        binary, "" for the shim's own default: runc): `runc` (the default handler), and `crun` where
        Debian's crun is installed."""
        handlers = {"runc": ""}
        crun = shutil.which("crun")
        if crun is not None:
            handlers["crun"] = crun
        return handlers

    def _runtime_handlers(self) -> list[str]:
        # Both through the runc v2 shim, which drives any runc-compatible binary (BinaryName).
        lines: list[str] = []
        for name, binary in self.runtime_handlers().items():
            table = f'[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]'
            lines += [table, '  runtime_type = "io.containerd.runc.v2"', "",
                      table[:-1] + '.options]', *([f"  BinaryName = {_toml_str(binary)}"] if binary else []),
                      "  SystemdCgroup = false", ""]
        return lines

    def write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cni_conf_dir.mkdir(parents=True, exist_ok=True)
        if self.registry_config_dir is not None:
            Path(self.registry_config_dir).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.render_config())
        return self.config_path

    # ---- lifecycle ----

    async def start(self, timeout: float = 30.0) -> None:
        """Spawns containerd (unless external) and waits until its CRI service answers.

        If this node's containerd is already running (it outlived a previous agent process, as it
        does across a kubelet restart), it is adopted instead of started twice: two containerds on
        one root would fight over its metadata database.
        """
        if self.external:
            await self.wait_ready(timeout)
            return
        if self.running():
            return
        adopted = self.find_running_pid()
        if adopted is not None:
            self._pid = adopted
            await self.wait_ready(timeout)
            return
        self.write_config()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)  # a stale socket from a killed run would make it fail to bind
        binary = shutil.which(self.binary) or self.binary
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                procctl.exec_dying_with_parent([binary, "--config", str(self.config_path)]),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, env=procctl.child_env())
        self._pid = self._proc.pid
        try:
            await self.wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise

    def find_running_pid(self) -> int | None:
        """The PID of a containerd already running with this node's config file, if any; also one
        still starting: for its first ~0.1 s (more under load) a containerd we spawn is
        :mod:`kybernetes.procctl`'s Python process, which then execs containerd in the same PID."""
        wanted = os.fsencode(str(self.config_path))
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if wanted in argv and _runs_containerd(argv) and process_alive(int(entry.name)):
                return int(entry.name)
        return None

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Polls the CRI Version call until it answers; raises if the process died or time ran out."""
        from kybernetes.kubelet.cri.client import CRIClient, CRIError

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._pid is not None and not self.running():
                code = self._proc.returncode if self._proc is not None else "?"
                raise ContainerdError(f"containerd exited with {code}:\n{self.log_tail()}")
            if os.path.exists(self.socket):
                client = CRIClient(self.endpoint, timeout=2.0)
                try:
                    await client.version()
                    return
                except CRIError as err:
                    last = err
                finally:
                    await client.close()
            await asyncio.sleep(0.05)
        raise ContainerdError(f"containerd did not answer CRI within {timeout}s ({last}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def remove_all_pods(self, timeout: float = 30.0) -> None:
        """Stops and removes every pod sandbox (and so its containers, network and mounts)."""
        from kybernetes.kubelet.cri.client import CRIClient, NotFoundError

        client = CRIClient(self.endpoint, timeout=timeout)
        try:
            for sandbox in await client.list_pod_sandbox():
                with contextlib.suppress(NotFoundError):
                    await client.stop_pod_sandbox(sandbox.id)
                with contextlib.suppress(NotFoundError):
                    await client.remove_pod_sandbox(sandbox.id)
        finally:
            await client.close()

    async def stop(self, *, remove_pods: bool = False, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`. Pods keep running unless `remove_pods`."""
        if remove_pods and (self.external or self.running()):
            await self.remove_all_pods()
        if self._pid is None:
            return
        pid = self._pid
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.running() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self.running():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                while self.running():
                    await asyncio.sleep(0.05)
        self._proc = None
        self._pid = None

    async def supervise(self, on_restart: Callable[[], None] | None = None, *, interval: float = 1.0,
                        max_delay: float = 30.0) -> None:
        """Until cancelled: restarts this node's containerd whenever it has died (checked every
        `interval` s; after a failed start, 1 s doubling to `max_delay`). Running containers live in
        their shims and are re-attached by the new containerd: nothing of the pods restarts.
        `on_restart` runs after each successful restart. An external runtime is not supervised."""
        if self.external:
            return
        delay = interval
        while True:
            await asyncio.sleep(delay)
            if self.running():
                delay = interval
                continue
            code = self._proc.returncode if self._proc is not None else "?"
            log.warning("containerd (pid %s) exited with %s; restarting it", self._pid, code)
            self._proc, self._pid = None, None
            try:
                await self.start()
            except ContainerdError as err:
                delay = min(max(delay, 1.0) * 2, max_delay)
                log.error("restarting containerd failed (next try in %.0fs): %s", delay, err)
                continue
            delay = interval
            log.warning("containerd restarted (pid %s)", self._pid)
            if on_restart is not None:
                on_restart()

    def shim_pids(self) -> list[int]:
        """PIDs of the containerd-shim processes serving this containerd (matched by its socket)."""
        return shim_pids_for(self.socket)

    def cleanup_mounts(self) -> list[str]:
        """Unmounts whatever this containerd left under its root and state directories."""
        return cleanup_mounts(self.root, self.state)


def _runs_containerd(argv: list[bytes]) -> bool:
    """Whether ``argv`` is containerd's, or procctl's exec shim about to become containerd."""
    if argv[1:3] == [b"-m", b"kybernetes.procctl"]:
        argv = argv[3:]
    return bool(argv) and os.path.basename(argv[0]) == b"containerd"


def process_alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def shim_argvs(socket: str) -> Iterator[tuple[int, list[bytes]]]:
    """(pid, argv) of every shim started by the containerd listening on `socket` (`-address SOCKET`)."""
    want = os.fsencode(socket)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and want in argv:
            yield int(entry.name), argv


def shim_pids_for(socket: str) -> list[int]:
    """PIDs of shims started by the containerd listening on `socket` (`-address SOCKET`)."""
    return [pid for pid, _ in shim_argvs(socket)]


def kill_pids(pids: Iterable[int]) -> None:
    """SIGKILLs the given processes (ones this node started), ignoring those already gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
