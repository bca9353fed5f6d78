"""The server bundler behind ``kyb server``: a whole cluster from one command, like k3s.

Start order, each step waiting for the one before to be ready:

    with ``--cluster-init``: etcd as a supervised child (``kybernetes.etcdmember.EmbeddedEtcd``:
      data in ``DATA_DIR/db/etcd``, TLS from the etcd CA in ``DATA_DIR/tls``), which the API server
      then uses as ``--datastore-endpoint https://127.0.0.1:<--etcd-client-port>``; stopped (by PID)
      only after the API server has closed its store. With ``--server URL --token T`` (on a data
      dir without a member) the server first joins that cluster (``kybernetes.serverjoin``: its
      shared keys, its member added there) and its member starts as one of it; either way the
      server token is made or kept (``DATA_DIR/server-token``), and while the server runs it
      promotes joining members (learners) and removes deleted Nodes' members
    -> store + API server (in this process)
      -> the add-ons (``kybernetes.addons``: CoreDNS's and the local-path provisioner's objects,
         unless ``--disable coredns`` / ``--disable local-storage`` / ``--disable metrics-server``)
      -> kubeconfigs for each component (own client certificate: system:kube-scheduler, ...)
      -> kube-controller-manager, the cloud-controller-manager (unless ``--disable-cloud-controller``)
         and kube-scheduler in one child process, ``control-plane`` (``kyb control-plane``,
         :mod:`kybernetes.controlplane`: one interpreter and one set of imports, as k3s runs its
         components in one process), each component with its own ordinary flags, kubeconfig
         (system:kube-scheduler, ...), secure port and leader election, on another core than the
         API server. Any of them ending ends that process, which the supervisor starts again.
         ``--split-control-plane``: three children instead (``kyb controller-manager``,
         ``kyb cloud-controller-manager``, ``kyb scheduler``), each crashing alone
      -> the node agent (``kyb agent``, joining with the server's own join token), which runs
         the kubelet and its containerd, unless ``--disable-agent``
      -> scheduled snapshots of the store (``--snapshot-schedule-cron``, keeping the newest
         ``--snapshot-retention``; ``kybernetes.storage.snapshot``), unless ``--disable-snapshots``

Children are supervised: one that exits while the server runs is started again after a back-off
(1 s doubling to 30 s). SIGTERM or SIGINT stops the children first (SIGTERM, then SIGKILL after
10 s), then the API server and the store. A server killed with SIGKILL takes its children with it
(``kybernetes.procctl``: they get SIGKILL from the kernel, the agent's own children in turn), so the
next server on the data dir finds only the pods' shims, which its node's containerd adopts. Child output goes to ``DATA_DIR/logs/<name>.log``,
rotated by ``kybernetes.componentlogs`` (``control-plane.log``: each line names its component).

Secure ports: the scheduler, controller manager and cloud-controller-manager serve theirs
(``kybernetes.serving``) on 127.0.0.1 (as k3s binds them) at Kubernetes' ports 10259, 10257 and
10258, with a serving certificate from the cluster CA and the cluster CA for client certificates.
``--kube-*-arg secure-port=N`` (``bind-address=A``) moves one (0: none); that is how the test
harness gives each server free ports, so that several ``kyb server``s run at once on one machine.
The bundle probes each one's ``/healthz`` every 10 s (``serving.probe.HealthMonitor``) and logs a
component that stops answering, and again when it answers.

etcd's client (grpc, through ``kybernetes.serverjoin`` and ``kybernetes.storage.etcd_members``)
is imported by the functions that run a member, so a server on SQLite never loads it (issue 18:
idle memory).
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

from kybernetes import aiorun, componentlogs, controlplane, procctl
from kybernetes.addons import FIELD_MANAGER, AddonSettings, addon_objects, apply_addons
from kybernetes.aiorun import wait_for
from kybernetes.api.clusterdns import DEFAULT_CLUSTER_DOMAIN, cluster_dns_ip
from kybernetes.apiserver.join.tokens import ensure_server_token, read_server_token, server_token
from kybernetes.apiserver.server import APIServer, APIServerConfig
from kybernetes.client import Client
from kybernetes.controllers.cronschedule import CronSchedule
from kybernetes.datadir import reset_flag, snapshot_dir
from kybernetes.etcdmember import EmbeddedEtcd, MemberRemovedError, removed_since, wait_healthy
from kybernetes.pki import PKI, kubeconfig, write_kubeconfig
from kybernetes.serving import CLOUD_CONTROLLER_MANAGER_PORT, CONTROLLER_MANAGER_PORT, SCHEDULER_PORT
from kybernetes.serving.probe import HealthMonitor
from kybernetes.storage.interface import UnavailableError
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
    split_control_plane: bool = False
    """``--split-control-plane``: a child process per control-plane component, not one for all."""
    agent_args: list[str] = field(default_factory=list)
    cni_bridge: str = "kyb0"
    disable: tuple[str, ...] = ()
    """Add-ons not to apply (`--disable coredns`, `--disable local-storage`, `--disable metrics-server`: k3s's flag)."""
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
    cluster_dns: str = ""
    """The cluster DNS Service's address (default: the 10th of the service range)."""

    snapshots: SnapshotSchedule | None = None
    """Scheduled snapshots of the store; None: none (``--disable-snapshots``)."""
    etcd: EmbeddedEtcd | None = None
    """``--cluster-init`` (or ``--server``, or a data dir that holds a member): the etcd member
    this server runs (``api`` already points at it)."""
    join_server: str = ""
    join_token: str = ""
    component_health_grace: float = 60.0
    """Seconds a child component may take to answer its first /healthz before it is reported."""
    """``--server URL --token T``: the cluster whose etcd the member joins (``kybernetes.serverjoin``),
    unless the data dir holds the member already."""
    child_launcher: list[str] = field(default_factory=list)
    """An argv prefix each child is run under (the test kit's guardian, which ends the child when
    the process that runs this bundle is gone); it must end its child when sent SIGTERM."""

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

    def __init__(self, launcher: list[str] | None = None) -> None:
        self.children: dict[str, Child] = {}
        self.launcher = launcher or []
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
                    *self.launcher, *child.args, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out,
                    start_new_session=True, env=procctl.child_env())
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
                await wait_for(c.proc.wait(), c.stop_timeout)
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


