"""The API server's join endpoints: ``GET /cacerts``, ``POST /kybernetes.io/v1/node-credentials``
and ``GET /kybernetes.io/v1/node-config`` (and, routed on to :mod:`.servers`, the endpoints
through which further servers join).

It turns a join token (or a node's still valid client certificate) and a CSR into node
credentials signed by the cluster CA, under the rules of the protocol described in
:mod:`kybernetes.join`: the CSR names exactly the node's identity (``system:kube-proxy`` for the
node's kube-proxy certificate), serving certificates get only
the node's addresses, and a per-node password keeps one node from taking another's name. The
node configuration is the server's :class:`~kybernetes.join.NodeSettings`, for nodes and join
tokens only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from kybernetes import errors
from kybernetes.apiserver.authz.authorizer import PRIVILEGED_GROUP
from kybernetes.apiserver.join import servers
from kybernetes.apiserver.join.tokens import TokenEntry, verify_secret, verify_server_secret
from kybernetes.httpserver.messages import Request, Response
from kybernetes.join import (
    BOOTSTRAPPERS_GROUP,
    CA_PATH,
    CREDENTIAL_KINDS,
    CREDENTIALS_PATH,
    NODE_CONFIG_PATH,
    NODE_USER_PREFIX,
    NODES_GROUP,
    NodeSettings,
    credential_subject,
    node_user,
    split_addresses,
    valid_node_name,
)

if TYPE_CHECKING:
    from kybernetes.apiserver.server import APIServer

log = logging.getLogger(__name__)

NODE_PASSWORDS_FILE = "join-node-passwords"
CERT_LIFETIME = dt.timedelta(days=365)
MAX_ADDRESSES = 32


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- certificates -----------------------------------------------------------------------------------


def _check_subject(csr: x509.CertificateSigningRequest, kind: str, node_name: str) -> None:
    want = credential_subject(kind, node_name)
    attrs = [(a.oid, a.value) for a in csr.subject]
    if len(attrs) != len(want) or set(attrs) != {(a.oid, a.value) for a in want}:
        raise errors.Forbidden(
            f"the CSR's subject {csr.subject.rfc4514_string()!r} is not "
            f"'{want.rfc4514_string()}': a join token only makes node credentials")


def _check_key(csr: x509.CertificateSigningRequest) -> None:
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return
    if isinstance(key, ed25519.Ed25519PublicKey):
        return
    raise errors.BadRequest("CSR key must be ECDSA P-256/P-384, RSA >= 2048 bits or Ed25519")


def sign_node_csr(ca_cert: x509.Certificate, ca_key: Any, csr: x509.CertificateSigningRequest, *,
                  serving: bool, dns_names: list[str] = (), ip_addresses: list[str] = (),  # type: ignore[assignment]
                  lifetime: dt.timedelta = CERT_LIFETIME) -> bytes:
    """Sign a (checked) node CSR with the cluster CA; client-auth or server-auth usage, never both,
    so a serving certificate stolen from a node's disk cannot log in as the node (and vice versa)."""
    now = _now()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if serving else ExtendedKeyUsageOID.CLIENT_AUTH
    rsa_key = isinstance(csr.public_key(), rsa.RSAPublicKey)
    b = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, rsa_key, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
                       critical=False)
    )
    if serving:
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


