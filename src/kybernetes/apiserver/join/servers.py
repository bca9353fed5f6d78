"""Servers joining a cluster with an embedded etcd, the first server's side:
``POST /kybernetes.io/v1/server-bootstrap`` and ``POST /kybernetes.io/v1/etcd-members``.

Both answer only the *server* token (``Authorization: Bearer <secret>``, the secret of
``DATA_DIR/server-token``; see :mod:`.tokens`): anything else is kube-apiserver's 401 Status
(``Unauthorized``), the same for a wrong, missing or malformed token and on a server that has no
server token (SQLite, external etcd), so the answer says nothing about which. The token's CA hash
is what the joining server pinned before sending the secret (as an agent does: :mod:`kybernetes.join`).

- server-bootstrap answers ``{"files": {NAME: PEM, ...}}``: the files of ``DATA_DIR/tls`` that
  every server shares (``kybernetes.join.SHARED_TLS_FILES``: the CA keys and the service-account
  key). It changes nothing.
- etcd-members takes ``{"name": N, "peerURL": "https://IP:PORT"}``, adds a *learner* with that
  peer URL to this server's etcd (MemberAdd) and answers ``{"id": HEX, "initialCluster": ...}``,
  the joining member's ``--initial-cluster`` (``--initial-cluster-state existing``). As k3s does,
  the new member joins as a learner, which counts for no quorum: a join that fails half-way
  costs the cluster nothing, and the servers promote it once it has caught up
  (``kybernetes.serverjoin.promote_learners``). etcd takes one learner at a time (a second
  concurrent join is a 503 until the first is promoted). A retry of a
  join whose member was added but never started (same peer URL, no name yet) gets that member
  again rather than a second one; a started member with the same name or peer URL is a 409
  Conflict (``kyb etcd member remove N`` first: a member's data dir cannot be made anew under its
  old identity). etcd's own refusals (an unhealthy cluster, ...) are 503s with etcd's words.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from kybernetes import errors
from kybernetes.apiserver.join.tokens import verify_server_secret
from kybernetes.httpserver.messages import Request, Response
from kybernetes.join import ETCD_MEMBERS_PATH, SERVER_BOOTSTRAP_PATH, SHARED_TLS_FILES, valid_node_name

if TYPE_CHECKING:
    from kybernetes.apiserver.server import APIServer

log = logging.getLogger(__name__)

PATHS = (SERVER_BOOTSTRAP_PATH, ETCD_MEMBERS_PATH)


def parse_peer_url(value: object) -> str:
    """``https://IP:PORT`` (an IP address, as etcd's peer URLs; IPv6 in brackets), normalised;
    BadRequest otherwise."""
    if not isinstance(value, str):
        raise errors.BadRequest("peerURL must be a string: https://IP:PORT")
    try:
        parts = urlsplit(value)
        host, port = parts.hostname or "", parts.port
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise errors.BadRequest(f"peerURL {value!r} is not https://IP:PORT") from None
    if parts.scheme != "https" or port is None or parts.path not in ("", "/") or parts.query or parts.username:
        raise errors.BadRequest(f"peerURL {value!r} is not https://IP:PORT")
    return f"https://{f'[{ip}]' if ip.version == 6 else ip}:{port}"


class ServerJoin:
    """The two endpoints (see the module docstring), routed by :class:`~.service.JoinService`."""

    def __init__(self, api: APIServer) -> None:
        self.api = api

    async def handle(self, request: Request) -> Response:
        self._authenticate(request.headers.get("Authorization", ""))
        path = request.path.rstrip("/")
        if request.method != "POST":
            raise errors.MethodNotAllowed(f"the server does not allow this method on {path}")
        if path == SERVER_BOOTSTRAP_PATH:
            return _json(self._bootstrap())
        try:
            body = await request.json()
        except ValueError:
            raise errors.BadRequest("request body must be a JSON object") from None
        if not isinstance(body, dict):
            raise errors.BadRequest("request body must be a JSON object")
        return _json(await self._add_member(body))

    def _authenticate(self, authorization: str) -> None:
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret or not verify_server_secret(self.api.config.data_dir, secret):
            raise errors.Unauthorized("Unauthorized")  # kube-apiserver's words for any failed authentication

    def _bootstrap(self) -> dict[str, Any]:
        tls = self.api.config.data_dir / "tls"
        files = {}
        for name in SHARED_TLS_FILES:
            try:
                files[name] = (tls / name).read_text()
            except FileNotFoundError:
                # A server token exists only where the server runs its etcd member, which makes them all.
                raise errors.InternalError(f"this server has no {name} to share") from None
        log.info("server join: handed the cluster's shared keys to a joining server")
        return {"files": files}

    async def _add_member(self, body: dict[str, Any]) -> dict[str, Any]:
        # grpc (etcd's client) loads here, not with the API server: only a server on etcd adds members.
        from kybernetes.storage.etcd_client import EtcdConnection, TLSFiles, parse_endpoints
        from kybernetes.storage.etcd_members import MemberError, add_member, initial_cluster, list_members

        name = body.get("name")
        if not isinstance(name, str) or not valid_node_name(name):
            raise errors.BadRequest("name must be a DNS subdomain (lowercase, at most 253 characters): "
                                    "the joining server's node name")
        peer_url = parse_peer_url(body.get("peerURL"))
        cfg = self.api.config
        conn = EtcdConnection(parse_endpoints(cfg.datastore_endpoint), TLSFiles(*cfg.datastore_tls))
        try:
            members = await list_members(conn)
            retried = [m for m in members if not m.started and m.peer_urls == (peer_url,)]
            clash = [m for m in members if m.started and (m.name == name or peer_url in m.peer_urls)]
            if clash:
                raise errors.Conflict(
                    f'etcd member "{clash[0].name}" ({", ".join(clash[0].peer_urls)}) already exists: remove it '
                    f"with `kyb etcd member remove {clash[0].name}` before joining {name} at {peer_url}")
            if retried:
                new = retried[0]
            else:
                new, members = await add_member(conn, peer_url, learner=True)
                log.info("server join: added etcd member %s (%s) at %s", name, new.hex_id, peer_url)
        except MemberError as e:
            raise errors.ServiceUnavailable(f"etcd refused to add member {name}: {e}") from None
        finally:
            await conn.close()
        return {"id": new.hex_id, "initialCluster": initial_cluster(members, new.id, name)}


def _json(doc: dict[str, Any]) -> Response:
    return Response(body=json.dumps(doc).encode(), content_type="application/json")