def _own_node_ip(config: ServerConfig) -> list[str]:
    """The server's own node's InternalIP, as k3s picks it: the advertised address when this machine
    serves it (pods, metrics-server among them, reach the kubelet there; loopback is every pod's
    own), unless the agent is given ``--node-ip``; else the agent's default (loopback here)."""
    advertised = config.api.advertise_address
    given = any(a == "--node-ip" or a.startswith("--node-ip=") for a in config.agent_args)
    return ["--node-ip", advertised] if advertised in config.api.extra_bind_addresses and not given else []


async def _apply_addons(api: APIServer, config: ServerConfig) -> None:
    """The add-ons (kybernetes.addons), applied as system:masters before the components start."""
    objects = addon_objects(AddonSettings(config.api.service_cidr, config.cluster_domain), config.disable)
    if not objects:
        return
    kc = component_kubeconfig(api, "addons", FIELD_MANAGER, ("system:masters",))
    async with Client.from_kubeconfig(kc, user_agent=FIELD_MANAGER) as client:
        await apply_addons(client, objects)


CONTROL_PLANE = "control-plane"
SECURE_PORTS = {"scheduler": SCHEDULER_PORT, "controller-manager": CONTROLLER_MANAGER_PORT,
                "cloud-controller-manager": CLOUD_CONTROLLER_MANAGER_PORT}
HEALTH_INTERVAL = 10.0


def _flag_value(args: list[str], flag: str) -> str | None:
    """The last value of ``--flag V`` / ``--flag=V`` in ``args`` (click's rule: the last one wins)."""
    value = None
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            value = args[i + 1]
        elif a.startswith(flag + "="):
            value = a[len(flag) + 1:]
    return value


def _serving_args(api: APIServer, name: str) -> list[str]:
    """A control-plane child's secure-port flags: loopback, a cluster-CA-signed serving certificate
    (``DATA_DIR/tls/serving-<name>.crt``), the cluster CA for client certificates."""
    assert api.pki is not None
    crt, key = api.pki.ensure(f"serving-{name}", common_name=f"kube-{name}", dns_names=("localhost",),
                              ip_addresses=("127.0.0.1",), server=True)
    return ["--bind-address", "127.0.0.1", "--tls-cert-file", str(crt), "--tls-private-key-file", str(key),
            "--client-ca-file", str(api.pki.ca_path)]


