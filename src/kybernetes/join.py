"""Joining nodes: join tokens, and the API server's endpoint that turns a token into credentials.

The protocol (k3s' secure token, with kubeadm's "the node keeps its key" certificate flow)::

    K10<sha256 hex of the cluster CA certificate PEM>::node:<secret>
       |            |                                  |     '- authenticates the node to the cluster
       |            |                                  '- the token's user (always "node")
       |            '- authenticates the cluster to the node
       '- format marker

    agent                                                   API server
      GET /cacerts  (TLS *not* verified: nothing is trusted yet)
                    <------------------------------------   the CA certificate, PEM
      sha256(PEM) == hash in the token? else stop: someone else is answering.
      Pin that CA; from now on TLS is verified against it, host name included.
      POST /kybernetes.io/v1/node-credentials
        Authorization: Bearer <secret>
        {"nodeName": N, "csr": PEM, "nodePassword": P,
         "kind": "client" | "serving", "addresses": [...]}
                    <------------------------------------   {"certificate": PEM, "ca": PEM, "server": URL}

Trust model:

- The token is a bearer secret *and* a CA pin. Whoever holds it can make a node; whoever answers
  must hold the CA whose hash it carries (a man in the middle cannot present that CA's certificate
  for the real server without the CA key). The secret is sent only after the server proved that.
- The node's private keys are generated on the node and never travel: the server only signs a
  CSR. A client CSR must say exactly ``CN=system:node:N, O=system:nodes`` for the requested N (the
  Node authorizer's identity); anything else is refused, so a join token cannot mint
  ``system:masters`` or another user. Serving certificates carry the same subject and get the SANs
  the node asks for (its addresses), with server-auth usage only.
- A join token lets its holder pick any node name. To keep one node from taking over another's
  identity, each request carries a per-node random password (k3s' node password): the first join of
  a name records its hash, and while that Node object exists only the same password may obtain
  certificates for it. Deleting the Node frees the name.
- Renewal: a node whose client certificate is still valid presents it (mutual TLS, no token) to
  renew its certificates, for its own name only, so a node stays after its token is revoked or
  expired, as with kubelet certificate rotation.
- Tokens live in ``DATA_DIR/join-tokens`` (JSON, mode 0600, in the 0700 data dir). The secrets are
  stored as they are, like kubeadm's bootstrap-token Secrets and k3s' token file: whoever can read
  the file can also read ``tls/ca.key``, so hashing them would protect nothing while making
  ``kyb token list`` unable to show a token again. The server re-reads the file on every join
  request (joins are rare), so ``kyb token create`` and ``kyb token delete`` act at once without
  talking to the server. Expired tokens are refused and dropped on the next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import string
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kybernetes import errors
from kybernetes.apiserver.auth.authenticator import user_from_peercert
from kybernetes.fileutil import write_atomic
from kybernetes.httpserver import Request, Response

if TYPE_CHECKING:
    from kybernetes.apiserver.server import APIServer

log = logging.getLogger(__name__)

TOKEN_PREFIX = "K10"
TOKEN_USER = "node"
TOKENS_FILE = "join-tokens"
NODE_PASSWORDS_FILE = "join-node-passwords"
CA_PATH = "/cacerts"
CREDENTIALS_PATH = "/kybernetes.io/v1/node-credentials"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
CERT_LIFETIME = dt.timedelta(days=365)
DEFAULT_TTL = dt.timedelta(hours=24)
_SECRET_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_LEN = 32  # ~165 bits: guessing is hopeless, so no rate limiting is needed
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_NAME = re.compile(r"^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$")
MAX_ADDRESSES = 32


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- tokens ---------------------------------------------------------------------------------------


def ca_hash(ca_pem: bytes) -> str:
    """The CA's identity in a token: sha256 of its PEM exactly as the server stores and serves it."""
    return hashlib.sha256(ca_pem).hexdigest()


def format_token(ca_pem: bytes, secret: str) -> str:
    return f"{TOKEN_PREFIX}{ca_hash(ca_pem)}::{TOKEN_USER}:{secret}"


