"""``kyb agent``: join a machine to a cluster with a join token, then run its kubelet.

On start (the protocol itself is described in ``kybernetes.join``)::

    parse the token (K10<CA sha256>::node:<secret>)
    CA: DATA/agent/ca.crt if pinned by an earlier start (its hash must still be the token's),
        else GET <server>/cacerts without TLS verification, check sha256 == the token's, pin it
    client certificate (CN=system:node:N, O=system:nodes): reused if it is still good (signed by
        the pinned CA, for this node name, its key on disk, more than a third of its life left),
        else a CSR from the node's own key -> POST /kybernetes.io/v1/node-credentials
    serving certificate (kubelet port 10250, SANs: node name, host name, node IP): the same
    DATA/agent/kubelet.kubeconfig (server URL, pinned CA, client certificate)
    kube-proxy's client certificate (CN=system:kube-proxy) and DATA/agent/kube-proxy.kubeconfig
    the server's node settings (GET /kybernetes.io/v1/node-config with the client certificate:
        cloud provider, cluster DNS and domain, service and cluster CIDRs) as the defaults of the
        kubelet's and kube-proxy's flags; the agent's own flags and --kubelet-arg win, and a
        server without the endpoint (404) leaves the agent's defaults (:func:`with_server_settings`)
    run `kyb kubelet ...`, `kyb proxy ...` and `kyb network ...` (host-gw routes to the other
        nodes' pods, masquerading; ``kybernetes.proxy.network``) as children, each restarted with
        back-off if it dies

With kubeadm's ``--token ID.SECRET --discovery-token-ca-cert-hash sha256:HEX`` instead, the CA is
pinned by its public key's hash and the client certificate comes from the CSR API (see
:func:`ensure_credentials`). Running, the agent renews both certificates at client-go's jittered
deadline and restarts the kubelet and kube-proxy with them (:func:`renew_certificates`).

Restarts keep everything under ``DATA/agent`` and do not talk to the join endpoint while the
certificates are good. Renewals (a third of the lifetime left, a new node address) authenticate
with the node's still valid client certificate instead of the token, so a node comes back after
a reboot even if its token has since been revoked or expired, as with kubeadm and k3s (the token
is for joining, not for staying).

Trust: nothing is sent to the server before its CA matched the token's hash; after that every
connection verifies the server's certificate against the pinned CA, host name included. Private
keys are generated here, written 0600 in a 0700 directory, and never leave the machine. The node
password (``DATA/agent/node-password``) proves on later joins that this is the machine that first
took the node name (see ``kybernetes.join``).

Errors: a refused token, a CA that does not match the token, or a CSR the server rejects end the
agent with a message and exit status 1. An unreachable server (or a 5xx) is retried with back-off,
so agents may start before their server.

Stopping: SIGTERM/SIGINT are passed to the kubelet, which stops its containerd; the agent waits
for it (``--stop-timeout``) before it exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
from click.core import ParameterSource
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kybernetes import aiorun, join
from kybernetes.api.clusterdns import cluster_dns_ip
from kybernetes.datadir import default_agent_data_dir, netpol_table, proxy_table
from kybernetes.fileutil import write_atomic
from kybernetes.join import cert_still_good
from kybernetes.pki import kubeconfig, load_or_create_key, write_kubeconfig

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 15.0
RETRY_MAX = 30.0


class JoinError(Exception):
    """The join cannot succeed as asked (bad token, wrong CA, refused CSR): do not retry."""


class Unreachable(Exception):
    """The server did not answer (or answered 5xx): worth retrying."""


class NotServed(JoinError):
    """404: the server has no such endpoint (an older server)."""


@dataclass
class AgentConfig:
    server: str
    token: str
    data_dir: Path
    node_name: str
    node_ip: str = ""
    kubelet_port: int = 10250
    cni_bridge: str = "kyb0"
    default_pod_cidr: str = "10.42.0.0/24"
    container_runtime_endpoint: str = ""
    kubelet_args: list[str] = field(default_factory=list)
    verbose: int = 0
    stop_timeout: float = 90.0
    kube_proxy: bool = True
    flannel_backend: str = "host-gw"
    """``host-gw``: run ``kyb network`` (routes to other nodes' pod CIDRs); ``none``: do not."""
    ip_masq: bool = True
    cluster_cidr: str = "10.42.0.0/16"
    service_cidr: str = "10.43.0.0/16"
    cluster_dns: str = ""
    """The kubelet's --cluster-dns (default: the 10th address of service_cidr)."""
    cluster_domain: str = "cluster.local"
    bootstrap_token: str = ""
    """kubeadm's ``--token ID.SECRET``: join through the CSR API instead of the K10 token."""
    discovery_hash: str = ""
    """kubeadm's ``--discovery-token-ca-cert-hash sha256:HEX`` (the CA's public key) with it."""
    cloud_provider: str = ""
    """The kubelet's ``--cloud-provider`` (the server's ``external`` when it runs a cloud-controller-manager)."""
    explicit: frozenset[str] = frozenset()
    """The fields above set by the agent's own flags: the server's node settings do not replace them."""

    @property
    def agent_dir(self) -> Path:
        return self.data_dir / "agent"


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


# --- the kubelet ---------------------------------------------------------------------------------------


def kubelet_args(cfg: AgentConfig, creds: Credentials) -> list[str]:
    args = [sys.executable, "-m", "kybernetes.cli", "kubelet",
            "--kubeconfig", str(creds.kubeconfig), "--node-name", cfg.node_name,
            "--data-dir", str(cfg.data_dir), "--port", str(cfg.kubelet_port),
            "--cni-bridge", cfg.cni_bridge, "--default-pod-cidr", cfg.default_pod_cidr]
    optional = [
        ("--node-ip", cfg.node_ip),
        ("--address", cfg.node_ip),  # the API server reaches the kubelet at the node's InternalIP
        ("--container-runtime-endpoint", cfg.container_runtime_endpoint),
        ("--tls-cert-file", str(creds.serving_cert)),
        ("--tls-private-key-file", str(creds.serving_key)),
        ("--client-ca-file", str(creds.ca)),
    ]
    for flag, value in optional:
        if value:
            args += [flag, value]
    # Pods' cluster DNS, unless a --kubelet-arg says otherwise.
    given = {a.removeprefix("--").split("=", 1)[0] for a in cfg.kubelet_args}
    if "cluster-dns" not in given:
        args += ["--cluster-dns", cfg.cluster_dns or cluster_dns_ip(cfg.service_cidr)]
    if "cluster-domain" not in given:
        args += ["--cluster-domain", cfg.cluster_domain]
    if cfg.cloud_provider and "cloud-provider" not in given:
        args += ["--cloud-provider", cfg.cloud_provider]
    if cfg.verbose:
        args.append("-" + "v" * cfg.verbose)
    return args + cfg.kubelet_args


def proxy_args(cfg: AgentConfig, creds: Credentials) -> list[str]:
    """kube-proxy for this node: its own nftables table, named after the node's bridge; the node's
    name (local endpoints); its healthz on loopback, as k3s runs it."""
    args = [sys.executable, "-m", "kybernetes.cli", "proxy", "--kubeconfig", str(creds.proxy_kubeconfig),
            "--table", proxy_table(cfg.cni_bridge), "--cni-bridge", cfg.cni_bridge,
            "--cluster-cidr", cfg.cluster_cidr, "--service-cluster-ip-range", cfg.service_cidr,
            "--hostname-override", cfg.node_name, "--healthz-bind-address", "127.0.0.1:10256",
            "--network-policy-table", netpol_table(cfg.cni_bridge)]
    if cfg.verbose:
        args.append("-" + "v" * cfg.verbose)
    return args


def network_args(cfg: AgentConfig, creds: Credentials) -> list[str]:
    """The node network daemon (host-gw routes, masquerading), with kube-proxy's credentials: it
    watches every Node, which ``system:node-proxier`` may and a node (the Node authorizer: only its
    own Node object) may not."""
    args = [sys.executable, "-m", "kybernetes.cli", "network", "--kubeconfig", str(creds.proxy_kubeconfig),
            "--node-name", cfg.node_name, "--cni-bridge", cfg.cni_bridge, "--cluster-cidr", cfg.cluster_cidr,
            "--service-cluster-ip-range", cfg.service_cidr, "--ip-masq" if cfg.ip_masq else "--no-ip-masq"]
    if cfg.verbose:
        args.append("-" + "v" * cfg.verbose)
    return args


async def supervise(args: list[str], stop: asyncio.Event, stop_timeout: float, name: str = "kubelet",
                    restart: asyncio.Event | None = None) -> None:
    """Run a node component until ``stop``; restart it (1 s doubling to 30 s) if it dies meanwhile,
    and at once (stopping it first) whenever ``restart`` is set (new credentials)."""
    backoff = 1.0
    loop = asyncio.get_running_loop()
    restart = restart or asyncio.Event()
    while not stop.is_set():
        # Own session: a terminal's Ctrl-C reaches the agent only, which stops the kubelet in order.
        proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        started = loop.time()
        stopped = asyncio.create_task(stop.wait())
        exited = asyncio.create_task(proc.wait())
        restarting = asyncio.create_task(restart.wait())
        await asyncio.wait({stopped, exited, restarting}, return_when=asyncio.FIRST_COMPLETED)
        restarting.cancel()
        if stop.is_set() or restart.is_set():
            exited.cancel()
            stopped.cancel()
            await _stop_child(proc, stop_timeout)
            if stop.is_set():
                return
            restart.clear()
            log.info("restarting %s to use its renewed certificates", name)
            continue
        stopped.cancel()
        backoff = 1.0 if loop.time() - started > 60 else min(backoff * 2, RETRY_MAX)
        log.warning("%s exited with %s; restarting in %.0fs", name, proc.returncode, backoff)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)


