"""Where a client connects and who it is: kubeconfig files and the in-cluster service account.

A :class:`ClusterConfig` is the resolved answer for one context — server URL, how to trust the
server (CA data or file, or ``insecure-skip-tls-verify``), and how to authenticate (client
certificate and key as data or files, a bearer token, or a token file). It is plain data;
:meth:`ClusterConfig.ssl_context` turns it into an :class:`ssl.SSLContext` and
:meth:`ClusterConfig.bearer_token` yields the current token.

Guarantees:

- Relative file paths in a kubeconfig are resolved against the kubeconfig's own directory, as
  kubectl does.
- Inline key material (``client-key-data``) never lives on disk longer than the
  ``load_cert_chain`` call: it is written into a private (0700) temporary directory, loaded, and
  removed before :meth:`ssl_context` returns, because :mod:`ssl` can only read files.
- A token file is re-read when it is older than :data:`TOKEN_REFRESH` seconds in our cache, so
  rotating bound service-account tokens keep working without restarting the client.
- ``$KUBECONFIG`` may list several files (``os.pathsep``-separated); like kubectl, the first file
  that defines a name wins, and the first ``current-context`` wins.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kybernetes.api import gobytes

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REFRESH = 60.0
"""Seconds a token read from a file is trusted before the file is read again (client-go: 1 min)."""


class ConfigError(Exception):
    """The kubeconfig (or in-cluster environment) is missing or does not describe a usable cluster."""


@dataclass
class ClusterConfig:
    server: str
    ca_data: bytes | None = None
    ca_file: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    cert_data: bytes | None = None
    cert_file: str | None = None
    key_data: bytes | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    namespace: str = "default"
    """The context's namespace (or the service account's), for callers that want a default."""

    _token_cache: tuple[str, float] | None = field(default=None, repr=False, compare=False)

    def bearer_token(self) -> str | None:
        """The token to send now: the literal token, else the token file's (cached briefly)."""
        if self.token:
            return self.token
        if not self.token_file:
            return None
        now = time.monotonic()
        if self._token_cache is not None and now - self._token_cache[1] < TOKEN_REFRESH:
            return self._token_cache[0]
        try:
            tok = Path(self.token_file).read_text().strip()
        except OSError:
            # Keep using the last good token: a rotation writes a new file atomically, so a read
            # failure is more likely transient than a sign the old token stopped working.
            return self._token_cache[0] if self._token_cache else None
        self._token_cache = (tok, now)
        return tok

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for ``https`` servers (None for plain ``http``)."""
        if not self.server.startswith("https"):
            return None
        if self.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data is not None:
            ctx = ssl.create_default_context(cadata=self.ca_data.decode())
        elif self.ca_file:
            ctx = ssl.create_default_context(cafile=self.ca_file)
        else:
            ctx = ssl.create_default_context()
        if self.cert_data is not None or self.cert_file:
            _load_cert_chain(ctx, self.cert_data, self.cert_file, self.key_data, self.key_file)
        return ctx


def _load_cert_chain(ctx: ssl.SSLContext, cert_data: bytes | None, cert_file: str | None,
                     key_data: bytes | None, key_file: str | None) -> None:
    if cert_data is None and key_data is None:
        ctx.load_cert_chain(str(cert_file), key_file)
        return
    tmp = tempfile.mkdtemp(prefix="kyb-client-")  # mkdtemp makes the directory 0700
    try:
        if cert_data is not None:
            cert_file = os.path.join(tmp, "client.crt")
            _write_private(cert_file, cert_data)
        if key_data is not None:
            key_file = os.path.join(tmp, "client.key")
            _write_private(key_file, key_data)
        ctx.load_cert_chain(str(cert_file), key_file)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def default_kubeconfig_paths() -> list[Path]:
    env = os.environ.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return paths or [Path.home() / ".kube" / "config"]


def load_kubeconfig(path: str | os.PathLike[str] | None = None, *, context: str | None = None) -> ClusterConfig:
    """Resolve one context of a kubeconfig (``path``, else ``$KUBECONFIG``, else ``~/.kube/config``)."""
    paths = [Path(path)] if path is not None else default_kubeconfig_paths()
    merged: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"clusters": {}, "users": {}, "contexts": {}}
    current = ""
    found = False
    for p in paths:
        try:
            doc = yaml.safe_load(p.read_text()) or {}
        except FileNotFoundError:
            continue
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read kubeconfig {p}: {e}") from e
        found = True
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {p} is not a mapping")
        base = p.resolve().parent
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in doc.get(section) or []:
                name = entry.get("name", "")
                # First definition wins, as in kubectl's merge of several files.
                merged[section].setdefault(name, (entry.get(inner) or {}, base))
        current = current or doc.get("current-context", "")
    if not found:
        raise ConfigError(f"no kubeconfig found at {', '.join(map(str, paths))}")
    ctx_name = context or current
    if ctx_name not in merged["contexts"]:
        raise ConfigError(f"context {ctx_name!r} not found in kubeconfig")
    ctx, _ = merged["contexts"][ctx_name]
    cluster_name, user_name = ctx.get("cluster", ""), ctx.get("user", "")
    if cluster_name not in merged["clusters"]:
        raise ConfigError(f"cluster {cluster_name!r} not found in kubeconfig")
    cluster, cbase = merged["clusters"][cluster_name]
    user, ubase = merged["users"].get(user_name, ({}, cbase))
    if not cluster.get("server"):
        raise ConfigError(f"cluster {cluster_name!r} has no server")

    def rel(base: Path, value: str | None) -> str | None:
        return str(base / Path(value).expanduser()) if value else None

    return ClusterConfig(
        server=str(cluster["server"]).rstrip("/"),
        ca_data=_b64(cluster.get("certificate-authority-data")),
        ca_file=rel(cbase, cluster.get("certificate-authority")),
        insecure=bool(cluster.get("insecure-skip-tls-verify", False)),
        tls_server_name=cluster.get("tls-server-name"),
        cert_data=_b64(user.get("client-certificate-data")),
        cert_file=rel(ubase, user.get("client-certificate")),
        key_data=_b64(user.get("client-key-data")),
        key_file=rel(ubase, user.get("client-key")),
        token=user.get("token") or None,
        token_file=rel(ubase, user.get("tokenFile")),
        namespace=ctx.get("namespace") or "default",
    )


def _b64(value: str | None) -> bytes | None:
    return gobytes.decode(value) if value else None


def in_cluster_config(sa_dir: Path = SERVICE_ACCOUNT_DIR) -> ClusterConfig:
    """The config of a pod: the API server from the service env vars, the service-account token/CA."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
    token_file = sa_dir / "token"
    if not token_file.exists():
        raise ConfigError(f"not running in a cluster: {token_file} does not exist")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    ca_file = sa_dir / "ca.crt"
    try:
        namespace = (sa_dir / "namespace").read_text().strip() or "default"
    except OSError:
        namespace = "default"
    return ClusterConfig(
        server=f"https://{host}:{port}",
        ca_file=str(ca_file) if ca_file.exists() else None,
        token_file=str(token_file),
        namespace=namespace,
    )