@dataclass(frozen=True)
class ParsedToken:
    ca_hash: str
    user: str
    secret: str


def parse_token(token: str) -> ParsedToken:
    """Split a full token; ValueError with a message meant for people otherwise.

    Short tokens (the secret alone) are refused: without the hash the node would have to trust
    whatever CA the first server it reaches hands out.
    """
    token = token.strip()
    if not token.startswith(TOKEN_PREFIX) or "::" not in token:
        raise ValueError("not a kybernetes join token: expected K10<CA hash>::node:<secret> "
                         "(as printed by `kyb token create` or `kyb server`)")
    digest, _, creds = token[len(TOKEN_PREFIX):].partition("::")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError("join token: the CA hash must be 64 lowercase hex digits (sha256)")
    user, sep, secret = creds.partition(":")
    if not sep or user != TOKEN_USER or not secret:
        raise ValueError(f"join token: expected '{TOKEN_USER}:<secret>' after '::'")
    return ParsedToken(digest, user, secret)


@dataclass
class TokenEntry:
    secret: str
    description: str = ""
    created: str = ""
    expires: str | None = None
    """RFC 3339; None: never."""
    default: bool = False
    """The server's own token (printed by ``kyb server`` on every start)."""

    def expires_at(self) -> dt.datetime | None:
        return dt.datetime.fromisoformat(self.expires) if self.expires else None

    def expired(self, now: dt.datetime | None = None) -> bool:
        at = self.expires_at()
        return at is not None and at <= (now or _now())

    @property
    def id(self) -> str:
        """A short name for listings and logs; not enough to use the token."""
        return self.secret[:6]


def tokens_path(data_dir: Path) -> Path:
    return data_dir / TOKENS_FILE


def read_ca(data_dir: Path) -> bytes:
    """The cluster CA of a server data dir; tokens need it, so it must exist (start the server once)."""
    path = data_dir / "tls" / "ca.crt"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"no cluster CA at {path}: start `kyb server --data-dir {data_dir}` once "
                                "(or pass the server's --data-dir)") from None


def load_tokens(data_dir: Path) -> list[TokenEntry]:
    path = tokens_path(data_dir)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    out = []
    for item in raw.get("tokens", []):
        if isinstance(item, dict) and isinstance(item.get("secret"), str):
            out.append(TokenEntry(**{k: v for k, v in item.items() if k in TokenEntry.__dataclass_fields__}))
    return out


@contextlib.contextmanager
def _locked_tokens(data_dir: Path) -> Iterator[list[TokenEntry]]:
    """Read-modify-write of the token file under an exclusive lock (two `kyb token create` at
    once must not lose one); the write is atomic (rename), so the server never reads half a file."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    lock_path = data_dir / f".{TOKENS_FILE}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        entries = load_tokens(data_dir)
        yield entries
        now = _now()
        keep = [e for e in entries if not e.expired(now)]
        path = tokens_path(data_dir)
        write_atomic(path, json.dumps({"tokens": [asdict(e) for e in keep]}, indent=1).encode(), 0o600)
    finally:
        os.close(fd)


def new_secret() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LEN))


def create_token(data_dir: Path, *, ttl: dt.timedelta | None = DEFAULT_TTL, description: str = "",
                 default: bool = False) -> str:
    """Add a token to the server's token file; returns the full token (K10...)."""
    ca_pem = read_ca(data_dir)
    now = _now()
    entry = TokenEntry(secret=new_secret(), description=description, created=now.isoformat(timespec="seconds"),
                       expires=(now + ttl).isoformat(timespec="seconds") if ttl else None, default=default)
    with _locked_tokens(data_dir) as entries:
        entries.append(entry)
    return format_token(ca_pem, entry.secret)


def server_token(data_dir: Path) -> str:
    """The server's default join token (never expires), made on first call; what ``kyb server``
    prints. ``kyb token delete`` revokes it like any other; the next start then makes a new one."""
    ca_pem = read_ca(data_dir)
    for e in load_tokens(data_dir):
        if e.default and not e.expired():
            return format_token(ca_pem, e.secret)
    return create_token(data_dir, ttl=None, description="default token of kyb server", default=True)