async def _stop_child(proc: asyncio.subprocess.Process, timeout: float) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        log.error("kubelet did not stop within %.0fs; killing it (its containerd may be left running)", timeout)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def main(given: AgentConfig) -> None:
    async def go() -> None:
        stop = asyncio.Event()
        cancel = threading.Event()  # tells the join thread to give up its retries

        def on_signal() -> None:
            stop.set()
            cancel.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        # The join is blocking HTTP with retries: in a thread, so that signals are still handled.
        joined = await loop.run_in_executor(None, join_with_retry, given, cancel)
        if joined is None:
            return
        creds, cfg = joined
        log.info("node settings: cloud provider %r, cluster DNS %s (%s), services %s, pods %s",
                 cfg.cloud_provider, cfg.cluster_dns or cluster_dns_ip(cfg.service_cidr), cfg.cluster_domain,
                 cfg.service_cidr, cfg.cluster_cidr)
        args = kubelet_args(cfg, creds)
        log.info("node %s joined %s; starting the kubelet", cfg.node_name, cfg.server)
        # Renewed certificates reach the kubelet and kube-proxy by restarting them: neither reloads
        # its TLS credentials (our API client builds its TLS context once); pods keep running, as
        # containers outlive the kubelet's containerd.
        restarts = [asyncio.Event(), asyncio.Event(), asyncio.Event()]
        components = [supervise(args, stop, cfg.stop_timeout, restart=restarts[0])]
        if cfg.kube_proxy:
            components.append(supervise(proxy_args(cfg, creds), stop, 20.0, "kube-proxy", restarts[1]))
        if cfg.flannel_backend == "host-gw":
            components.append(supervise(network_args(cfg, creds), stop, 20.0, "network", restarts[2]))
        from kybernetes.kubelet.certificate import Rotation

        def renewed() -> None:
            for event in restarts:
                event.set()

        rotation = Rotation([creds.client_cert, creds.serving_cert], functools.partial(renew_certificates, cfg))
        components.append(rotation.run(stop, renewed))
        await asyncio.gather(*components)

    aiorun.run(go())


