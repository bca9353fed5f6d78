"""etcd's Cluster API (list, add, remove, update members) over an :class:`EtcdConnection`.

Used by the servers of an embedded etcd (``kybernetes.etcdmember``: a joining server's member is
added by the server it joins, ``kyb etcd member``, the removal of a deleted Node's member) and by
the API server's endpoint that adds a joining server's member (``apiserver/join/servers.py``).

Guarantees: every call goes through ``EtcdConnection.call`` (a deadline, failover to the next
endpoint on UNAVAILABLE, :class:`EtcdUnavailableError` when none answers); other gRPC errors are
raised as :class:`MemberError` with etcd's own message (``etcdserver: unhealthy cluster``, ...).
A member that was added but has not started yet has no name (etcd learns it at its first start):
``Member.started`` is False for it. A learner (``Member.learner``) receives the log but neither
votes nor counts for the quorum, and answers clients only serializable reads, until promoted.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc.aio

from kybernetes.storage.etcd_client import EtcdConnection
from kybernetes.storage.etcdpb import rpc_pb2 as rpc
from kybernetes.storage.etcdpb import rpc_pb2_grpc as rpc_grpc


class MemberError(Exception):
    """etcd refused a membership change (its message), or no member has the name asked for."""


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    learner: bool = False

    @property
    def started(self) -> bool:
        return bool(self.name)

    @property
    def hex_id(self) -> str:
        """The ID as etcdctl prints it."""
        return f"{self.id:x}"

    @classmethod
    def from_pb(cls, m: rpc.Member) -> Member:
        return cls(m.ID, m.name, tuple(m.peerURLs), tuple(m.clientURLs), m.isLearner)


def initial_cluster(members: list[Member], new_id: int, new_name: str) -> str:
    """``--initial-cluster`` for the member ``new_id`` joining ``members`` (all of them, as etcd
    checks; etcdctl's ``member add`` output: a member not started yet appears with an empty name)."""
    return ",".join(f"{new_name if m.id == new_id else m.name}={url}" for m in members for url in m.peer_urls)


async def _cluster(conn: EtcdConnection, method: str, request: object) -> object:
    async def go(_kv: object, timeout: float) -> object:
        return await getattr(rpc_grpc.ClusterStub(conn.channel()), method)(request, timeout=timeout)

    try:
        return await conn.call(go)  # type: ignore[arg-type]
    except grpc.aio.AioRpcError as e:
        raise MemberError(e.details() or str(e.code())) from None


async def list_members(conn: EtcdConnection) -> list[Member]:
    resp = await _cluster(conn, "MemberList", rpc.MemberListRequest())
    return [Member.from_pb(m) for m in resp.members]  # type: ignore[attr-defined]


async def add_member(conn: EtcdConnection, peer_url: str, learner: bool = False) -> tuple[Member, list[Member]]:
    """Adds a member at ``peer_url``, voting or a learner (which counts for no quorum until
    promoted): (the new member, every member after the change)."""
    resp = await _cluster(conn, "MemberAdd", rpc.MemberAddRequest(peerURLs=[peer_url], isLearner=learner))
    return Member.from_pb(resp.member), [Member.from_pb(m) for m in resp.members]  # type: ignore[attr-defined]


async def remove_member(conn: EtcdConnection, member_id: int) -> None:
    await _cluster(conn, "MemberRemove", rpc.MemberRemoveRequest(ID=member_id))


async def promote_member(conn: EtcdConnection, member_id: int) -> None:
    """Makes a learner a voting member; MemberError (``can only promote a learner member which is
    in sync with leader``) while it has not caught up."""
    await _cluster(conn, "MemberPromote", rpc.MemberPromoteRequest(ID=member_id))


async def update_peer_urls(conn: EtcdConnection, member_id: int, peer_urls: list[str]) -> None:
    await _cluster(conn, "MemberUpdate", rpc.MemberUpdateRequest(ID=member_id, peerURLs=peer_urls))


async def member_named(conn: EtcdConnection, name: str) -> Member:
    """The member called ``name``; MemberError if there is none."""
    for m in await list_members(conn):
        if m.name == name:
            return m
    raise MemberError(f'no etcd member named "{name}"')
