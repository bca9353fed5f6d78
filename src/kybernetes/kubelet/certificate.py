"""The node's client certificate through the CSR API: TLS bootstrap and rotation
(Kubernetes' ``pkg/kubelet/certificate/bootstrap`` and client-go's ``util/certificate``).

Blocking (urllib) on purpose: the agent runs it before its event loop has anything else to do,
or in a worker thread.

- :func:`request_client_certificate` creates a ``certificates.k8s.io/v1``
  CertificateSigningRequest for ``CN=system:node:N, O=system:nodes`` (signer
  ``kubernetes.io/kube-apiserver-client-kubelet``, usages ``digital signature`` and
  ``client auth``: the kubelet's for an ECDSA key), authenticated by a bearer token (a bootstrap
  token: the csrapproving controller's ``nodeclient`` rule) or by the client certificate loaded
  into the TLS context (renewal: ``selfnodeclient``), then polls it until it is signed, and
  returns the certificate. A Denied or Failed request raises :class:`CertificateRefused` with
  Kubernetes' message; so does a 4xx answer. No answer or a 5xx raises :class:`ServerUnavailable`.
- :func:`rotation_deadline` is client-go's: a jittered point at 70-90% of the certificate's
  lifetime (``notBefore + lifetime * (0.7 + 0.2 * random)``), so nodes do not all renew at once;
  :class:`Rotation` renews certificate files at their deadlines (the agent's certificate manager).

RBAC the requester needs (kubeadm's ``system:node-bootstrapper`` role for bootstrappers;
``system:nodes`` for renewal): ``create`` and ``get`` on
``certificates.k8s.io/certificatesigningrequests``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import json
import logging
import random
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kybernetes import join
from kybernetes.aiorun import wait_for

log = logging.getLogger(__name__)

SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CSR_PATH = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
HTTP_TIMEOUT = 15.0


class CertificateRefused(Exception):
    """The server refused the request or denied the certificate: retrying the same will not help."""


class ServerUnavailable(Exception):
    """No answer, or a 5xx: worth retrying."""


def rotation_deadline(cert: x509.Certificate, jitter: Callable[[], float] = random.random) -> dt.datetime:
    """When to renew ``cert``: at 70-90% of its lifetime, jittered (client-go's ``nextRotationDeadline``)."""
    not_before = cert.not_valid_before_utc
    lifetime = cert.not_valid_after_utc - not_before
    return not_before + lifetime * (0.7 + 0.2 * jitter())


def _call(server: str, path: str, ctx: ssl.SSLContext, token: str | None, body: object = None) -> dict[str, Any]:
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body).encode()
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(server.rstrip("/") + path, data=data, headers=headers,
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=HTTP_TIMEOUT) as resp:
            doc = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            message = str(json.loads(raw).get("message") or raw[:300])
        except (ValueError, AttributeError):
            message = raw.decode(errors="replace")[:300]
        if e.code >= 500:
            raise ServerUnavailable(f"{path}: HTTP {e.code}: {message}") from None
        raise CertificateRefused(f"{path}: HTTP {e.code}: {message}") from None
    except ssl.SSLCertVerificationError as e:
        raise CertificateRefused(f"the server's certificate does not verify: {e.verify_message or e}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ServerUnavailable(f"{path}: {getattr(e, 'reason', e)}") from None
    if not isinstance(doc, dict):
        raise ServerUnavailable(f"{path}: the answer is not a JSON object")
    return doc


def request_client_certificate(server: str, ctx: ssl.SSLContext, token: str | None,
                               key: ec.EllipticCurvePrivateKey, node: str, *, timeout: float = 3600.0,
                               poll: float = 0.5) -> bytes:
    """A client certificate for ``node`` signed through the CSR API (see the module docstring)."""
    body = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"generateName": "csr-"},
            "spec": {"request": base64.b64encode(join.node_csr_pem(key, node)).decode(), "signerName": SIGNER,
                     "usages": ["digital signature", "client auth"]}}
    created = _call(server, CSR_PATH, ctx, token, body)
    name = str((created.get("metadata") or {}).get("name", ""))
    deadline = time.monotonic() + timeout
    while True:
        csr = _call(server, f"{CSR_PATH}/{name}", ctx, token)
        status = csr.get("status") or {}
        for cond in status.get("conditions") or []:
            if cond.get("type") in ("Denied", "Failed"):
                raise CertificateRefused(f"certificate signing request {name} is {cond['type'].lower()}, "
                                         f"reason: {cond.get('reason', '')}, message: {cond.get('message', '')}")
        if status.get("certificate"):
            cert = base64.b64decode(str(status["certificate"]))
            x509.load_pem_x509_certificate(cert)  # ValueError on garbage: the caller's bug report
            return cert
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"certificate signing request {name} was not signed within {timeout:.0f}s")
        time.sleep(poll)


class Rotation:
    """client-go's certificate manager for certificates kept in files: each is renewed at its
    :func:`rotation_deadline` (drawn once per certificate, by serial number), by ``renew(due)``
    (blocking; run in a worker thread) for the paths that are due. A renewal that fails is tried
    again after a back-off (2 s doubling to 5 min); one that succeeds calls ``on_renewed`` so the
    certificates' users pick them up."""

    def __init__(self, paths: list[Path], renew: Callable[[list[Path]], None],
                 jitter: Callable[[], float] = random.random) -> None:
        self.paths = paths
        self.renew = renew
        self.jitter = jitter
        self._deadlines: dict[tuple[Path, int], dt.datetime] = {}

    def deadline(self, path: Path) -> dt.datetime:
        """When the certificate now at ``path`` is due (at once if it cannot be read)."""
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            return dt.datetime.min.replace(tzinfo=dt.UTC)
        key = (path, cert.serial_number)
        if key not in self._deadlines:
            self._deadlines = {k: v for k, v in self._deadlines.items() if k[0] != path}
            self._deadlines[key] = rotation_deadline(cert, self.jitter)
        return self._deadlines[key]

    async def run(self, stop: asyncio.Event, on_renewed: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        backoff = 2.0
        while not stop.is_set():
            now = dt.datetime.now(dt.UTC)
            wait = min((self.deadline(p) - now).total_seconds() for p in self.paths)
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await wait_for(stop.wait(), min(wait, 3600.0))  # re-checked hourly
                continue
            due = [p for p in self.paths if self.deadline(p) <= now]
            try:
                await loop.run_in_executor(None, self.renew, due)
            except Exception as e:  # keep the old certificates and try again: they may still be valid
                log.warning("renewing %s failed: %s; retrying in %.0fs", ", ".join(p.name for p in due), e, backoff)
                with contextlib.suppress(TimeoutError):
                    await wait_for(stop.wait(), backoff)
                backoff = min(backoff * 2, 300.0)
                continue
            backoff = 2.0
            log.info("renewed %s", ", ".join(p.name for p in due))
            on_renewed()