def _setup_logging(verbose: int) -> None:
    level = logging.INFO - 10 * (verbose - 1) if verbose else logging.INFO
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")


_SETTING_FLAGS = {"cluster_cidr": "cluster_cidr", "service_cluster_ip_range": "service_cidr",
                  "cluster_dns": "cluster_dns", "cluster_domain": "cluster_domain"}
"""``kyb agent``'s parameters for the server's node settings -> the AgentConfig fields."""


def explicit_settings(context: click.Context) -> frozenset[str]:
    """The AgentConfig fields of :data:`SERVER_SETTINGS` that ``kyb agent``'s command line (or
    environment) set: those the server's node settings leave alone."""
    return frozenset(field for param, field in _SETTING_FLAGS.items()
                     if context.get_parameter_source(param) not in (ParameterSource.DEFAULT, None))


@click.command("agent")
@click.option("--server", required=True, envvar="KYB_URL", help="The API server, https://HOST:PORT.")
@click.option("--token", envvar="KYB_TOKEN", default=None,
              help="Join token K10<CA hash>::node:<secret>, or a bootstrap token ID.SECRET with "
                   "--discovery-token-ca-cert-hash (or KYB_TOKEN, or --token-file).")
@click.option("--discovery-token-ca-cert-hash", "discovery_hash", default="",
              help="With a bootstrap token: sha256:<hex> of the cluster CA's public key (kubeadm's).")
