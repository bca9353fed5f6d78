"""Further servers of a cluster with an embedded etcd: ``kyb server --server URL --token TOKEN``.

The joining server's side of the server-join protocol (the first server's is
``kybernetes.apiserver.join.servers``; the paths and the shared files are ``kybernetes.join``'s)::

    joining server                                             a server of the cluster
      GET /cacerts (TLS not verified), sha256 == the token's hash? else stop   (as an agent)
      POST /kybernetes.io/v1/server-bootstrap   Bearer <server secret>, TLS pinned to that CA
                    <---------------------------------------   {"files": {"ca.crt": PEM, "ca.key": ...}}
      DATA_DIR/tls/<file> for each (refused if the data dir holds different ones: another cluster's),
      DATA_DIR/server-token := TOKEN
      POST /kybernetes.io/v1/etcd-members   {"name": NODE, "peerURL": "https://ADVERTISE:PEER_PORT"}
                    <---------------------------------------   {"id": HEX, "initialCluster": "a=...,NODE=..."}
      etcd --initial-cluster-state existing --initial-cluster <that>   (``EmbeddedEtcd.command``)

``join_cluster`` does the three requests; a server that does not answer (or answers 5xx) is asked
again every ``RETRY`` seconds, anything else (a wrong token: 401, a wrong CA, a member of that name
already started: 409) is a :class:`ServerJoinError` that ends ``kyb server`` with its message.
It runs only on a data dir without a member: a restart rejoins through etcd's own data (no
``--server`` needed then), as does any later start.

A joining member is added as a learner (see ``kybernetes.apiserver.join.servers``): its server
waits until it is a voting member, which ``promote_learners``, run by every server, makes it once
it has caught up with the leader (etcd refuses to promote it before).

``remove_members_of_deleted_nodes`` is k3s's etcd member removal on Node deletion: every server
with an embedded member watches Nodes, and when one is deleted whose name is another server's
member (a member is named after its server's node), removes that member. Deleted while no server
watched, a Node's member stays: ``kyb etcd member remove NAME`` does the same by hand.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from kybernetes import join
from kybernetes.agent import JoinError, Unreachable, fetch_ca
from kybernetes.agent.credentials import pinned_context
from kybernetes.apiserver.join.tokens import write_server_token
from kybernetes.client import Client
from kybernetes.client.informer import Informer
from kybernetes.etcdmember import EmbeddedEtcd
from kybernetes.fileutil import write_atomic
from kybernetes.storage.etcd_client import EtcdConnection, parse_endpoints
from kybernetes.storage.etcd_members import (
    MemberError,
    list_members,
    member_named,
    promote_member,
    remove_member,
)
from kybernetes.storage.interface import UnavailableError

log = logging.getLogger(__name__)

RETRY = 2.0
PROMOTE_INTERVAL = 1.0
REMOVAL_PATIENCE = 60.0
HTTP_TIMEOUT = 30.0


class ServerJoinError(Exception):
    """The join cannot succeed as asked: the message says why (not worth retrying)."""


def join_cluster(member: EmbeddedEtcd, server: str, token: str) -> str:
    """Fetches the shared keys into the member's server data dir, keeps the server token, has the
    member added; the member's ``--initial-cluster``. Raises Unreachable (retry) or ServerJoinError."""
    try:
        parsed = join.parse_token(token, join.SERVER_TOKEN_USER)
        ca_pem = fetch_ca(server, parsed.ca_hash)
    except (ValueError, JoinError) as e:
        raise ServerJoinError(str(e)) from None
    ctx = pinned_context(ca_pem)
    files = _post(server, join.SERVER_BOOTSTRAP_PATH, ctx, parsed.secret, {}).get("files")
    if not isinstance(files, dict) or set(files) != set(join.SHARED_TLS_FILES) or \
            not all(isinstance(v, str) for v in files.values()) or files["ca.crt"].encode() != ca_pem:
        raise ServerJoinError(f"{server} answered the server bootstrap without the cluster's files")
    write_shared_files(member.tls_dir, files)
    write_server_token(member.server_data_dir, token)
    answer = _post(server, join.ETCD_MEMBERS_PATH, ctx, parsed.secret,
                   {"name": member.name, "peerURL": member.peer_url})
    initial = answer.get("initialCluster")
    if not isinstance(initial, str) or f"{member.name}={member.peer_url}" not in initial.split(","):
        raise ServerJoinError(f"{server} answered the member addition without this member's initial cluster")
    log.warning("joined: etcd member %s (%s), initial cluster %s", member.name, answer.get("id"), initial)
    return initial


def write_shared_files(tls_dir: Path, files: dict[str, str]) -> None:
    """Writes each shared file (keys 0600); ServerJoinError, before writing any, if the directory
    holds a different one already (the data dir of another cluster)."""
    for name, content in files.items():
        path = tls_dir / name
        if path.exists() and path.read_text() != content:
            raise ServerJoinError(f"{path} is not the cluster's: this data dir belongs to another cluster "
                                  "(join with a fresh --data-dir)")
    tls_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, content in files.items():
        write_atomic(tls_dir / name, content.encode(), 0o644 if name.endswith(".crt") else 0o600)


