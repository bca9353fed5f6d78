"""The server bundler behind ``kyb server``: a whole cluster from one command, like k3s.

Start order, each step waiting for the one before to be ready:

    with ``--cluster-init``: etcd as a supervised child (``kybernetes.etcdmember.EmbeddedEtcd``:
      data in ``DATA_DIR/db/etcd``, TLS from the etcd CA in ``DATA_DIR/tls``), which the API server
      then uses as ``--datastore-endpoint https://127.0.0.1:<--etcd-client-port>``; stopped (by PID)
      only after the API server has closed its store
    -> store + API server (in this process)
      -> the add-ons (``kybernetes.addons``: CoreDNS's and the local-path provisioner's objects,
         unless ``--disable coredns`` / ``--disable local-storage``)
      -> kubeconfigs for each component (own client certificate: system:kube-scheduler, ...)
      -> kube-scheduler and kube-controller-manager as child processes (``kyb scheduler``,
         ``kyb controller-manager`` with ordinary flags), so they use another core than the
         API server and crash alone; with ``--enable-cloud-controller`` also
         ``kyb cloud-controller-manager`` (as ``system:cloud-controller-manager``)
      -> the node agent (``kyb agent``, joining with the server's own join token), which runs
         the kubelet and its containerd, unless ``--disable-agent``
      -> scheduled snapshots of the store (``--snapshot-schedule-cron``, keeping the newest
         ``--snapshot-retention``; ``kybernetes.storage.snapshot``), unless ``--disable-snapshots``

Children are supervised: one that exits while the server runs is started again after a back-off
(1 s doubling to 30 s). SIGTERM or SIGINT stops the children first (SIGTERM, then SIGKILL after
10 s), then the API server and the store. Child output goes to ``DATA_DIR/logs/<name>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from kybernetes import aiorun
from kybernetes.addons import FIELD_MANAGER, AddonSettings, addon_objects, apply_addons
from kybernetes.api.clusterdns import DEFAULT_CLUSTER_DOMAIN, cluster_dns_ip
from kybernetes.apiserver.join.tokens import server_token
from kybernetes.apiserver.server import APIServer, APIServerConfig
from kybernetes.client import Client
from kybernetes.controllers.cronschedule import CronSchedule
from kybernetes.datadir import reset_flag, snapshot_dir
from kybernetes.etcdmember import EmbeddedEtcd, wait_healthy
from kybernetes.pki import kubeconfig, write_kubeconfig
from kybernetes.storage.snapshot import SCHEDULED, SnapshotError, run_schedule, snapshotter_for

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
AGENT_STOP_TIMEOUT = 120.0
"""The agent stops its kubelet, which may wait out pods' grace periods (drain-on-exit)."""


@dataclass
class ServerConfig:
    api: APIServerConfig
    disable_agent: bool = False
    disable_scheduler: bool = False
    disable_controller_manager: bool = False
    cluster_cidr: str = "10.42.0.0/16"
    scheduler_args: list[str] = field(default_factory=list)
    controller_manager_args: list[str] = field(default_factory=list)
    enable_cloud_controller: bool = True
    """Run the cloud-controller-manager (k3s's default; ``--disable-cloud-controller`` turns it off)."""
    cloud_controller_manager_args: list[str] = field(default_factory=list)
    agent_args: list[str] = field(default_factory=list)
    cni_bridge: str = "kyb0"
    disable: tuple[str, ...] = ()
    """Add-ons not to apply (`--disable coredns`, `--disable local-storage`: k3s's flag)."""
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    cluster_dns: str = ""
    """The cluster DNS Service's address (default: the 10th of the service range)."""

    snapshots: SnapshotSchedule | None = None
    """Scheduled snapshots of the store; None: none (``--disable-snapshots``)."""
    etcd: EmbeddedEtcd | None = None
    """``--cluster-init``: the etcd member this server runs (``api`` already points at it)."""

    def dns_ip(self) -> str:
        return self.cluster_dns or cluster_dns_ip(self.api.service_cidr)


@dataclass
class SnapshotSchedule:
    """``--snapshot-schedule-cron`` (robfig/cron, as CronJobs), ``--snapshot-retention``,
    ``--snapshot-dir`` (default ``DATA_DIR/db/snapshots``), and the node named in file names."""

    cron: str = "0 */12 * * *"
    retention: int = 5
    directory: Path | None = None
    node: str = ""

    def __post_init__(self) -> None:
        self.schedule = CronSchedule.parse(self.cron)  # CronError (a ValueError) with robfig's message


