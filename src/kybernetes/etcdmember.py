"""etcd members run by kybernetes: the command line of one member, its certificates, its health.

Two users share this: ``kyb server --cluster-init`` or ``--server`` (``EmbeddedEtcd``: this
machine's member, run as a supervised child of the server, see ``kybernetes.bundle``; a joining
server's is added by the server it joins, ``kybernetes.serverjoin``) and the test harness's
``kybernetes.testing.EtcdCluster`` (several members on loopback).

Guarantees:

- ``etcd_pki(DIR)`` keeps an etcd CA of its own in DIR/tls (``etcd-ca.crt``/``.key``; k3s keeps
  one in ``server/tls/etcd/``), apart from the cluster CA (``ca.crt``): a client certificate the
  cluster CA signs (every user and component has one) must not open the store. From it: one
  certificate for the members' client and peer listeners (``etcd-server``, for 127.0.0.1, localhost
  and the member's advertise address) and one client certificate for the API server
  (``etcd-client``). Existing files are reused while they name every address asked for.
- ``EmbeddedEtcd`` listens for peers on its advertise address and for clients on 127.0.0.1 and
  that address; ``advertise_peer_url`` corrects the cluster's record of its peer URL (a member
  first run on loopback, or on another address) once it runs.
- ``member_command`` is the etcd (Debian's /usr/bin/etcd, v3.4) command line of one member: client
  and peer TLS with client-certificate authentication on both, progress notifications every 5 s (the
  store's watches rely on them). On a data dir that already holds a member, etcd ignores the
  ``--initial-*`` flags and rejoins its cluster: a restart never re-initialises.
- ``EmbeddedEtcd.stop_leftovers`` ends (by PID: SIGTERM, SIGKILL after a timeout) any etcd still
  serving the member's data dir: a server's member dies with it (``kybernetes.procctl``), but one
  left by a kybernetes from before that, or started by hand, must not serve in its place.
- ``removed_since`` tells, from the member's log, that its cluster removed it (etcd then exits,
  and says its data dir must go): a server must not run it again as that member.
- ``wait_healthy`` returns once the member at a client URL answers a linearizable read (so its
  cluster has a leader), and raises TimeoutError (naming ``log``) if it does not within ``timeout``
  or its process is gone.

etcd's client (grpc) is imported by the functions that talk to the member or make its client's
files, not with the module: ``kyb server`` reads whether its data dir holds a member on every
start, and a server on SQLite never loads grpc (issue 18: idle memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kybernetes.fileutil import write_atomic
from kybernetes.pki import PKI

if TYPE_CHECKING:
    from kybernetes.storage.etcd_client import TLSFiles

log = logging.getLogger(__name__)

ETCD = shutil.which("etcd") or "/usr/bin/etcd"

DEFAULT_CLIENT_PORT = 2379
DEFAULT_PEER_PORT = 2380


@dataclass(frozen=True)
class EtcdTLS:
    """The files of ``etcd_pki``: the member's (client and peer) serving pair, and the API server's."""

    member_cert: str
    member_key: str
    client: TLSFiles


def etcd_pki(directory: Path, addresses: tuple[str, ...] = ()) -> EtcdTLS:
    """The etcd CA in ``directory/tls`` and the certificates it signs (created on first use; the
    member's is issued again when it does not name every one of ``addresses``, besides 127.0.0.1)."""
    pki = PKI.load_or_create(directory, "etcd-ca", "etcd-ca")
    ips = tuple(sorted({"127.0.0.1", *addresses}))
    crt, key = pki.ensure("etcd-server", common_name="etcd", dns_names=("localhost",),
                          ip_addresses=ips, server=True, client=True)
    client_crt, client_key = pki.ensure("etcd-client", common_name="kybernetes", client=True)
    from kybernetes.storage.etcd_client import TLSFiles

    return EtcdTLS(str(crt), str(key), TLSFiles(str(pki.ca_path), str(client_crt), str(client_key)))


def member_command(name: str, data_dir: Path, client_url: str, peer_url: str, initial_cluster: str,
                   cluster_token: str, tls: EtcdTLS, *extra: str, listen_client_urls: str = "",
                   cluster_state: str = "new") -> list[str]:
    """The command line of member ``name`` (``initial_cluster``: ``NAME=PEER_URL,...``; it listens
    for clients on ``listen_client_urls``, default ``client_url``, which it advertises; a member
    added to a running cluster starts with ``cluster_state`` ``existing``)."""
    ca = tls.client.cafile
    return [
        ETCD, "--name", name, "--data-dir", str(data_dir),
        "--listen-client-urls", listen_client_urls or client_url, "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", initial_cluster, "--initial-cluster-state", cluster_state,
        "--initial-cluster-token", cluster_token,
        "--cert-file", tls.member_cert, "--key-file", tls.member_key, "--trusted-ca-file", ca, "--client-cert-auth",
        "--peer-cert-file", tls.member_cert, "--peer-key-file", tls.member_key, "--peer-trusted-ca-file", ca,
        "--peer-client-cert-auth",
        "--experimental-watch-progress-notify-interval", "5s",
        "--logger", "zap", "--log-outputs", "stderr", *extra,
    ]


async def wait_healthy(client_url: str, tls: TLSFiles, alive: Callable[[], bool], log: Path,
                       timeout: float = 30.0) -> None:
    """Until the member at ``client_url`` answers a linearizable read; see the module docstring."""
    import grpc.aio

    from kybernetes.storage.etcd import COMPACT_REV_KEY
    from kybernetes.storage.etcd_client import EtcdConnection, parse_endpoints
    from kybernetes.storage.etcdpb import rpc_pb2 as rpc

    deadline = time.monotonic() + timeout
    conn = EtcdConnection(parse_endpoints(client_url), tls, timeout=2.0)
    try:
        while True:
            try:
                await conn.kv().Range(rpc.RangeRequest(key=COMPACT_REV_KEY), timeout=2)
                return
            except grpc.aio.AioRpcError:
                if not alive() or time.monotonic() > deadline:
                    raise TimeoutError(f"etcd at {client_url} is not healthy: see {log}") from None
                await asyncio.sleep(0.1)
    finally:
        await conn.close()


REMOVED = "the member has been permanently removed from the cluster"
"""What etcd logs (and then exits 0) when it starts as a member its cluster removed."""


class MemberRemovedError(Exception):
    """The data dir's member was removed from its cluster: it can never run again as that member."""


def removed_since(log: Path, offset: int) -> bool:
    """Whether etcd wrote ``REMOVED`` to ``log`` past ``offset`` (the size before this start)."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return REMOVED.encode() in f.read()
    except OSError:
        return False


@dataclass(frozen=True)
class EmbeddedEtcd:
    """``kyb server``'s member (``--cluster-init``, or joined with ``--server``): named after the
    node, data in ``D/db/etcd``, certificates in ``D/tls/etcd-*``; clients on 127.0.0.1 and the
    advertise address, peers on the advertise address (127.0.0.1 when the server advertises none)."""

    server_data_dir: Path
    name: str
    client_port: int = DEFAULT_CLIENT_PORT
    peer_port: int = DEFAULT_PEER_PORT
    advertise_address: str = "127.0.0.1"

    @property
    def data_dir(self) -> Path:
        return self.server_data_dir / "db" / "etcd"

    @property
    def tls_dir(self) -> Path:
        return self.server_data_dir / "tls"

    @property
    def client_url(self) -> str:
        """What the API server is given as ``--datastore-endpoint``."""
        return f"https://127.0.0.1:{self.client_port}"

    @property
    def advertise_client_url(self) -> str:
        return f"https://{_host(self.advertise_address)}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{_host(self.advertise_address)}:{self.peer_port}"

    def exists(self) -> bool:
        """Whether the data dir holds this member already (a restart rejoins its cluster)."""
        return (self.data_dir / "member").is_dir()

    def client_tls(self) -> TLSFiles:
        """The API server's files (``--datastore-cafile/-certfile/-keyfile``); they exist after ``command()``."""
        from kybernetes.storage.etcd_client import TLSFiles

        return TLSFiles(str(self.tls_dir / "etcd-ca.crt"), str(self.tls_dir / "etcd-client.crt"),
                        str(self.tls_dir / "etcd-client.key"))

    def stop_leftovers(self, timeout: float = 10.0) -> list[int]:
        """Ends every etcd process on this member's data dir (see the module docstring); their PIDs."""
        pids = etcd_processes(self.data_dir)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        return pids

    def command(self, initial_cluster: str = "") -> list[str]:
        """The member's command line, creating its certificates first if they do not exist (or do
        not name its advertise address). ``initial_cluster``: the cluster it joins (the first
        server's ``etcd-members`` answer); empty, a new cluster of this member alone. Either is
        ignored by etcd once the data dir holds the member. Records the member's URLs (``save``)."""
        tls = etcd_pki(self.server_data_dir, (self.advertise_address,))
        assert tls.client == self.client_tls(), "etcd_pki's file names changed"
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.save()
        listen = dict.fromkeys([self.client_url, self.advertise_client_url])
        return member_command(self.name, self.data_dir, self.advertise_client_url, self.peer_url,
                              initial_cluster or f"{self.name}={self.peer_url}", "kybernetes", tls,
                              listen_client_urls=",".join(listen),
                              cluster_state="existing" if initial_cluster else "new")

    def save(self) -> None:
        """Records name and ports in ``D/db/etcd-member.json``, for ``kyb etcd`` (``load``)."""
        doc = {"name": self.name, "clientPort": self.client_port, "peerPort": self.peer_port,
               "advertiseAddress": self.advertise_address}
        write_atomic(self.server_data_dir / MEMBER_FILE, json.dumps(doc).encode(), 0o600)

    @classmethod
    def load(cls, server_data_dir: Path) -> EmbeddedEtcd | None:
        """The member a server on ``server_data_dir`` last ran, or None (never, or not recorded)."""
        try:
            doc = json.loads((server_data_dir / MEMBER_FILE).read_text())
            return cls(server_data_dir, str(doc["name"]), int(doc["clientPort"]), int(doc["peerPort"]),
                       str(doc["advertiseAddress"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    async def advertise_peer_url(self) -> None:
        """Makes the cluster's record of this member's peer URL ``peer_url`` (MemberUpdate): a
        member first started before it advertised an address (or on another one) is recorded
        with its old URL, which other members would dial. Call once the member is healthy."""
        from kybernetes.storage.etcd_client import EtcdConnection, parse_endpoints
        from kybernetes.storage.etcd_members import member_named, update_peer_urls

        conn = EtcdConnection(parse_endpoints(self.client_url), self.client_tls(), timeout=5.0)
        try:
            me = await member_named(conn, self.name)
            if me.peer_urls != (self.peer_url,):
                log.warning("etcd member %s: peer URL %s -> %s", self.name, ", ".join(me.peer_urls), self.peer_url)
                await update_peer_urls(conn, me.id, [self.peer_url])
        finally:
            await conn.close()


MEMBER_FILE = "db/etcd-member.json"


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def etcd_processes(data_dir: Path) -> list[int]:
    """The PIDs of etcd processes whose ``--data-dir`` is ``data_dir`` (this user's and, as root, all)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if Path(argv[0]).name == "etcd" and _flag_value(argv, "--data-dir") == str(data_dir):
            out.append(int(entry.name))
    return out


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1:]
    return None


def _alive(pid: int) -> bool:
    """Running (a zombie, already dead, awaits a parent's wait only)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def running_client_urls(data_dir: Path) -> list[str]:
    """The client URLs of the etcd running on ``data_dir`` (its ``--listen-client-urls``, loopback
    first: the etcd-server certificate always covers 127.0.0.1); [] when none runs there."""
    for pid in etcd_processes(data_dir):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        urls = [u for u in (_flag_value(argv, "--listen-client-urls") or "").split(",") if u]
        return sorted(urls, key=lambda u: "//127.0.0.1:" not in u and "//localhost:" not in u)
    return []
