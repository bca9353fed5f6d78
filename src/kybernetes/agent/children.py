"""The node's components' command lines (``kyb kubelet``, ``kyb proxy``, ``kyb network``): what
each runs with, in the agent's process (``inprocess``, the default) or, with
``--split-node-components``, as the agent's child processes, supervised here (restarted with
back-off when they die, at once when their certificates were renewed, stopped in order on SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from kybernetes import procctl
from kybernetes.agent.config import RETRY_MAX, AgentConfig
from kybernetes.agent.credentials import Credentials
from kybernetes.aiorun import wait_for
from kybernetes.api.clusterdns import cluster_dns_ip
from kybernetes.datadir import netpol_table, proxy_table

log = logging.getLogger(__name__)


KYB = [sys.executable, "-m", "kybernetes.cli"]
"""How a child process runs a ``kyb`` command: the agent's interpreter (and its ``sys.path``)."""


def flags_of(args: list[str]) -> list[str]:
    """The flags of a command line built here (what follows ``kyb NAME``)."""
    if args[:len(KYB)] != KYB:
        raise ValueError(f"not a kyb command line: {args[:4]}")
    return args[len(KYB) + 1:]


# --- the kubelet ---------------------------------------------------------------------------------------


def kubelet_args(cfg: AgentConfig, creds: Credentials) -> list[str]:
    args = [*KYB, "kubelet",
            "--kubeconfig", str(creds.kubeconfig), "--node-name", cfg.node_name,
            "--data-dir", str(cfg.data_dir), "--port", str(cfg.kubelet_port),
            "--cni-bridge", cfg.cni_bridge, "--default-pod-cidr", cfg.default_pod_cidr]
    optional = [
        ("--node-ip", cfg.node_ip),
        ("--address", cfg.node_ip),  # the API server reaches the kubelet at the node's InternalIP
        ("--container-runtime-endpoint", cfg.container_runtime_endpoint),
        ("--tls-cert-file", str(creds.serving_cert)),
        ("--tls-private-key-file", str(creds.serving_key)),
        ("--client-ca-file", str(creds.ca)),
    ]
    for flag, value in optional:
        if value:
            args += [flag, value]
    # Pods' cluster DNS, unless a --kubelet-arg says otherwise.
    given = {a.removeprefix("--").split("=", 1)[0] for a in cfg.kubelet_args}
    if "cluster-dns" not in given:
        args += ["--cluster-dns", cfg.cluster_dns or cluster_dns_ip(cfg.service_cidr)]
    if "cluster-domain" not in given:
        args += ["--cluster-domain", cfg.cluster_domain]
    if cfg.cloud_provider and "cloud-provider" not in given:
        args += ["--cloud-provider", cfg.cloud_provider]
    if cfg.verbose:
        args.append("-" + "v" * cfg.verbose)
    return args + cfg.kubelet_args


def proxy_args(cfg: AgentConfig, creds: Credentials) -> list[str]:
    """kube-proxy for this node: its own nftables table, named after the node's bridge; the node's
    name (local endpoints); its healthz on loopback, as k3s runs it."""
    args = [*KYB, "proxy", "--kubeconfig", str(creds.proxy_kubeconfig),
            "--table", proxy_table(cfg.cni_bridge), "--cni-bridge", cfg.cni_bridge,
            "--cluster-cidr", cfg.cluster_cidr, "--service-cluster-ip-range", cfg.service_cidr,
            "--hostname-override", cfg.node_name, "--healthz-bind-address", "127.0.0.1:10256",
            "--network-policy-table", netpol_table(cfg.cni_bridge)]
    if cfg.verbose:
        args.append("-" + "v" * cfg.verbose)
    return args


def network_args(cfg: AgentConfig, creds: Credentials) -> list[str]:
    """The node network daemon (host-gw routes, masquerading), with kube-proxy's credentials: it
    watches every Node, which ``system:node-proxier`` may and a node (the Node authorizer: only its
    own Node object) may not."""
    args = [*KYB, "network", "--kubeconfig", str(creds.proxy_kubeconfig),
            "--node-name", cfg.node_name, "--cni-bridge", cfg.cni_bridge, "--cluster-cidr", cfg.cluster_cidr,
            "--service-cluster-ip-range", cfg.service_cidr, "--ip-masq" if cfg.ip_masq else "--no-ip-masq"]
    if cfg.verbose:
        args.append("-" + "v" * cfg.verbose)
    return args


async def supervise(args: list[str], stop: asyncio.Event, stop_timeout: float, name: str = "kubelet",
                    restart: asyncio.Event | None = None, restart_signal: int = signal.SIGTERM) -> None:
    """Run a node component until ``stop``; restart it (1 s doubling to 30 s) if it dies meanwhile,
    and at once (stopping it first, with ``restart_signal``) whenever ``restart`` is set (new
    credentials). The kubelet's is SIGHUP: its SIGTERM means the node goes down (graceful node
    shutdown kills the pods when configured), a restart must not."""
    backoff = 1.0
    loop = asyncio.get_running_loop()
    restart = restart or asyncio.Event()
    while not stop.is_set():
        # Own session: a terminal's Ctrl-C reaches the agent only, which stops the kubelet in order;
        # an agent killed with SIGKILL takes it along (procctl), leaving the pods to their shims.
        proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.DEVNULL, start_new_session=True,
                                                    env=procctl.child_env())
        started = loop.time()
        stopped = asyncio.create_task(stop.wait())
        exited = asyncio.create_task(proc.wait())
        restarting = asyncio.create_task(restart.wait())
        await asyncio.wait({stopped, exited, restarting}, return_when=asyncio.FIRST_COMPLETED)
        restarting.cancel()
        if stop.is_set() or restart.is_set():
            exited.cancel()
            stopped.cancel()
            await _stop_child(proc, stop_timeout, signal.SIGTERM if stop.is_set() else restart_signal)
            if stop.is_set():
                return
            restart.clear()
            log.info("restarting %s to use its renewed certificates", name)
            continue
        stopped.cancel()
        backoff = 1.0 if loop.time() - started > 60 else min(backoff * 2, RETRY_MAX)
        log.warning("%s exited with %s; restarting in %.0fs", name, proc.returncode, backoff)
        with contextlib.suppress(TimeoutError):
            await wait_for(stop.wait(), backoff)


async def _stop_child(proc: asyncio.subprocess.Process, timeout: float, sig: int = signal.SIGTERM) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        await wait_for(proc.wait(), timeout)
    except TimeoutError:
        log.error("kubelet did not stop within %.0fs; killing it (its containerd may be left running)", timeout)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