async def _snapshot_forever(config: ServerConfig) -> None:
    sched = config.snapshots
    assert sched is not None
    api = config.api

    def failed(err: Exception) -> None:
        log.error("scheduled snapshot failed: %s", err)

    try:
        snapshotter = snapshotter_for(api.data_dir, api.datastore_endpoint, api.datastore_tls)
    except SnapshotError as err:
        log.error("no scheduled snapshots: %s", err)
        return
    await run_schedule(snapshotter, sched.schedule.next,
                       sched.directory or snapshot_dir(api.data_dir), SCHEDULED,
                       sched.node or socket.gethostname(), sched.retention, on_error=failed)


@dataclass
class Child:
    name: str
    args: list[str]
    log_path: Path
    stop_timeout: float = STOP_TIMEOUT
    proc: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None


class Supervisor:
    """Keeps child processes running until told to stop."""

    def __init__(self) -> None:
        self.children: dict[str, Child] = {}
        self._stopping = False

    def start(self, name: str, args: list[str], log_path: Path, *, stop_timeout: float = STOP_TIMEOUT) -> Child:
        child = Child(name, args, log_path, stop_timeout)
        child.task = asyncio.create_task(self._keep(child), name=f"child:{name}")
        self.children[name] = child
        return child

    async def _keep(self, child: Child) -> None:
        backoff = 1.0
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        while not self._stopping:
            with open(child.log_path, "ab") as out:
                child.proc = await asyncio.create_subprocess_exec(
                    *child.args, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                    start_new_session=True)
            started = asyncio.get_running_loop().time()
            code = await child.proc.wait()
            if self._stopping:
                return
            ran = asyncio.get_running_loop().time() - started
            backoff = 1.0 if ran > 60 else min(backoff * 2, 30.0)
            log.warning("%s exited with %s; restarting in %.0fs", child.name, code, backoff)
            await asyncio.sleep(backoff)

    async def stop(self) -> None:
        self._stopping = True
        running = [c for c in self.children.values() if c.proc is not None and c.proc.returncode is None]
        for c in running:
            with contextlib.suppress(ProcessLookupError):
                c.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        for c in running:
            assert c.proc is not None
            try:
                await asyncio.wait_for(c.proc.wait(), c.stop_timeout)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    c.proc.kill()
                await c.proc.wait()
        for c in self.children.values():
            if c.task is not None:
                c.task.cancel()
                with contextlib.suppress(BaseException):
                    await c.task


def component_kubeconfig(api: APIServer, name: str, user: str, groups: tuple[str, ...] = ()) -> Path:
    """A kubeconfig with the component's own client certificate, in DATA_DIR."""
    assert api.pki is not None
    crt, key = api.pki.ensure(name, common_name=user, organizations=groups, client=True)
    path = api.config.data_dir / f"{name}.kubeconfig"
    write_kubeconfig(path, kubeconfig(api.local_url, api.pki.ca_pem, crt.read_bytes(), key.read_bytes(), user=user))
    return path


async def _apply_addons(api: APIServer, config: ServerConfig) -> None:
    """The add-ons (kybernetes.addons), applied as system:masters before the components start."""
    objects = addon_objects(AddonSettings(config.api.service_cidr, config.cluster_domain), config.disable)
    if not objects:
        return
    kc = component_kubeconfig(api, "addons", FIELD_MANAGER, ("system:masters",))
    async with Client.from_kubeconfig(kc, user_agent=FIELD_MANAGER) as client:
        await apply_addons(client, objects)


def _kyb(*args: str) -> list[str]:
    return [sys.executable, "-m", "kybernetes.cli", *args]


ETCD_START_TIMEOUT = 60.0


async def run_server(config: ServerConfig, stop: asyncio.Event, announce: bool = True) -> None:
    """The embedded etcd member, if any, then the cluster (``_run_cluster``) until ``stop`` is set."""
    etcd = Supervisor()
    try:
        if config.etcd is not None:
            reset_flag(config.api.data_dir).unlink(missing_ok=True)  # an ordinary start after --cluster-reset
            for pid in await asyncio.to_thread(config.etcd.stop_leftovers):
                log.warning("stopped etcd %d, left running on %s by an earlier server", pid, config.etcd.data_dir)
            child = etcd.start("etcd", config.etcd.command(), config.api.data_dir / "logs" / "etcd.log")
            if not await _unless_stopped(_wait_for_member(config.etcd, child.log_path), stop):
                return
        await _run_cluster(config, stop, announce)
    finally:
        await etcd.stop()


