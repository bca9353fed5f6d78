"""etcd for tests and benchmarks: Debian's /usr/bin/etcd on loopback, TLS, a temp dir, free ports.

Each member is a child process ended by its PID (kill -9 on request; SIGTERM, then SIGKILL, at the
end); their command line and certificates are kybernetes.etcdmember's, as `kyb server
--cluster-init`'s member's are. Also reachable as ``kybernetes.testing.EtcdCluster``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from kybernetes.etcdmember import etcd_pki, member_command
from kybernetes.etcdmember import wait_healthy as wait_member_healthy
from kybernetes.storage.etcd_client import EtcdConnection, TLSFiles, parse_endpoints
from kybernetes.testing import free_port


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
        self.member_tls = etcd_pki(self.dir)
        self.tls = self.member_tls.client
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
        initial = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        m.dir.mkdir(parents=True, exist_ok=True)
        log = open(m.dir / "etcd.log", "ab")  # noqa: SIM115 (the child holds it)
        m.proc = subprocess.Popen(
            member_command(m.name, m.dir / "data", m.client_url, m.peer_url, initial, f"kyb-test-{os.getpid()}",
                           self.member_tls, "--heartbeat-interval", "50", "--election-timeout", "500",
                           "--listen-metrics-urls", f"http://127.0.0.1:{free_port()}"),
            stdout=log, stderr=log, start_new_session=True,
        )
        log.close()

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every running member answers a linearizable read (so the cluster has a leader)."""
        deadline = time.monotonic() + timeout
        for m in self.members:
            proc = m.proc
            if proc is not None:
                await wait_member_healthy(m.client_url, self.tls, lambda p=proc: p.poll() is None,  # type: ignore[misc]
                                          m.dir / "etcd.log", max(deadline - time.monotonic(), 0.1))

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