def _post(server: str, path: str, ctx: ssl.SSLContext, secret: str, body: dict[str, object]) -> dict[str, object]:
    url = server.rstrip("/") + path
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {secret}", "Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=HTTP_TIMEOUT) as resp:
            doc = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        msg = _message(e.read())
        if e.code >= 500:
            raise Unreachable(f"{url}: HTTP {e.code}: {msg}") from None
        if e.code == 401:
            raise ServerJoinError(f"{server} refused the server token ({msg}): give the one `kyb token server` "
                                  "prints on a server of the cluster") from None
        raise ServerJoinError(f"{url}: HTTP {e.code}: {msg}") from None
    except ssl.SSLCertVerificationError as e:
        raise ServerJoinError(f"{server}'s certificate does not verify against the cluster CA: "
                              f"{e.verify_message or e}") from None
    except (urllib.error.URLError, OSError) as e:
        raise Unreachable(f"{url}: {getattr(e, 'reason', e)}") from None
    except ValueError:
        raise ServerJoinError(f"{url} answered something that is not JSON") from None
    if not isinstance(doc, dict):
        raise ServerJoinError(f"{url} answered something that is not a JSON object")
    return doc


def _message(body: bytes) -> str:
    try:
        doc = json.loads(body)
        return str(doc["message"])
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")[:300]


async def join_with_retry(member: EmbeddedEtcd, server: str, token: str) -> str:
    """``join_cluster`` until it succeeds (a server that does not answer is logged and asked again)."""
    while True:
        try:
            return await asyncio.to_thread(join_cluster, member, server, token)
        except Unreachable as e:
            log.error("joining %s: %s; retrying in %.0fs", server, e, RETRY)
            await asyncio.sleep(RETRY)


async def remove_members_of_deleted_nodes(kubeconfig: Path, member: EmbeddedEtcd) -> None:
    """Until cancelled: removes the etcd member of each deleted Node that names another server's
    member (see the module docstring)."""
    deleted: asyncio.Queue[str] = asyncio.Queue()
    try:
        async with Client.from_kubeconfig(kubeconfig, user_agent="kybernetes-etcd-member-removal") as client:
            nodes = Informer(client, "v1", "nodes")
            nodes.add_handler(on_delete=lambda node: deleted.put_nowait(str(node["metadata"]["name"])))
            nodes.start()
            try:
                while True:
                    name = await deleted.get()
                    if name != member.name:
                        await _remove_member_of(name, member)
            finally:
                await nodes.stop()
    except Exception:  # the server runs on without it: say so once, loudly
        log.exception("the removal of deleted nodes' etcd members stopped")


async def _remove_member_of(node: str, member: EmbeddedEtcd) -> None:
    """Removes the member named ``node``, if there is one; a refusal (etcd protects the quorum for
    ``HealthInterval``, 5 s, after a member connects: ``unhealthy cluster``) is tried again every
    ``RETRY`` seconds for ``REMOVAL_PATIENCE``, then logged."""
    conn = EtcdConnection(parse_endpoints(member.client_url), member.client_tls(), timeout=10.0)
    deadline = asyncio.get_running_loop().time() + REMOVAL_PATIENCE
    try:
        while True:
            try:
                try:
                    found = await member_named(conn, node)
                except MemberError:
                    return  # not a server's node, or another server removed its member first
                await remove_member(conn, found.id)
                log.warning("node %s was deleted: removed its etcd member %s", node, found.hex_id)
                return
            except (MemberError, UnavailableError) as e:
                if asyncio.get_running_loop().time() > deadline:
                    log.error("node %s was deleted, but its etcd member could not be removed: %s", node, e)
                    return
            await asyncio.sleep(RETRY)
    finally:
        await conn.close()


async def promote_learners(member: EmbeddedEtcd) -> None:
    """Until cancelled, every ``PROMOTE_INTERVAL`` seconds: promotes each learner of the cluster
    that has caught up (asked through this server's member; a member that is a learner itself
    cannot ask, and says so, which is ignored as every refusal is: the next round asks again)."""
    conn = EtcdConnection(parse_endpoints(member.client_url), member.client_tls(), timeout=5.0)
    try:
        while True:
            try:
                for m in await list_members(conn):
                    if m.learner:
                        await _promote(conn, m.id, m.name)
            except (MemberError, UnavailableError) as e:
                log.debug("learner promotion: %s", e)
            await asyncio.sleep(PROMOTE_INTERVAL)
    finally:
        await conn.close()


async def _promote(conn: EtcdConnection, member_id: int, name: str) -> None:
    try:
        await promote_member(conn, member_id)
        log.warning("etcd learner %s (%x) promoted to a voting member", name, member_id)
    except MemberError as e:
        log.info("etcd learner %s (%x) not promoted yet: %s", name, member_id, e)
