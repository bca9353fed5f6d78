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
    run `kyb kubelet ...` as a child, restarted with back-off if it dies

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
import datetime as dt
import hmac
import ipaddress
import json
import logging
import os
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
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kybernetes import aiorun, join
from kybernetes.datadir import default_agent_data_dir, proxy_table
from kybernetes.fileutil import write_atomic
from kybernetes.pki import kubeconfig, write_kubeconfig

log = logging.getLogger(__name__)

HTTP_TIMEOUT = 15.0
RETRY_MAX = 30.0


class JoinError(Exception):
    """The join cannot succeed as asked (bad token, wrong CA, refused CSR): do not retry."""


class Unreachable(Exception):
    """The server did not answer (or answered 5xx): worth retrying."""


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
    cluster_cidr: str = "10.42.0.0/16"
    service_cidr: str = "10.43.0.0/16"

    @property
    def agent_dir(self) -> Path:
        return self.data_dir / "agent"


# --- files -----------------------------------------------------------------------------------------


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The key at ``path``, made (0600) if missing: a renewal keeps the node's key."""
    if path.exists():
        with contextlib.suppress(ValueError, TypeError):
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                return key
    key = ec.generate_private_key(ec.SECP256R1())
    write_atomic(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()), 0o600)
    return key


def _node_password(agent_dir: Path) -> str:
    path = agent_dir / "node-password"
    if path.exists():
        pw = path.read_text().strip()
        if len(pw) >= 16:
            return pw
    pw = secrets.token_hex(24)
    write_atomic(path, pw.encode() + b"\n", 0o600)
    return pw


def _csr(key: ec.EllipticCurvePrivateKey, node: str, kind: str = "client") -> str:
    subject = join.credential_subject(kind, node)
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


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
    if cert.subject != join.credential_subject(kind, node):
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
        raise JoinError(f"{url}: HTTP {e.code}: {msg}") from None
    except ssl.SSLCertVerificationError as e:
        raise JoinError(f"the server's certificate does not verify against the pinned cluster CA: "
                        f"{e.verify_message or e}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise Unreachable(f"{url}: {reason}") from None


def fetch_ca(server: str, want_hash: str) -> bytes:
    """Trust on first use, pinned by the token: fetch unverified, accept only the token's CA."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # nothing is trusted yet; the hash check below is the trust
    pem = _request(_url(server, join.CA_PATH), ctx)
    got = join.ca_hash(pem)
    if not hmac.compare_digest(got, want_hash):
        raise JoinError(f"the cluster CA served by {server} has sha256 {got}, but the join token expects "
                        f"{want_hash}: refusing to join (wrong server, or someone in between)")
    try:
        ca = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise JoinError(f"{server} served something that is not a PEM certificate as its CA") from None
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


def ensure_credentials(cfg: AgentConfig) -> Credentials:
    """Everything the kubelet needs, from disk when still good, from the join endpoint otherwise."""
    token = join.parse_token(cfg.token)  # ValueError: the caller reports it
    d = cfg.agent_dir
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    ca_path = d / "ca.crt"
    if ca_path.exists():
        ca_pem = ca_path.read_bytes()
        if not hmac.compare_digest(join.ca_hash(ca_pem), token.ca_hash):
            raise JoinError(f"{d} belongs to a cluster whose CA hash is {join.ca_hash(ca_pem)}, but the token "
                            f"is for {token.ca_hash}: use another --data-dir, or remove {d} to join anew")
    else:
        ca_pem = fetch_ca(cfg.server, token.ca_hash)
        write_atomic(ca_path, ca_pem, 0o644)
        log.info("pinned the cluster CA (sha256 %s)", token.ca_hash)
    ca = x509.load_pem_x509_certificate(ca_pem)
    password = _node_password(d)
    client_crt, client_key_path = d / "client.crt", d / "client.key"
    key = _key(client_key_path)

    def auth() -> tuple[ssl.SSLContext, str | None]:
        # A still valid client certificate renews by itself; the token is for joining.
        ctx = pinned_context(ca_pem)
        if cert_still_good(client_crt, key, ca, cfg.node_name, renew_at=0):
            ctx.load_cert_chain(client_crt, client_key_path)
            return ctx, None
        return ctx, token.secret

    if not cert_still_good(client_crt, key, ca, cfg.node_name):
        cert = request_certificate(cfg.server, *auth(), {
            "nodeName": cfg.node_name, "kind": "client", "csr": _csr(key, cfg.node_name), "nodePassword": password})
        write_atomic(client_crt, cert, 0o644)
        log.info("obtained the client certificate for %s", join.node_user(cfg.node_name))

    addresses = sorted({cfg.node_name, socket.gethostname().lower(), cfg.node_ip} - {""})
    dns, ips = join.split_addresses(addresses)
    serving_crt, serving_key_path = d / "serving.crt", d / "serving.key"
    skey = _key(serving_key_path)
    if not cert_still_good(serving_crt, skey, ca, cfg.node_name, dns, ips):
        cert = request_certificate(cfg.server, *auth(), {
            "nodeName": cfg.node_name, "kind": "serving", "csr": _csr(skey, cfg.node_name),
            "addresses": addresses, "nodePassword": password})
        write_atomic(serving_crt, cert, 0o644)
        log.info("obtained the kubelet serving certificate for %s", ", ".join(addresses))

    kc = d / "kubelet.kubeconfig"
    write_kubeconfig(kc, kubeconfig(cfg.server, ca_pem, client_crt.read_bytes(), client_key_path.read_bytes(),
                                    user=join.node_user(cfg.node_name)))
    proxy_kc = _ensure_kube_proxy_credentials(cfg, ca_pem, lambda csr: request_certificate(cfg.server, *auth(), {
        "nodeName": cfg.node_name, "kind": "kube-proxy", "csr": csr, "nodePassword": password}))
    return Credentials(ca_path, client_crt, client_key_path, serving_crt, serving_key_path, kc, proxy_kc)


def _ensure_kube_proxy_credentials(cfg: AgentConfig, ca_pem: bytes, obtain: Callable[[str], bytes]) -> Path:
    """kube-proxy's own client certificate (``CN=system:kube-proxy``, k3s' kube-proxy identity) and
    kubeconfig, so that kube-proxy has ``system:node-proxier``'s rights rather than the node's."""
    d = cfg.agent_dir
    crt, key_path = d / "kube-proxy.crt", d / "kube-proxy.key"
    key = _key(key_path)
    if not cert_still_good(crt, key, x509.load_pem_x509_certificate(ca_pem), cfg.node_name, kind="kube-proxy"):
        write_atomic(crt, obtain(_csr(key, cfg.node_name, "kube-proxy")), 0o644)
        log.info("obtained the kube-proxy client certificate (%s)", join.KUBE_PROXY_USER)
    path = d / "kube-proxy.kubeconfig"
    write_kubeconfig(path, kubeconfig(cfg.server, ca_pem, crt.read_bytes(), key_path.read_bytes(),
                                      user=join.KUBE_PROXY_USER))
    return path


def join_with_retry(cfg: AgentConfig, cancel: threading.Event | None = None) -> Credentials | None:
    """ensure_credentials, retrying while the server is unreachable; None once ``cancel`` is set."""
    delay = 1.0
    cancel = cancel or threading.Event()
    while not cancel.is_set():
        try:
            return ensure_credentials(cfg)
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
    if cfg.verbose:
        args.append("-" + "v" * cfg.verbose)
    return args + cfg.kubelet_args


def proxy_args(cfg: AgentConfig, creds: Credentials) -> list[str]:
    """kube-proxy for this node: its own nftables table, named after the node's bridge."""
    args = [sys.executable, "-m", "kybernetes.cli", "proxy", "--kubeconfig", str(creds.proxy_kubeconfig),
            "--table", proxy_table(cfg.cni_bridge), "--cni-bridge", cfg.cni_bridge,
            "--cluster-cidr", cfg.cluster_cidr, "--service-cluster-ip-range", cfg.service_cidr]
    if cfg.verbose:
        args.append("-" + "v" * cfg.verbose)
    return args


