"""Joining nodes: the protocol, and what the agent and the API server both know of it.

This module is the shared part (the token format and the CA hash it pins, the endpoint paths,
the node identity a join certificate carries, node names and addresses), below both sides: the
server side (the token store, the endpoint and CSR signing) is :mod:`kybernetes.apiserver.join`,
the client side is :mod:`kybernetes.agent`. It imports no component, so ``kyb agent`` starts
without loading the API server.

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
         "kind": "client" | "serving" | "kube-proxy", "addresses": [...]}
                    <------------------------------------   {"certificate": PEM, "ca": PEM, "server": URL}
      GET /kybernetes.io/v1/node-config   (the node's new client certificate, or the token)
                    <------------------------------------   {"cloudProvider": "external" | "",
                                                             "clusterDNS": IP, "clusterDomain": D,
                                                             "serviceCIDR": CIDR, "clusterCIDR": CIDR}

The node configuration (k3s' supervisor config endpoint, smaller) is the server's cluster-wide
settings a node's kubelet and kube-proxy must agree with (:class:`NodeSettings`). It is open to
nodes (a client certificate of ``system:nodes``) and to the join's token identities (a K10
token's secret, a bootstrap token): 401 for credentials nothing accepts, 403 (Kubernetes'
``forbidden: User "U" cannot get path "P"``) for any other user, anonymous included. A field
the server leaves empty it does not know (``kyb apiserver`` alone knows only its service range);
the agent keeps its own default for it. An older server answers 404: the agent keeps all its
defaults. The agent's own flags (``--cluster-dns`` ...) and ``--kubelet-arg`` always win.

Trust model:

- The token is a bearer secret *and* a CA pin. Whoever holds it can make a node; whoever answers
  must hold the CA whose hash it carries (a man in the middle cannot present that CA's certificate
  for the real server without the CA key). The secret is sent only after the server proved that.
- The node's private keys are generated on the node and never travel: the server only signs a
  CSR. A client CSR must say exactly ``CN=system:node:N, O=system:nodes`` for the requested N (the
  Node authorizer's identity); anything else is refused, so a join token cannot mint
  ``system:masters`` or another user. Serving certificates carry the same subject and get the SANs
  the node asks for (its addresses), with server-auth usage only. The ``kube-proxy`` kind is the
  node's kube-proxy client certificate: exactly ``CN=system:kube-proxy`` (k3s serves its agents the
  same), so kube-proxy runs with ``system:node-proxier``'s rights rather than the node's.
- A join token lets its holder pick any node name. To keep one node from taking over another's
  identity, each request carries a per-node random password (k3s' node password): the first join of
  a name records its hash, and while that Node object exists only the same password may obtain
  certificates for it. Deleting the Node frees the name.
- Renewal: a node whose client certificate is still valid presents it (mutual TLS, no token) to
  renew its certificates, for its own name only, so a node stays after its token is revoked or
  expired, as with kubelet certificate rotation.
- Tokens live in the server's data dir, in plain (see :mod:`kybernetes.apiserver.join.tokens` for
  why), and ``kyb token`` edits them there without talking to the server.

Servers: a cluster with an embedded etcd also has a *server token*, ``K10<CA hash>::server:<secret>``
(the same on every server of the cluster), which lets a machine join as another server
(``kyb server --server URL --token T``: :mod:`kybernetes.serverjoin` draws that protocol, on the
paths and the shared files below) and, as in k3s, join as an agent too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TOKEN_PREFIX = "K10"
TOKEN_USER = "node"
SERVER_TOKEN_USER = "server"
"""The user of the *server* token (``K10<CA hash>::server:<secret>``), which lets a machine join
as another server (k3s's server token, apart from agent tokens): see "Servers" below."""
CA_PATH = "/cacerts"
CREDENTIALS_PATH = "/kybernetes.io/v1/node-credentials"
NODE_CONFIG_PATH = "/kybernetes.io/v1/node-config"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
KUBE_PROXY_USER = "system:kube-proxy"
"""The user kube-proxy runs as on every node (bound to ``system:node-proxier``), as k3s hands it out."""
CREDENTIAL_KINDS = ("client", "serving", "kube-proxy")
NODE_LEASE_NAMESPACE = "kube-node-lease"
"""Where each node's Lease lives (``corev1.NamespaceNodeLease``), named after the node."""
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_NAME = re.compile(r"^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$")


# --- tokens ---------------------------------------------------------------------------------------


def ca_hash(ca_pem: bytes) -> str:
    """The CA's identity in a token: sha256 of its PEM exactly as the server stores and serves it."""
    return hashlib.sha256(ca_pem).hexdigest()


def format_token(ca_pem: bytes, secret: str, user: str = TOKEN_USER) -> str:
    return f"{TOKEN_PREFIX}{ca_hash(ca_pem)}::{user}:{secret}"


@dataclass(frozen=True)
class ParsedToken:
    ca_hash: str
    user: str
    secret: str


def parse_token(token: str, want_user: str = "") -> ParsedToken:
    """Split a full token; ValueError with a message meant for people otherwise. ``want_user``
    ``server``: a server token only (``kyb server --server``); "": what an agent may join with, an
    agent token (``node``) or, as in k3s, the server token.

    Short tokens (the secret alone) are refused: without the hash the node would have to trust
    whatever CA the first server it reaches hands out.
    """
    token = token.strip()
    users: tuple[str, ...]
    if want_user == SERVER_TOKEN_USER:
        users, shape, printed_by = (SERVER_TOKEN_USER,), f"{SERVER_TOKEN_USER}:<secret>", "`kyb token server`"
    else:
        users, shape, printed_by = (TOKEN_USER, SERVER_TOKEN_USER), f"{TOKEN_USER}:<secret>", \
            "`kyb token create` or `kyb server`"
    if not token.startswith(TOKEN_PREFIX) or "::" not in token:
        raise ValueError(f"not a kybernetes join token: expected K10<CA hash>::{shape} (as printed by {printed_by})")
    digest, _, creds = token[len(TOKEN_PREFIX):].partition("::")
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError("join token: the CA hash must be 64 lowercase hex digits (sha256)")
    user, sep, secret = creds.partition(":")
    if not sep or user not in users or not secret:
        raise ValueError(f"join token: expected '{shape}' after '::' (as printed by {printed_by})")
    return ParsedToken(digest, user, secret)



# --- servers ---------------------------------------------------------------------------------------------

SERVER_BOOTSTRAP_PATH = "/kybernetes.io/v1/server-bootstrap"
ETCD_MEMBERS_PATH = "/kybernetes.io/v1/etcd-members"
SHARED_TLS_FILES = ("ca.crt", "ca.key", "service-account.key", "front-proxy-ca.crt", "front-proxy-ca.key",
                    "etcd-ca.crt", "etcd-ca.key")
"""The files of ``DATA_DIR/tls`` every server of a cluster holds the same (k3s's bootstrap data):
the cluster CA (clients' and nodes' certificates), the service-account signing key (tokens one
server issues the others accept), the front-proxy CA (the aggregation layer's trust) and the etcd
CA (members trust each other's peer certificates). Every other certificate there is a server's own,
issued from these."""

# --- node configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSettings:
    """The server's cluster-wide settings a node must share (``GET NODE_CONFIG_PATH``); "" is
    "the server does not say". ``cloud_provider`` is the kubelet's ``--cloud-provider``:
    ``external`` when a cloud-controller-manager initialises nodes."""

    cloud_provider: str = ""
    cluster_dns: str = ""
    cluster_domain: str = ""
    service_cidr: str = ""
    cluster_cidr: str = ""

    _WIRE = (("cloud_provider", "cloudProvider"), ("cluster_dns", "clusterDNS"),
             ("cluster_domain", "clusterDomain"), ("service_cidr", "serviceCIDR"),
             ("cluster_cidr", "clusterCIDR"))

    def to_json(self) -> dict[str, str]:
        return {wire: getattr(self, attr) for attr, wire in self._WIRE}

    @classmethod
    def from_json(cls, doc: object) -> NodeSettings:
        """From the endpoint's answer; ValueError if it is not an object of strings, or names a
        cloud provider other than "" or "external" (the kubelet knows no other). Unknown keys are
        ignored, so a newer server may say more."""
        if not isinstance(doc, dict):
            raise ValueError("the node configuration is not a JSON object")
        values: dict[str, str] = {}
        for attr, wire in cls._WIRE:
            value = doc.get(wire, "")
            if not isinstance(value, str):
                raise ValueError(f"the node configuration's {wire} is not a string")
            values[attr] = value
        if values["cloud_provider"] not in ("", "external"):
            raise ValueError(f"the node configuration names an unknown cloud provider {values['cloud_provider']!r}")
        return cls(**values)


# --- node identity -----------------------------------------------------------------------------------


def node_user(node_name: str) -> str:
    return f"{NODE_USER_PREFIX}{node_name}"


def node_identity(user_name: str, groups: Iterable[str]) -> tuple[str, bool]:
    """Kubernetes' ``nodeidentifier.NodeIdentity``: ``(node name, is a node)``. A node is a user
    named ``system:node:NAME`` in the ``system:nodes`` group; the name may be empty (a node user
    that names no node, which the Node authorizer and NodeRestriction refuse)."""
    if not user_name.startswith(NODE_USER_PREFIX) or NODES_GROUP not in groups:
        return "", False
    return user_name[len(NODE_USER_PREFIX):], True


def node_subject(node_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
                      x509.NameAttribute(NameOID.COMMON_NAME, node_user(node_name))])