async def _wait_for_member(member: EmbeddedEtcd, log_path: Path) -> None:
    """Until the member answers; meanwhile the supervisor restarts it as often as it exits, and
    every ``ETCD_START_TIMEOUT`` without an answer is logged (a message, not a traceback)."""
    while True:
        try:
            await wait_healthy(member.client_url, member.client_tls(), lambda: True, log_path, ETCD_START_TIMEOUT)
            return
        except TimeoutError as err:
            log.error("%s; still waiting", err)


async def _unless_stopped(step: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Runs ``step`` to its end (True), or cancels it once ``stop`` is set first (False)."""
    task = asyncio.ensure_future(step)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, stopped):
            if not t.done():
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
    if task.done() and not task.cancelled():
        task.result()  # its error, if any
        return True
    return False


async def _run_cluster(config: ServerConfig, stop: asyncio.Event, announce: bool) -> None:
    api = APIServer(config.api)
    await api.start()
    sup = Supervisor()
    logs = config.api.data_dir / "logs"
    snapshots = asyncio.create_task(_snapshot_forever(config), name="snapshots") if config.snapshots else None
    try:
        await _apply_addons(api, config)
        if not config.disable_controller_manager:
            kc = component_kubeconfig(api, "controller-manager", "system:kube-controller-manager")
            assert api.pki is not None
            sup.start("controller-manager", _kyb(
                "controller-manager", "--kubeconfig", str(kc), "--root-ca-file", str(api.pki.ca_path),
                "--cluster-signing-cert-file", str(api.pki.ca_path),
                "--cluster-signing-key-file", str(api.pki.ca_key_path),
                "--service-account-private-key-file", str(api.pki.service_account_key()),
                # kubeadm's choice: the default set plus the (off by default) bootstrap token cleaner.
                "--controllers", "*,tokencleaner", "--use-service-account-credentials",
                "--cluster-cidr", config.cluster_cidr, *config.controller_manager_args,
            ), logs / "controller-manager.log")
        if config.enable_cloud_controller:
            kc = component_kubeconfig(api, "cloud-controller-manager", "system:cloud-controller-manager")
            sup.start("cloud-controller-manager", _kyb(
                "cloud-controller-manager", "--kubeconfig", str(kc), *config.cloud_controller_manager_args,
            ), logs / "cloud-controller-manager.log")
        if not config.disable_scheduler:
            kc = component_kubeconfig(api, "scheduler", "system:kube-scheduler")
            sup.start("scheduler", _kyb("scheduler", "--kubeconfig", str(kc), *config.scheduler_args),
                      logs / "scheduler.log")
        token = server_token(config.api.data_dir)
        if not config.disable_agent:
            # The server's own node joins like any other, with the server's join token (k3s does
            # the same), so the node path is one path.
            token_file = config.api.data_dir / "agent-token"
            token_file.write_text(token + "\n")
            token_file.chmod(0o600)
            sup.start("agent", _kyb(
                "agent", "--server", api.local_url, "--token-file", str(token_file),
                "--data-dir", str(config.api.data_dir / "agent"), "--cluster-cidr", config.cluster_cidr,
                "--service-cluster-ip-range", config.api.service_cidr,
                "--cluster-dns", config.dns_ip(), "--cluster-domain", config.cluster_domain, *config.agent_args,
            ), logs / "agent.log", stop_timeout=AGENT_STOP_TIMEOUT)
        if announce:
            kc_path = config.api.kubeconfig_path or config.api.data_dir / "kubeconfig.yaml"
            click.echo(f"kybernetes is running at {api.url} (logs in {logs})", err=True)
            click.echo(f"to add a node: kyb agent --server {api.url} --token {token}", err=True)
            click.echo(f"export KUBECONFIG={kc_path}")
            sys.stdout.flush()
        await stop.wait()
    finally:
        if snapshots is not None:
            snapshots.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await snapshots
        await sup.stop()
        await api.stop()


def main(config: ServerConfig) -> None:
    """Runs the server until SIGTERM/SIGINT; first refuses (exit 1, saying why) a bridge that holds
    another node's pods, whose addresses this node's fresh IPAM would hand out again."""
    from kybernetes.datadir import remove_pid_file, write_pid_file
    from kybernetes.kubelet.leftovers import BridgeInUse, check_bridge

    if not config.disable_agent:
        try:
            check_bridge(config.cni_bridge, config.api.data_dir / "agent")
        except BridgeInUse as err:
            raise click.ClickException(str(err)) from None

    async def go() -> None:
        stop = aiorun.stop_on_signals()
        await run_server(config, stop)

    write_pid_file(config.api.data_dir)
    try:
        aiorun.run(go())
    finally:
        remove_pid_file(config.api.data_dir)