async def supervise(args: list[str], stop: asyncio.Event, stop_timeout: float, name: str = "kubelet") -> None:
    """Run a node component until ``stop``; restart it (1 s doubling to 30 s) if it dies meanwhile."""
    backoff = 1.0
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        # Own session: a terminal's Ctrl-C reaches the agent only, which stops the kubelet in order.
        proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        started = loop.time()
        stopped = asyncio.create_task(stop.wait())
        exited = asyncio.create_task(proc.wait())
        await asyncio.wait({stopped, exited}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            exited.cancel()
            await _stop_child(proc, stop_timeout)
            return
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


def main(cfg: AgentConfig) -> None:
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
        creds = await loop.run_in_executor(None, join_with_retry, cfg, cancel)
        if creds is None:
            return
        args = kubelet_args(cfg, creds)
        log.info("node %s joined %s; starting the kubelet", cfg.node_name, cfg.server)
        components = [supervise(args, stop, cfg.stop_timeout)]
        if cfg.kube_proxy:
            components.append(supervise(proxy_args(cfg, creds), stop, 20.0, "kube-proxy"))
        await asyncio.gather(*components)

    aiorun.run(go())


def _setup_logging(verbose: int) -> None:
    level = logging.INFO - 10 * (verbose - 1) if verbose else logging.INFO
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr,
                        format="%(asctime)s %(levelname).1s %(name)s: %(message)s")


@click.command("agent")
@click.option("--server", required=True, envvar="KYB_URL", help="The API server, https://HOST:PORT.")
@click.option("--token", envvar="KYB_TOKEN", default=None,
              help="Join token K10<CA hash>::node:<secret> (or KYB_TOKEN, or --token-file).")
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
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug); passed to the kubelet.")
def command(server: str, token: str | None, token_file: Path | None, data_dir: Path | None, node_name: str | None,
            node_ip: str, kubelet_port: int, cni_bridge: str, default_pod_cidr: str,
            container_runtime_endpoint: str, kubelet_arg: tuple[str, ...], stop_timeout: float,
            disable_kube_proxy: bool, cluster_cidr: str, service_cluster_ip_range: str, verbose: int) -> None:
    """Join this machine to a cluster as a node and run its kubelet."""
    _setup_logging(verbose)
    if token_file is not None:
        token = token_file.read_text().strip()
    if not token:
        raise click.UsageError("a join token is required: --token, KYB_TOKEN or --token-file")
    try:
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
    cfg = AgentConfig(
        server=server.rstrip("/"), token=token, data_dir=(data_dir or default_agent_data_dir()).resolve(),
        node_name=name, node_ip=node_ip or default_node_ip(server), kubelet_port=kubelet_port,
        cni_bridge=cni_bridge, default_pod_cidr=default_pod_cidr,
        container_runtime_endpoint=container_runtime_endpoint,
        kubelet_args=[a if a.startswith("--") else f"--{a}" for a in kubelet_arg],
        kube_proxy=not disable_kube_proxy, cluster_cidr=cluster_cidr, service_cidr=service_cluster_ip_range,
        verbose=verbose, stop_timeout=stop_timeout,
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