def credential_subject(kind: str, node_name: str) -> x509.Name:
    """The exact subject a CSR of ``kind`` must carry: the node's identity for the kubelet's client
    and serving certificates, ``CN=system:kube-proxy`` (no group) for the node's kube-proxy."""
    if kind == "kube-proxy":
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, KUBE_PROXY_USER)])
    return node_subject(node_name)


def node_csr_pem(key: ec.EllipticCurvePrivateKey, node_name: str, kind: str = "client") -> bytes:
    """A PEM CSR with the subject of ``kind`` (:func:`credential_subject`) from the node's own key."""
    subject = credential_subject(kind, node_name)
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def cert_still_good(crt_path: Path, key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, node: str,
                    want_dns: list[str] = (), want_ips: list[str] = (),  # type: ignore[assignment]
                    renew_at: float = 1 / 3, kind: str = "client") -> bool:
    """Whether a certificate on disk can be kept: ours, this CA's, with the subject of ``kind`` for
    this node, and with more than ``renew_at`` of its lifetime left (0: merely not expired)."""
    try:
        cert = x509.load_pem_x509_certificate(crt_path.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    if cert.subject != credential_subject(kind, node):
        return False
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(serialization.Encoding.DER, pub) != \
            key.public_key().public_bytes(serialization.Encoding.DER, pub):
        return False
    now = dt.datetime.now(dt.UTC)
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    if cert.not_valid_after_utc - now <= life * renew_at or cert.not_valid_before_utc > now:
        return False
    if want_dns or want_ips:
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        have_dns = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
        have_ip = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
        if not ({d.lower() for d in want_dns} <= have_dns and set(want_ips) <= have_ip):
            return False
    return True


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


# --- bootstrap tokens (kubeadm's join) -----------------------------------------------------------------

BOOTSTRAP_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
"""cluster-bootstrap's ``BootstrapTokenPattern``: ``<id>.<secret>``."""
BOOTSTRAP_SECRET_PREFIX = "bootstrap-token-"
BOOTSTRAP_SECRET_TYPE = "bootstrap.kubernetes.io/token"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
BOOTSTRAP_EXTRA_GROUP = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")


def parse_bootstrap_token(token: str) -> tuple[str, str]:
    """``(id, secret)`` of a bootstrap token; ValueError (kubeadm's wording) if it is not one."""
    m = BOOTSTRAP_TOKEN.match(token.strip())
    if m is None:
        raise ValueError(f'the bootstrap token "{token.strip()}" was not of the form "{BOOTSTRAP_TOKEN.pattern}"')
    return m.group(1), m.group(2)


def bootstrap_secret_value(data: dict[str, object], key: str) -> str:
    """A bootstrap token Secret's ``data[key]`` decoded ("" when absent or not base64 text)."""
    import base64

    raw = data.get(key)
    if not isinstance(raw, str):
        return ""
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def bootstrap_expiration(data: dict[str, object], now: float) -> tuple[float, bool]:
    """cluster-bootstrap's ``GetExpiration``: ``(seconds left, expired)``; no ``expiration`` is
    ``(0, False)``, one that does not parse as RFC 3339 counts as expired."""
    import datetime as dt

    text = bootstrap_secret_value(data, "expiration")
    if not text:
        return 0.0, False
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return 0.0, True
    if when.tzinfo is None or "T" not in text:  # Go's time.RFC3339 wants both
        return 0.0, True
    left = when.timestamp() - now
    return (0.0, True) if left <= 0 else (left, False)


def bootstrap_groups(data: dict[str, object]) -> list[str] | None:
    """``system:bootstrappers`` plus ``auth-extra-groups``, sorted (``GetGroups``); None if an
    extra group is not allowed."""
    groups = {BOOTSTRAPPERS_GROUP}
    extra = bootstrap_secret_value(data, "auth-extra-groups")
    for group in extra.split(",") if extra else []:
        group = group.strip()
        if not BOOTSTRAP_EXTRA_GROUP.match(group):
            return None
        groups.add(group)
    return sorted(groups)


def ca_public_key_hash(ca_pem: bytes) -> str:
    """kubeadm's ``--discovery-token-ca-cert-hash``: ``sha256:`` + hex of the sha256 of the CA
    certificate's SubjectPublicKeyInfo (``pubkeypin.Hash``)."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()
