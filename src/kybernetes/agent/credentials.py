"""The agent's side of the node join (the protocol is described in ``kybernetes.join``): the
pinned cluster CA, the node's client and serving certificates, kube-proxy's certificate, the
kubeconfigs, the server's node settings, and certificate renewal.

On start::

    parse the token (K10<CA sha256>::node:<secret>)
    CA: DATA/agent/ca.crt if pinned by an earlier start (its hash must still be the token's),
        else GET <server>/cacerts without TLS verification, check sha256 == the token's, pin it
    client certificate (CN=system:node:N, O=system:nodes): reused if it is still good (signed by
        the pinned CA, for this node name, its key on disk, more than a third of its life left),
        else a CSR from the node's own key -> POST /kybernetes.io/v1/node-credentials
    serving certificate (kubelet port 10250, SANs: node name, host name, node IP): the same
    DATA/agent/kubelet.kubeconfig (cfg.server: under `kyb agent` the load balancer's URL; pinned CA,
        client certificate)
    kube-proxy's client certificate (CN=system:kube-proxy) and DATA/agent/kube-proxy.kubeconfig
    the server's node settings (GET /kybernetes.io/v1/node-config with the client certificate:
        cloud provider, cluster DNS and domain, service and cluster CIDRs) as the defaults of the
        kubelet's and kube-proxy's flags; the agent's own flags and --kubelet-arg win, and a
        server without the endpoint (404) leaves the agent's defaults (:func:`with_server_settings`)

With kubeadm's ``--token ID.SECRET --discovery-token-ca-cert-hash sha256:HEX`` instead, the CA is
pinned by its public key's hash and the client certificate comes from the CSR API (see
:func:`ensure_credentials`).

Trust: nothing is sent to the server before its CA matched the token's hash; after that every
connection verifies the server's certificate against the pinned CA, host name included. Private
keys are generated here, written 0600 in a 0700 directory, and never leave the machine. The node
password (``DATA/agent/node-password``) proves on later joins that this is the machine that first
took the node name (see ``kybernetes.join``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import json
import logging
import os
import secrets
import socket
import ssl
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kybernetes import join
from kybernetes.agent.config import HTTP_TIMEOUT, RETRY_MAX, AgentConfig, JoinError, NotServed, Unreachable
from kybernetes.fileutil import write_atomic
from kybernetes.join import cert_still_good
from kybernetes.pki import kubeconfig, load_or_create_key, write_kubeconfig

log = logging.getLogger(__name__)


# --- files -----------------------------------------------------------------------------------------


def _node_password(agent_dir: Path) -> str:
    path = agent_dir / "node-password"
    if path.exists():
        pw = path.read_text().strip()
        if len(pw) >= 16:
            return pw
    pw = secrets.token_hex(24)
    write_atomic(path, pw.encode() + b"\n", 0o600)
    return pw


# --- talking to the server -------------------------------------------------------------------------


def _url(server: str, path: str) -> str:
    return server.rstrip("/") + path


def _status_message(body: bytes) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        doc = json.loads(body)
        if isinstance(doc, dict) and doc.get("message"):
            return str(doc["message"])
    return body.decode(errors="replace")[:300]


def _request(url: str, ctx: ssl.SSLContext, data: bytes | None = None, headers: dict[str, str] | None = None
             ) -> bytes:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=HTTP_TIMEOUT) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as e:
        msg = _status_message(e.read())
        if e.code >= 500:
            raise Unreachable(f"{url}: HTTP {e.code}: {msg}") from None
        if e.code == 401:
            raise JoinError(f"the server refused the join token: {msg}") from None
        if e.code == 404:
            raise NotServed(f"{url}: HTTP 404: {msg}") from None
        raise JoinError(f"{url}: HTTP {e.code}: {msg}") from None
    except ssl.SSLCertVerificationError as e:
        raise JoinError(f"the server's certificate does not verify against the pinned cluster CA: "
                        f"{e.verify_message or e}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise Unreachable(f"{url}: {reason}") from None


def fetch_ca(server: str, want_hash: str, ca_hash: Callable[[bytes], str] = join.ca_hash) -> bytes:
    """Trust on first use, pinned by the token: fetch unverified, accept only the token's CA
    (``ca_hash``: the K10 token's hash of the PEM, or kubeadm's of the public key)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # nothing is trusted yet; the hash check below is the trust
    pem = _request(_url(server, join.CA_PATH), ctx)
    try:
        ca = x509.load_pem_x509_certificate(pem)
        got = ca_hash(pem)
    except ValueError:
        raise JoinError(f"{server} served something that is not a PEM certificate as its CA") from None
    if not hmac.compare_digest(got, want_hash):
        raise JoinError(f"the cluster CA served by {server} has hash {got}, but the join token expects "
                        f"{want_hash}: refusing to join (wrong server, or someone in between)")
    with contextlib.suppress(x509.ExtensionNotFound):
        if not ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise JoinError(f"the certificate {server} serves as its CA is not a CA")
    return pem