def delete_token(data_dir: Path, token: str) -> bool:
    """Revoke by full token, secret, or the short id ``kyb token list`` shows (if unambiguous)."""
    token = token.strip()
    with contextlib.suppress(ValueError):
        token = parse_token(token).secret
    with _locked_tokens(data_dir) as entries:
        matches = [e for e in entries if hmac.compare_digest(e.secret, token)]
        if not matches:
            by_id = [e for e in entries if e.id == token]
            matches = by_id if len(by_id) == 1 else []
        for e in matches:
            entries.remove(e)
    return bool(matches)


def verify_secret(data_dir: Path, secret: str, now: dt.datetime | None = None) -> TokenEntry | None:
    """The live token with this secret, or None (unknown, revoked or expired)."""
    found = None
    # Compare against every entry (no early exit) so timing says nothing about which one matched.
    for e in load_tokens(data_dir):
        if hmac.compare_digest(e.secret.encode(), secret.encode()) and not e.expired(now):
            found = e
    return found


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(text: str) -> dt.timedelta | None:
    """Go-style durations (``24h``, ``1h30m``, ``90s``) plus ``d``; ``0`` means never expires."""
    text = text.strip()
    if text in ("0", "0s", "never"):
        return None
    pos, total = 0, 0.0
    unit_s = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * unit_s[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r} (examples: 24h, 1h30m, 7d, 0 for never)")
    return dt.timedelta(seconds=total)


# --- certificates -----------------------------------------------------------------------------------


def node_user(node_name: str) -> str:
    return f"{NODE_USER_PREFIX}{node_name}"


def node_subject(node_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
                      x509.NameAttribute(NameOID.COMMON_NAME, node_user(node_name))])


def valid_node_name(name: str) -> bool:
    return 0 < len(name) <= 253 and bool(_DNS_SUBDOMAIN.match(name))


def split_addresses(addresses: list[str]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses), ValueError on anything else."""
    dns, ips = [], []
    for a in addresses:
        try:
            ips.append(str(ipaddress.ip_address(a)))
        except ValueError:
            if len(a) > 253 or not _DNS_NAME.match(a):
                raise ValueError(f"not an IP address or DNS name: {a!r}") from None
            dns.append(a.lower())
    return dns, ips


def _check_subject(csr: x509.CertificateSigningRequest, node_name: str) -> None:
    attrs = [(a.oid, a.value) for a in csr.subject]
    want = {(NameOID.COMMON_NAME, node_user(node_name)), (NameOID.ORGANIZATION_NAME, NODES_GROUP)}
    if len(attrs) != 2 or set(attrs) != want:
        raise errors.Forbidden(
            f"the CSR's subject {csr.subject.rfc4514_string()!r} is not "
            f"'CN={node_user(node_name)},O={NODES_GROUP}': a join token only makes node credentials")


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


# --- the API server side -------------------------------------------------------------------------


class JoinService:
    """``GET /cacerts`` and ``POST /kybernetes.io/v1/node-credentials`` on the API server.

    Routed before authentication: /cacerts is public (it is what the token's hash pins), and the
    credentials endpoint authenticates the join token itself. Everything else under
    ``/kybernetes.io/`` is 404.
    """

    def __init__(self, api: APIServer) -> None:
        self.api = api
        self._passwords = asyncio.Lock()  # one read-modify-write of the password file at a time

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
        if request.path.rstrip("/") != CREDENTIALS_PATH:
            raise errors.NotFound.no_resource()
        if request.method != "POST":
            raise errors.MethodNotAllowed(f"the server does not allow this method on {CREDENTIALS_PATH}")
        transport = request.transport
        peer = user_from_peercert(transport.get_extra_info("peercert") if transport is not None else None)
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

    def _authenticate(self, authorization: str) -> TokenEntry:
        scheme, _, secret = authorization.partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise errors.Unauthorized("a join token is required (Authorization: Bearer <secret>)")
        entry = verify_secret(self.data_dir, secret)
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
        if kind not in ("client", "serving"):
            raise errors.BadRequest('kind must be "client" or "serving"')
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
        _check_subject(csr, node)
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