def _component_flags(children: dict[str, Child]) -> dict[str, list[str]]:
    """Each control-plane component's flags, whether it runs as a child of its own or in ``control-plane``."""
    out = {name: child.args for name, child in children.items() if name in SECURE_PORTS}
    combined = children.get(CONTROL_PLANE)
    if combined is not None:
        out.update(controlplane.sections(combined.args[combined.args.index(CONTROL_PLANE) + 1:]))
    return out


def health_targets(children: dict[str, Child]) -> dict[str, str]:
    """Each running control-plane component's ``/healthz`` URL, from the flags it was started with."""
    out = {}
    for name, args in _component_flags(children).items():
        port = int(_flag_value(args, "--secure-port") or SECURE_PORTS[name])
        host = _flag_value(args, "--bind-address") or "127.0.0.1"
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        if port:
            out[name] = f"https://{host if ':' not in host else f'[{host}]'}:{port}/healthz"
    return out


def _control_plane(api: APIServer, config: ServerConfig) -> dict[str, list[str]]:
    """The control-plane components to run, each with its flags (its own kubeconfig: its identity)."""
    assert api.pki is not None
    out = {}
    if not config.disable_controller_manager:
        kc = component_kubeconfig(api, "controller-manager", "system:kube-controller-manager")
        out["controller-manager"] = [
            "--kubeconfig", str(kc), "--root-ca-file", str(api.pki.ca_path),
            "--cluster-signing-cert-file", str(api.pki.ca_path),
            "--cluster-signing-key-file", str(api.pki.ca_key_path),
            "--service-account-private-key-file", str(api.pki.service_account_key()),
            # kubeadm's choice: the default set plus the (off by default) bootstrap token cleaner.
            "--controllers", "*,tokencleaner", "--use-service-account-credentials",
            "--cluster-cidr", config.cluster_cidr, *_serving_args(api, "controller-manager"),
            *config.controller_manager_args]
    if config.enable_cloud_controller:
        kc = component_kubeconfig(api, "cloud-controller-manager", "system:cloud-controller-manager")
        out["cloud-controller-manager"] = ["--kubeconfig", str(kc), *_serving_args(api, "cloud-controller-manager"),
                                           *config.cloud_controller_manager_args]
    if not config.disable_scheduler:
        kc = component_kubeconfig(api, "scheduler", "system:kube-scheduler")
        out["scheduler"] = ["--kubeconfig", str(kc), *_serving_args(api, "scheduler"), *config.scheduler_args]
    return out


def _kyb(*args: str) -> list[str]:
    return [sys.executable, "-m", "kybernetes.cli", *args]


ETCD_START_TIMEOUT = 60.0
REMOVED_CHECK = 5.0


async def run_server(config: ServerConfig, stop: asyncio.Event, announce: bool = True) -> None:
    """The embedded etcd member, if any, then the cluster (``_run_cluster``) until ``stop`` is set."""
    etcd = Supervisor()
    promotion = None
    try:
        if config.etcd is not None:
            from kybernetes import serverjoin

            reset_flag(config.api.data_dir).unlink(missing_ok=True)  # an ordinary start after --cluster-reset
            if not await _start_member(config, config.etcd, etcd, stop):
                return
            promotion = asyncio.create_task(serverjoin.promote_learners(config.etcd), name="etcd-learner-promotion")
        await _run_cluster(config, stop, announce)
    finally:
        if promotion is not None:
            promotion.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await promotion
        await etcd.stop()


async def _start_member(config: ServerConfig, member: EmbeddedEtcd, sup: Supervisor, stop: asyncio.Event) -> bool:
    """Joins the cluster first if asked to and the data dir holds no member yet, then runs the
    member and waits until it answers (False: ``stop`` came first). Makes the cluster CA and the
    server token of a first server."""
    from kybernetes import serverjoin
    from kybernetes.storage.etcd_members import MemberError

    for pid in await asyncio.to_thread(member.stop_leftovers):
        log.warning("stopped etcd %d, left running on %s by an earlier server", pid, member.data_dir)
    initial: list[str] = []
    if config.join_server and not member.exists():
        async def joining() -> None:
            initial.append(await serverjoin.join_with_retry(member, config.join_server, config.join_token))

        if not await _unless_stopped(joining(), stop):
            return False
    PKI.load_or_create(config.api.data_dir)  # a joined server's is the cluster's, fetched above
    ensure_server_token(config.api.data_dir)
    log_path = config.api.data_dir / "logs" / "etcd.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    sup.start("etcd", procctl.exec_dying_with_parent(member.command(*initial)), log_path)
    if not await _unless_stopped(_wait_for_member(member, log_path, offset), stop):
        return False
    try:
        await member.advertise_peer_url()
    except (MemberError, UnavailableError) as e:
        log.error("etcd member %s: its peer URL could not be updated to %s: %s", member.name, member.peer_url, e)
    return True