@click.option("--token-file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Read the join token from this file (keeps it out of the process list).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="Default: /var/lib/kybernetes-agent as root, ~/.local/share/kybernetes-agent otherwise.")
@click.option("--node-name", default=None, help="Default: the host name, lowercased.")
@click.option("--node-ip", default="", help="Default: the address used to reach the server.")
@click.option("--kubelet-port", type=int, default=10250, show_default=True)
@click.option("--cni-bridge", default="kyb0", show_default=True)
@click.option("--default-pod-cidr", default="10.42.0.0/24", show_default=True,
              help="Pod addresses until the node's spec.podCIDR says otherwise.")
@click.option("--container-runtime-endpoint", default="", help="Use this CRI socket instead of an own containerd.")
@click.option("--kubelet-arg", multiple=True, help="Extra kubelet flag, as NAME=VALUE (k3s style).")
@click.option("--stop-timeout", type=float, default=90.0, show_default=True, hidden=True,
              help="Seconds the kubelet gets to stop before it is killed.")
@click.option("--disable-kube-proxy", is_flag=True, help="Do not run kube-proxy (Services) on this node.")
@click.option("--cluster-cidr", default="10.42.0.0/16", show_default=True, help="All pods' addresses.")
@click.option("--service-cluster-ip-range", default="10.43.0.0/16", show_default=True)
@click.option("--cluster-dns", default="", metavar="IP",
              help="The kubelet's cluster DNS server (default: the 10th address of --service-cluster-ip-range).")
@click.option("--cluster-domain", default="cluster.local", show_default=True, help="The kubelet's cluster domain.")
@click.option("--flannel-backend", type=click.Choice(["host-gw", "none"]), default="host-gw", show_default=True,
              help="Pods across nodes: host-gw routes each other node's pod CIDR via its InternalIP "
                   "(`kyb network`); none leaves the routes to something else.")
@click.option("--flannel-ipmasq/--no-flannel-ipmasq", default=True, show_default=True,
              help="Masquerade pod traffic to addresses outside the cluster and service CIDRs.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug); passed to the kubelet.")
def command(server: str, token: str | None, discovery_hash: str, token_file: Path | None, data_dir: Path | None,
            node_name: str | None,
            node_ip: str, kubelet_port: int, cni_bridge: str, default_pod_cidr: str,
            container_runtime_endpoint: str, kubelet_arg: tuple[str, ...], stop_timeout: float,
            disable_kube_proxy: bool, cluster_cidr: str, service_cluster_ip_range: str, cluster_dns: str,
            cluster_domain: str, flannel_backend: str, flannel_ipmasq: bool, verbose: int) -> None:
    """Join this machine to a cluster as a node and run its kubelet."""
    _setup_logging(verbose)
    if token_file is not None:
        token = token_file.read_text().strip()
    if not token:
        raise click.UsageError("a join token is required: --token, KYB_TOKEN or --token-file")
    bootstrap = bool(join.BOOTSTRAP_TOKEN.match(token))
    try:
        if bootstrap and not re.fullmatch(r"sha256:[0-9a-f]{64}", discovery_hash):
            raise ValueError("a bootstrap token needs --discovery-token-ca-cert-hash sha256:<64 hex digits>")
        if not bootstrap:
            join.parse_token(token)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    if not server.startswith("https://"):
        raise click.UsageError("--server must be an https:// URL")
    name = (node_name or socket.gethostname()).lower()
    if not join.valid_node_name(name):
        raise click.UsageError(f"node name {name!r} is not a DNS subdomain; pass --node-name")
    if node_ip:
        try:
            node_ip = str(ipaddress.ip_address(node_ip))
        except ValueError:
            raise click.UsageError(f"--node-ip {node_ip!r} is not an IP address") from None
    try:
        # Unless given, the DNS address is derived later, from the server's service range or ours.
        cluster_dns = str(ipaddress.ip_address(cluster_dns)) if cluster_dns else ""
        cluster_dns_ip(service_cluster_ip_range)
    except ValueError as err:
        raise click.UsageError(f"--cluster-dns: {err}") from None
    explicit = explicit_settings(click.get_current_context())
    cfg = AgentConfig(
        server=server.rstrip("/"), token="" if bootstrap else token,
        bootstrap_token=token if bootstrap else "", discovery_hash=discovery_hash, data_dir=(data_dir or default_agent_data_dir()).resolve(),
        node_name=name, node_ip=node_ip or default_node_ip(server), kubelet_port=kubelet_port,
        cni_bridge=cni_bridge, default_pod_cidr=default_pod_cidr,
        container_runtime_endpoint=container_runtime_endpoint,
        kubelet_args=[a if a.startswith("--") else f"--{a}" for a in kubelet_arg],
        kube_proxy=not disable_kube_proxy, cluster_cidr=cluster_cidr, service_cidr=service_cluster_ip_range,
        cluster_dns=cluster_dns, cluster_domain=cluster_domain.removesuffix("."),
        flannel_backend=flannel_backend, ip_masq=flannel_ipmasq,
        verbose=verbose, stop_timeout=stop_timeout, explicit=explicit,
    )
    from kybernetes.datadir import remove_pid_file, write_pid_file
    from kybernetes.kubelet.leftovers import BridgeInUse, check_bridge

    try:
        if not cfg.container_runtime_endpoint:
            check_bridge(cfg.cni_bridge, cfg.data_dir)
        write_pid_file(cfg.data_dir)
        main(cfg)
    except (JoinError, BridgeInUse) as e:
        raise click.ClickException(str(e)) from None
    finally:
        remove_pid_file(cfg.data_dir)

