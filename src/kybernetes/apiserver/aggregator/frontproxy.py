"""The front-proxy protocol between the aggregation layer and aggregated API servers.

kube-apiserver proxies a request to an aggregated API server as the authenticated user: it
presents its front-proxy client certificate (``--proxy-client-cert-file``, signed by
``--requestheader-client-ca-file``) and names the user in request headers, which the aggregated
server trusts only on a connection with such a certificate (k8s.io/apiserver's ``headerrequest``
authenticator, with ``--requestheader-allowed-names`` limiting the certificate's common name).

* :func:`user_headers` is client-go's ``SetAuthProxyHeaders``: ``X-Remote-User``, one
  ``X-Remote-Group`` per group, one ``X-Remote-Extra-<key>`` per extra value (the key
  percent-escaped where it is not a header token, ``%`` included); whatever the client sent under
  those names, its ``Authorization`` and its ``Impersonate-*`` headers are not passed on.
* :func:`publish` writes the ``extension-apiserver-authentication`` ConfigMap in ``kube-system``
  that kube-apiserver keeps (its ``cluster_authentication_trust_controller``): the client CA, and
  the request-header CA, allowed names and header names as JSON lists, so an aggregated server
  (metrics-server) learns whom to trust from the cluster itself.

Without ``--requestheader-*`` flags kybernetes uses its own front-proxy CA and client certificate
(``pki.PKI.front_proxy``) and kubeadm's header names, as kubeadm and k3s configure kube-apiserver.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kybernetes import errors
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.registry.request import RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.pki import FRONT_PROXY_CLIENT, PKI

CONFIGMAP_NAMESPACE, CONFIGMAP_NAME = "kube-system", "extension-apiserver-authentication"
_TOKEN_CHARS = frozenset(b"!#$&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class FrontProxyConfig:
    """``--requestheader-*`` and ``--proxy-client-*``; empty files: the server's own front-proxy PKI."""

    client_ca_file: str = ""
    allowed_names: tuple[str, ...] = ()
    username_headers: tuple[str, ...] = ("X-Remote-User",)
    group_headers: tuple[str, ...] = ("X-Remote-Group",)
    extra_headers_prefix: tuple[str, ...] = ("X-Remote-Extra-",)
    proxy_client_cert_file: str = ""
    proxy_client_key_file: str = ""
    apiservice_resync_seconds: float = 30.0
    """How often every remote APIService's availability is checked again (kube-aggregator: 30 s)."""


@dataclass(frozen=True)
class Trust:
    """The front-proxy PKI in effect: the client certificate the aggregation layer presents, and
    the request-header CA and allowed names that both the published ConfigMap and kybernetes' own
    request-header authenticator (:mod:`kybernetes.apiserver.auth.requestheader`) go by."""

    client_cert: str
    client_key: str
    ca_pem: bytes
    allowed_names: tuple[str, ...]


def resolve_trust(config: FrontProxyConfig, pki: PKI) -> Trust:
    """The flags' files where given, else the server's own front-proxy CA, its client certificate
    and ``front-proxy-client`` as the one allowed name (kubeadm's setup)."""
    cert, key = config.proxy_client_cert_file, config.proxy_client_key_file
    ca_pem, allowed = b"", config.allowed_names
    if config.client_ca_file:
        with open(config.client_ca_file, "rb") as f:
            ca_pem = f.read()
    if not (cert and key and ca_pem):
        ca, crt_path, key_path = pki.front_proxy()
        cert, key = cert or str(crt_path), key or str(key_path)
        ca_pem, allowed = ca_pem or ca.ca_pem, allowed or (FRONT_PROXY_CLIENT,)
    return Trust(cert, key, ca_pem, tuple(allowed))


def header_key_escape(key: str) -> str:
    """client-go's ``headerKeyEscape``: bytes outside the header token set (and ``%``) as ``%XX``."""
    return "".join(chr(b) if b in _TOKEN_CHARS else f"%{b:02X}" for b in key.encode())


def user_headers(user: User) -> list[tuple[str, str]]:
    """The headers that assert ``user`` to an aggregated API server."""
    out = [("X-Remote-User", user.name)]
    out += [("X-Remote-Group", g) for g in user.groups]
    for key, values in user.extra.items():
        out += [(f"X-Remote-Extra-{header_key_escape(key)}", value) for value in values]
    return out


def is_front_proxy_header(name: str, config: FrontProxyConfig) -> bool:
    """Headers a client may not pass through: credentials, impersonation, asserted identities."""
    lower = name.lower()
    if lower == "authorization" or lower.startswith("impersonate-"):
        return True
    exact = {h.lower() for h in (*config.username_headers, *config.group_headers, "x-remote-user", "x-remote-group")}
    prefixes = tuple(p.lower() for p in (*config.extra_headers_prefix, "x-remote-extra-"))
    return lower in exact or lower.startswith(prefixes)


def configmap_data(client_ca: bytes, requestheader_ca: bytes, config: FrontProxyConfig,
                   allowed_names: Iterable[str]) -> dict[str, str]:
    """The ConfigMap's data, kube-apiserver's keys and encoding (JSON string lists)."""
    def lst(values: Iterable[str]) -> str:
        return json.dumps(list(values), separators=(",", ":"))

    return {
        "client-ca-file": client_ca.decode(),
        "requestheader-allowed-names": lst(allowed_names),
        "requestheader-client-ca-file": requestheader_ca.decode(),
        "requestheader-extra-headers-prefix": lst(config.extra_headers_prefix),
        "requestheader-group-headers": lst(config.group_headers),
        "requestheader-username-headers": lst(config.username_headers),
    }


async def publish(registry: Registry, catalogue: Catalogue, data: dict[str, str], ctx: RequestContext) -> None:
    """Create or update ``kube-system/extension-apiserver-authentication`` with ``data``."""
    configmaps = catalogue.get("", "v1", "configmaps")
    assert configmaps is not None
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP_NAME, "namespace": CONFIGMAP_NAMESPACE}, "data": data}
    try:  # created first: on a fresh cluster nothing reads (and so caches) configmaps for it
        await registry.create(configmaps, CONFIGMAP_NAMESPACE, body, ctx)
        return
    except errors.AlreadyExists:
        pass
    current = await registry.get(configmaps, CONFIGMAP_NAMESPACE, CONFIGMAP_NAME)
    if current.get("data") != data:
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        await registry.update(configmaps, CONFIGMAP_NAMESPACE, CONFIGMAP_NAME, body, ctx)