async def _wait_for_member(member: EmbeddedEtcd, log_path: Path, offset: int) -> None:
    """Until the member answers; meanwhile the supervisor restarts it as often as it exits, and
    every ``ETCD_START_TIMEOUT`` without an answer is logged (a message, not a traceback).
    MemberRemovedError if etcd says (in its log, past ``offset``) that its cluster removed it."""
    waited = 0.0
    while True:
        try:
            await wait_healthy(member.client_url, member.client_tls(), lambda: True, log_path, REMOVED_CHECK)
            return
        except TimeoutError as err:
            if removed_since(log_path, offset):
                raise MemberRemovedError(
                    f"etcd member {member.name} was removed from its cluster (`kyb etcd member remove`, or its "
                    f"Node was deleted) and cannot run again: to join the cluster anew, delete {member.data_dir} "
                    "and start with --server URL --token TOKEN") from None
            waited += REMOVED_CHECK
            if waited >= ETCD_START_TIMEOUT:
                log.error("%s; still waiting", err)
                waited = 0.0


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
    sup = Supervisor(config.child_launcher)
    logs = config.api.data_dir / "logs"
    snapshots = asyncio.create_task(_snapshot_forever(config), name="snapshots") if config.snapshots else None
    rotation = asyncio.create_task(componentlogs.run([logs]), name="component-logs")  # DATA/logs/*.log
    kc_path = config.api.kubeconfig_path or config.api.data_dir / "kubeconfig.yaml"
    removal = None
    if config.etcd is not None:
        from kybernetes import serverjoin

        removal = asyncio.create_task(serverjoin.remove_members_of_deleted_nodes(kc_path, config.etcd),
                                      name="etcd-member-removal")
    health: asyncio.Task[None] | None = None
    try:
        await _apply_addons(api, config)
        components = _control_plane(api, config)
        if config.split_control_plane:
            for name, flags in components.items():
                sup.start(name, _kyb(name, *flags), logs / f"{name}.log")
        elif components:
            sup.start(CONTROL_PLANE, _kyb(CONTROL_PLANE, *controlplane.command_line(components)),
                      logs / f"{CONTROL_PLANE}.log")
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
                "--cluster-dns", config.dns_ip(), "--cluster-domain", config.cluster_domain,
                *_own_node_ip(config), *config.agent_args,
            ), logs / "agent.log", stop_timeout=AGENT_STOP_TIMEOUT)
        assert api.pki is not None
        monitor = HealthMonitor(health_targets(sup.children), str(api.pki.ca_path), interval=HEALTH_INTERVAL,
                                grace=config.component_health_grace)
        health = asyncio.create_task(monitor.run(), name="component-health") if monitor.targets else None
        if announce:
            click.echo(f"kybernetes is running at {api.url} (logs in {logs})", err=True)
            click.echo(f"to add a node: kyb agent --server {api.url} --token {token}", err=True)
            if config.etcd is not None:
                click.echo(f"to add a server: kyb server --server {api.url} --token "
                           f"{read_server_token(config.api.data_dir)}", err=True)
            click.echo(f"export KUBECONFIG={kc_path}")
            sys.stdout.flush()
            click.echo(f"Console: kyb console --kubeconfig {kc_path}", err=True)
        await stop.wait()
    finally:
        for task in (snapshots, removal, health, rotation):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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
        if config.etcd is None:  # no member: nothing joins, nothing can be removed
            await run_server(config, stop)
            return
        from kybernetes import serverjoin

        try:
            await run_server(config, stop)
        except serverjoin.ServerJoinError as e:
            raise click.ClickException(f"cannot join {config.join_server}: {e}") from None
        except MemberRemovedError as e:
            raise click.ClickException(str(e)) from None

    write_pid_file(config.api.data_dir)
    try:
        aiorun.run(go())
    finally:
        remove_pid_file(config.api.data_dir)

