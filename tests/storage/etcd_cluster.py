"""Real etcd members for the tests: Debian's /usr/bin/etcd on loopback, TLS, a temp dir, free ports.

Each member is started with ``subprocess.Popen`` and ended by its PID (kill -9 on request, SIGTERM
then SIGKILL at the end). Certificates come from the cluster PKI helpers (``kybernetes.pki``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import grpc.aio

from kybernetes.pki import PKI
from kybernetes.storage.etcd import COMPACT_REV_KEY
from kybernetes.storage.etcd_client import EtcdConnection, TLSFiles, parse_endpoints
from kybernetes.storage.etcdpb import rpc_pb2 as rpc
from kybernetes.storage.etcdpb import rpc_pb2_grpc as rpc_grpc

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Member:
    name: str
    dir: Path
    client_port: int
    peer_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    """One or more etcd members sharing a CA; ``start()`` runs them, ``stop()`` ends them."""

    dir: Path
    size: int = 1
    members: list[Member] = field(default_factory=list)
    tls: TLSFiles = field(default_factory=TLSFiles)

    def __post_init__(self) -> None:
        pki = PKI.load_or_create(self.dir, "etcd-ca", "etcd-ca")
        server_crt, server_key = pki.ensure("etcd-server", common_name="etcd", dns_names=("localhost",),
                                            ip_addresses=("127.0.0.1",), server=True, client=True)
        client_crt, client_key = pki.ensure("etcd-client", common_name="kybernetes", client=True)
        self.server_tls = (str(server_crt), str(server_key))
        self.tls = TLSFiles(str(pki.ca_path), str(client_crt), str(client_key))
        for i in range(self.size):
            self.members.append(Member(f"m{i}", self.dir / f"m{i}", free_port(), free_port()))

    @property
    def endpoints(self) -> str:
        return ",".join(m.client_url for m in self.members)

    def connection(self) -> EtcdConnection:
        return EtcdConnection(parse_endpoints(self.endpoints), self.tls, timeout=5.0)

    def start(self) -> None:
        """Start every member (then ``await wait_healthy()``)."""
        for m in self.members:
            self.start_member(m)

    def start_member(self, m: Member) -> None:
        crt, key = self.server_tls
        initial = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        m.dir.mkdir(parents=True, exist_ok=True)
        log = open(m.dir / "etcd.log", "ab")  # noqa: SIM115 (the child holds it)
        m.proc = subprocess.Popen(
            [ETCD, "--name", m.name, "--data-dir", str(m.dir / "data"),
             "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
             "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
             "--initial-cluster", initial, "--initial-cluster-state", "new",
             "--initial-cluster-token", f"kyb-test-{os.getpid()}",
             "--cert-file", crt, "--key-file", key, "--trusted-ca-file", self.tls.cafile, "--client-cert-auth",
             "--peer-cert-file", crt, "--peer-key-file", key, "--peer-trusted-ca-file", self.tls.cafile,
             "--peer-client-cert-auth", "--heartbeat-interval", "50", "--election-timeout", "500",
             "--listen-metrics-urls", f"http://127.0.0.1:{free_port()}",
             "--experimental-watch-progress-notify-interval", "5s",
             "--logger", "zap", "--log-outputs", "stderr"],
            stdout=log, stderr=log, start_new_session=True,
        )
        log.close()

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every running member answers a linearizable read (so the cluster has a leader)."""
        deadline = time.monotonic() + timeout
        conn = self.connection()
        try:
            for i, m in enumerate(self.members):
                if m.proc is None:
                    continue
                stub = rpc_grpc.KVStub(conn._channel(i))
                while True:
                    try:
                        await stub.Range(rpc.RangeRequest(key=COMPACT_REV_KEY), timeout=2)
                        break
                    except grpc.aio.AioRpcError:
                        if m.proc.poll() is not None or time.monotonic() > deadline:
                            raise TimeoutError(f"etcd member {m.name} not healthy: see {m.dir}/etcd.log") from None
                        await asyncio.sleep(0.1)
        finally:
            await conn.close()

    def kill(self, m: Member) -> None:
        """kill -9 one member, by its PID."""
        assert m.proc is not None
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait(10)
        m.proc = None

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                os.kill(m.proc.pid, signal.SIGTERM)
                try:
                    m.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(m.proc.pid, signal.SIGKILL)
                    m.proc.wait(10)
            m.proc = None