def pinned_context(ca_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    ctx.check_hostname = True
    return ctx


def request_certificate(server: str, ctx: ssl.SSLContext, secret: str | None, body: dict[str, object]) -> bytes:
    """POST a CSR; authenticated by the join token, or (``secret`` None) by the client
    certificate loaded into ``ctx`` (renewal)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    resp = _request(_url(server, join.CREDENTIALS_PATH), ctx, json.dumps(body).encode(), headers)
    try:
        doc = json.loads(resp)
        cert = doc["certificate"].encode()
        x509.load_pem_x509_certificate(cert)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise JoinError("the server's answer to the join request has no valid certificate") from None
    return bytes(cert)


# --- the node's identity -------------------------------------------------------------------------


def default_node_ip(server: str) -> str:
    """The address this machine uses to reach the server (a UDP connect sends nothing)."""
    host = urllib.parse.urlsplit(server).hostname or "127.0.0.1"
    try:
        infos = socket.getaddrinfo(host, 443, type=socket.SOCK_DGRAM)
        family, _, _, _, addr = infos[0]
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(addr)
            return str(s.getsockname()[0])
    except OSError:
        return "127.0.0.1"


@dataclass
class Credentials:
    ca: Path
    client_cert: Path
    client_key: Path
    serving_cert: Path
    serving_key: Path
    kubeconfig: Path
    proxy_kubeconfig: Path


def _pin_ca(cfg: AgentConfig) -> bytes:
    """The cluster CA: pinned on disk by an earlier start (it must still match the token), else
    fetched and checked against the K10 token's hash or kubeadm's discovery hash."""
    d = cfg.agent_dir
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    if cfg.bootstrap_token:
        want, ca_hash = cfg.discovery_hash, join.ca_public_key_hash
    else:
        want, ca_hash = join.parse_token(cfg.token).ca_hash, join.ca_hash  # ValueError: the caller reports it
    ca_path = d / "ca.crt"
    if ca_path.exists():
        ca_pem = ca_path.read_bytes()
        if not hmac.compare_digest(ca_hash(ca_pem), want):
            raise JoinError(f"{d} belongs to a cluster whose CA hash is {ca_hash(ca_pem)}, but the token "
                            f"is for {want}: use another --data-dir, or remove {d} to join anew")
        return ca_pem
    ca_pem = fetch_ca(cfg.server, want, ca_hash)
    write_atomic(ca_path, ca_pem, 0o644)
    log.info("pinned the cluster CA (%s)", want)
    return ca_pem


def _client_context(cfg: AgentConfig, ca_pem: bytes, key: ec.EllipticCurvePrivateKey) -> ssl.SSLContext | None:
    """A TLS context presenting the node's client certificate, if it is still valid (None if not)."""
    d = cfg.agent_dir
    if not cert_still_good(d / "client.crt", key, x509.load_pem_x509_certificate(ca_pem), cfg.node_name,
                           renew_at=0):
        return None
    ctx = pinned_context(ca_pem)
    ctx.load_cert_chain(d / "client.crt", d / "client.key")
    return ctx


def renew_client_certificate(cfg: AgentConfig, ca_pem: bytes, token: str | None = None) -> None:
    """A new client certificate through the CSR API (kubelet TLS bootstrap and rotation), with the
    bootstrap ``token``, or with the current certificate when ``token`` is None."""
    # Imported here: the agent's start stays light (it loads no component until it needs one).
    from kybernetes.kubelet import certificate as kubelet_certificate

    key = load_or_create_key(cfg.agent_dir / "client.key")
    ctx = pinned_context(ca_pem) if token is not None else _client_context(cfg, ca_pem, key)
    if ctx is None:
        raise JoinError("the node's client certificate has expired: join again with a bootstrap token")
    try:
        cert = kubelet_certificate.request_client_certificate(cfg.server, ctx, token, key, cfg.node_name)
    except kubelet_certificate.ServerUnavailable as e:
        raise Unreachable(str(e)) from None
    except kubelet_certificate.CertificateRefused as e:
        raise JoinError(str(e)) from None
    write_atomic(cfg.agent_dir / "client.crt", cert, 0o644)
    log.info("obtained the client certificate for %s through the CSR API", join.node_user(cfg.node_name))


def ensure_credentials(cfg: AgentConfig) -> Credentials:
    """Everything the kubelet needs, from disk when still good, from the server otherwise: with a
    K10 token from the join endpoint; with a bootstrap token the client certificate through the
    CSR API, and the serving certificate from the join endpoint authenticated by that client
    certificate. (Kubernetes leaves kubelet-serving CSRs unapproved, to people or an external
    approver; the join endpoint issues a serving certificate for the node's own name and addresses
    to the holder of that node's client certificate only, the same trust without a manual step.)"""
    ca_pem = _pin_ca(cfg)
    d = cfg.agent_dir
    ca = x509.load_pem_x509_certificate(ca_pem)
    client_crt, client_key_path = d / "client.crt", d / "client.key"
    key = load_or_create_key(client_key_path)

    def auth() -> tuple[ssl.SSLContext, str | None]:
        # A still valid client certificate renews by itself; the token is for joining.
        ctx = _client_context(cfg, ca_pem, key)
        if ctx is not None:
            return ctx, None
        if cfg.bootstrap_token:
            raise JoinError("no valid client certificate to ask for the serving certificate with")
        return pinned_context(ca_pem), join.parse_token(cfg.token).secret

    if not cert_still_good(client_crt, key, ca, cfg.node_name):
        if cfg.bootstrap_token:
            renew_client_certificate(cfg, ca_pem, cfg.bootstrap_token)
        else:
            cert = request_certificate(cfg.server, *auth(), {
                "nodeName": cfg.node_name, "kind": "client", "csr": join.node_csr_pem(key, cfg.node_name).decode(),
                "nodePassword": _node_password(d)})
            write_atomic(client_crt, cert, 0o644)
            log.info("obtained the client certificate for %s", join.node_user(cfg.node_name))

    addresses = _serving_addresses(cfg)
    dns, ips = join.split_addresses(addresses)
    serving_crt, serving_key_path = d / "serving.crt", d / "serving.key"
    if not cert_still_good(serving_crt, load_or_create_key(serving_key_path), ca, cfg.node_name, dns, ips):
        _obtain_serving_certificate(cfg, *auth())
    proxy_kc = _ensure_kube_proxy_credentials(cfg, ca_pem, lambda csr: request_certificate(cfg.server, *auth(), {
        "nodeName": cfg.node_name, "kind": "kube-proxy", "csr": csr, "nodePassword": _node_password(d)}))
    return Credentials(d / "ca.crt", client_crt, client_key_path, serving_crt, serving_key_path,
                       _write_kubeconfig(cfg, ca_pem), proxy_kc)


def _serving_addresses(cfg: AgentConfig) -> list[str]:
    return sorted({cfg.node_name, socket.gethostname().lower(), cfg.node_ip} - {""})


def _obtain_serving_certificate(cfg: AgentConfig, ctx: ssl.SSLContext, secret: str | None) -> None:
    addresses = _serving_addresses(cfg)
    skey = load_or_create_key(cfg.agent_dir / "serving.key")
    cert = request_certificate(cfg.server, ctx, secret, {
        "nodeName": cfg.node_name, "kind": "serving", "csr": join.node_csr_pem(skey, cfg.node_name).decode(),
        "addresses": addresses, "nodePassword": _node_password(cfg.agent_dir)})
    write_atomic(cfg.agent_dir / "serving.crt", cert, 0o644)
    log.info("obtained the kubelet serving certificate for %s", ", ".join(addresses))


def _write_kubeconfig(cfg: AgentConfig, ca_pem: bytes) -> Path:
    """DATA/agent/kubelet.kubeconfig with the current client certificate (the kubelet's and kube-proxy's)."""
    d = cfg.agent_dir
    kc = d / "kubelet.kubeconfig"
    write_kubeconfig(kc, kubeconfig(cfg.server, ca_pem, (d / "client.crt").read_bytes(),
                                    (d / "client.key").read_bytes(), user=join.node_user(cfg.node_name)))
    return kc


def renew_certificates(cfg: AgentConfig, due: list[Path]) -> None:
    """Certificate rotation (run by :class:`kybernetes.kubelet.certificate.Rotation` at each
    certificate's jittered deadline): the client certificate through a
    ``kube-apiserver-client-kubelet`` CSR authenticated with the current one (the csrapproving
    controller's ``selfnodeclient`` rule), the serving certificate from the join endpoint with the
    client certificate; then the kubeconfig is rewritten. The keys are kept."""
    ca_pem = (cfg.agent_dir / "ca.crt").read_bytes()
    if cfg.agent_dir / "client.crt" in due:
        renew_client_certificate(cfg, ca_pem)
        _write_kubeconfig(cfg, ca_pem)
    if cfg.agent_dir / "serving.crt" in due:
        ctx = _client_context(cfg, ca_pem, load_or_create_key(cfg.agent_dir / "client.key"))
        if ctx is None:
            raise JoinError("the node's client certificate has expired: join again")
        _obtain_serving_certificate(cfg, ctx, None)


def _ensure_kube_proxy_credentials(cfg: AgentConfig, ca_pem: bytes, obtain: Callable[[str], bytes]) -> Path:
    """kube-proxy's own client certificate (``CN=system:kube-proxy``, k3s' kube-proxy identity) and
    kubeconfig, so that kube-proxy has ``system:node-proxier``'s rights rather than the node's."""
    d = cfg.agent_dir
    crt, key_path = d / "kube-proxy.crt", d / "kube-proxy.key"
    key = load_or_create_key(key_path)
    if not cert_still_good(crt, key, x509.load_pem_x509_certificate(ca_pem), cfg.node_name, kind="kube-proxy"):
        write_atomic(crt, obtain(join.node_csr_pem(key, cfg.node_name, "kube-proxy").decode()), 0o644)
        log.info("obtained the kube-proxy client certificate (%s)", join.KUBE_PROXY_USER)
    path = d / "kube-proxy.kubeconfig"
    write_kubeconfig(path, kubeconfig(cfg.server, ca_pem, crt.read_bytes(), key_path.read_bytes(),
                                      user=join.KUBE_PROXY_USER))
    return path


SERVER_SETTINGS = ("cloud_provider", "cluster_dns", "cluster_domain", "service_cidr", "cluster_cidr")
"""The AgentConfig fields the server's :class:`~kybernetes.join.NodeSettings` give defaults for."""


def fetch_node_settings(cfg: AgentConfig) -> join.NodeSettings | None:
    """The server's node settings, asked with the node's client certificate; None from a server
    that does not serve them (404). JoinError for an answer that is not node settings."""
    ca_pem = (cfg.agent_dir / "ca.crt").read_bytes()
    ctx = _client_context(cfg, ca_pem, load_or_create_key(cfg.agent_dir / "client.key"))
    if ctx is None:
        raise JoinError("the node's client certificate has expired: join again")
    try:
        body = _request(_url(cfg.server, join.NODE_CONFIG_PATH), ctx, headers={"Accept": "application/json"})
    except NotServed:
        log.info("the server does not hand out node settings; using the agent's own")
        return None
    try:
        return join.NodeSettings.from_json(json.loads(body))
    except ValueError as e:
        raise JoinError(f"the server's node settings: {e}") from None


def with_server_settings(cfg: AgentConfig, settings: join.NodeSettings | None) -> AgentConfig:
    """``cfg`` with the server's settings where the agent's flags did not set them (``explicit``)
    and the server says something (not ""). The cluster DNS address follows the service range it
    belongs to: an agent given its own range keeps the DNS address derived from it (or given)."""
    if settings is None:
        return cfg
    keep = set(cfg.explicit)
    if "service_cidr" in keep:
        keep.add("cluster_dns")
    changes = {name: getattr(settings, name) for name in SERVER_SETTINGS
               if name not in keep and getattr(settings, name)}
    return dataclasses.replace(cfg, **changes)


def join_with_retry(cfg: AgentConfig, cancel: threading.Event | None = None
                    ) -> tuple[Credentials, AgentConfig] | None:
    """ensure_credentials, then the server's node settings merged into ``cfg``, retrying while
    the server is unreachable; None once ``cancel`` is set."""
    delay = 1.0
    cancel = cancel or threading.Event()
    while not cancel.is_set():
        try:
            creds = ensure_credentials(cfg)
            return creds, with_server_settings(cfg, fetch_node_settings(cfg))
        except Unreachable as e:
            log.warning("cannot reach the server (%s); retrying in %.0fs", e, delay)
            cancel.wait(delay)
            delay = min(delay * 2, RETRY_MAX)
    return None