class JoinService:
    """``GET /cacerts`` and ``POST /kybernetes.io/v1/node-credentials`` on the API server.

    Routed before authentication: /cacerts is public (it is what the token's hash pins), and the
    credentials endpoint authenticates the join token itself. Everything else under
    ``/kybernetes.io/`` is 404.
    """

    def __init__(self, api: APIServer) -> None:
        self.api = api
        self._passwords = asyncio.Lock()  # one read-modify-write of the password file at a time
        self.servers = servers.ServerJoin(api)

    @property
    def data_dir(self) -> Path:
        return self.api.config.data_dir

    @staticmethod
    def handles(path: str) -> bool:
        return path == CA_PATH or path.startswith("/kybernetes.io/")

    async def handle(self, request: Request) -> Response:
        assert self.api.pki is not None
        if request.path == CA_PATH:
            if request.method not in ("GET", "HEAD"):
                raise errors.MethodNotAllowed(f"the server does not allow this method on {CA_PATH}")
            return Response(body=self.api.pki.ca_pem, content_type="application/x-pem-file")
        if request.path.rstrip("/") == NODE_CONFIG_PATH:
            return self._node_config(request)
        if request.path.rstrip("/") in servers.PATHS:
            return await self.servers.handle(request)
        if request.path.rstrip("/") != CREDENTIALS_PATH:
            raise errors.NotFound.no_resource()
        if request.method != "POST":
            raise errors.MethodNotAllowed(f"the server does not allow this method on {CREDENTIALS_PATH}")
        assert self.api.authenticator is not None
        peercert = request.peercert  # a certificate of the cluster CA only, not the front-proxy CA's
        peer = self.api.authenticator.cert_user(peercert, request.peercert_der if peercert else None)
        authorization = request.headers.get("Authorization", "")
        token: TokenEntry | None = None
        renewing: str | None = None
        if authorization or peer is None:
            token = self._authenticate(authorization)
        elif peer.name.startswith(NODE_USER_PREFIX) and NODES_GROUP in peer.groups:
            # Renewal: a joined node's own client certificate may renew that node's certificates
            # (and only that node's), so staying in the cluster does not need the join token.
            renewing = peer.name[len(NODE_USER_PREFIX):]
        else:
            raise errors.Forbidden(f"{peer.name!r} is not a node; join with a token")
        try:
            body = await request.json()
        except ValueError:
            raise errors.BadRequest("request body must be a JSON object") from None
        if not isinstance(body, dict):
            raise errors.BadRequest("request body must be a JSON object")
        if renewing is not None and body.get("nodeName") != renewing:
            raise errors.Forbidden(f"{node_user(renewing)} may renew only its own certificates")
        return await self._issue(body, token)

    def node_settings(self) -> NodeSettings:
        config = self.api.config
        return config.node_settings or NodeSettings(service_cidr=config.service_cidr)

    def _node_config(self, request: Request) -> Response:
        """The node configuration, to a node, a K10 join token or a bootstrap token (see
        :mod:`kybernetes.join`), and to ``system:masters`` (who may read anything); 401 for
        credentials no authenticator accepts, 403 for anyone else."""
        if request.method not in ("GET", "HEAD"):
            raise errors.MethodNotAllowed(f"the server does not allow this method on {NODE_CONFIG_PATH}")
        authorization = request.headers.get("Authorization", "")
        scheme, _, secret = authorization.partition(" ")
        joining = scheme.lower() == "bearer" and secret.strip() and (
            verify_secret(self.data_dir, secret.strip()) or verify_server_secret(self.data_dir, secret.strip()))
        if not joining:
            assert self.api.authenticator is not None
            user = self.api.authenticator.authenticate(
                request.peercert, authorization or None, anonymous=self.api.anonymous, headers=request.headers,
                der=request.peercert_der if request.peercert else None)
            if not {NODES_GROUP, BOOTSTRAPPERS_GROUP, PRIVILEGED_GROUP} & set(user.groups):
                # responsewriters.Forbidden of a non-resource request
                raise errors.Forbidden(f'forbidden: User "{user.name}" cannot get path "{NODE_CONFIG_PATH}"',
                                       details={})
        return Response(body=json.dumps(self.node_settings().to_json()).encode(), content_type="application/json")

    def _authenticate(self, authorization: str) -> TokenEntry:
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise errors.Unauthorized("a join token is required (Authorization: Bearer <secret>)")
        entry = verify_secret(self.data_dir, secret)
        if entry is None and verify_server_secret(self.data_dir, secret):
            entry = TokenEntry(secret, description="the server token")  # k3s: agents may join with it
        if entry is None:
            # One answer for unknown, revoked and expired: no oracle for which tokens once existed.
            raise errors.Unauthorized("invalid, revoked or expired join token")
        return entry

    async def _issue(self, body: dict[str, Any], token: TokenEntry | None) -> Response:
        pki = self.api.pki
        assert pki is not None
        node = body.get("nodeName")
        if not isinstance(node, str) or not valid_node_name(node):
            raise errors.BadRequest("nodeName must be a DNS subdomain (lowercase, at most 253 characters)")
        kind = body.get("kind", "client")
        if kind not in CREDENTIAL_KINDS:
            raise errors.BadRequest('kind must be "client", "serving" or "kube-proxy"')
        password = body.get("nodePassword")
        if not isinstance(password, str) or len(password) < 16:
            raise errors.BadRequest("nodePassword (at least 16 characters) is required")
        csr_pem = body.get("csr")
        if not isinstance(csr_pem, str):
            raise errors.BadRequest("csr must be a PEM certificate signing request")
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError as e:
            raise errors.BadRequest(f"csr is not a PEM certificate signing request: {e}") from None
        if not csr.is_signature_valid:
            raise errors.BadRequest("the CSR's signature does not verify")
        _check_subject(csr, kind, node)
        _check_key(csr)
        dns: list[str] = []
        ips: list[str] = []
        if kind == "serving":
            addresses = body.get("addresses", [])
            if (not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses)
                    or len(addresses) > MAX_ADDRESSES):
                raise errors.BadRequest(f"addresses must be a list of at most {MAX_ADDRESSES} strings")
            try:
                dns, ips = split_addresses([node, *addresses])
            except ValueError as e:
                raise errors.BadRequest(str(e)) from None
            dns, ips = sorted(set(dns)), sorted(set(ips))
        async with self._passwords:
            await self._check_node_password(node, password)
        cert = sign_node_csr(pki.ca_cert, pki.ca_key, csr, serving=kind == "serving", dns_names=dns, ip_addresses=ips)
        how = f"token {token.id}... ({token.description or 'no description'})" if token else "renewal"
        log.info("join: issued a %s certificate for %s (%s)", kind, node_user(node), how)
        return Response(body=json.dumps({"certificate": cert.decode(), "ca": pki.ca_pem.decode(), "server": self.api.url}).encode(),
                        content_type="application/json")

    async def _check_node_password(self, node: str, password: str) -> None:
        """First come keeps the name while its Node object exists (see the module docstring)."""
        digest = hashlib.sha256(password.encode()).hexdigest()
        path = self.data_dir / NODE_PASSWORDS_FILE
        try:
            known: dict[str, str] = json.loads(path.read_text())
        except FileNotFoundError:
            known = {}
        have = known.get(node)
        if have is not None and hmac.compare_digest(have, digest):
            return
        if have is not None and await self._node_exists(node):
            raise errors.Forbidden(
                f"node {node!r} already joined with another node password; delete the Node object to reuse "
                "the name, or give this node its agent data dir back")
        known[node] = digest
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(known, f, indent=1)
        os.replace(tmp, path)

    async def _node_exists(self, node: str) -> bool:
        registry = self.api.registry
        nodes = self.api.catalogue.get("", "v1", "nodes")
        if registry is None or nodes is None:
            return True  # cannot tell: keep the recorded password (fail closed)
        try:
            await registry.get(nodes, "", node)
        except errors.NotFound:
            return False
        return True
