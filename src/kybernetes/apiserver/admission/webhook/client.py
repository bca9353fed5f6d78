"""The HTTPS call of a webhook: where it goes, how it is verified, how long it may take.

``k8s.io/apiserver/pkg/util/webhook`` and the API server's service resolver:

* ``clientConfig.url`` is called as given; ``clientConfig.service`` (port default 443) is resolved
  to a ready endpoint by the API server itself (``apiserver/serviceresolver.py``), while TLS
  verifies the name ``<service>.<namespace>.svc``, so it works on any node without cluster
  networking;
* TLS is verified against ``caBundle`` (the system's roots when it is empty);
* the call is a POST of the AdmissionReview with ``?timeout=<n>s``, bounded by ``timeoutSeconds``.

Any failure to get an answer (no endpoint, refused, TLS, timeout, a non-2xx status, a body that
is not JSON) raises :class:`CallError`, whose message is Kubernetes' reason ("failed to call
webhook: Post "<url>": ..."); the dispatcher applies the failure policy to it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ssl
from typing import TYPE_CHECKING, Any

import orjson

from kybernetes import errors
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.admission.webhook.source import Webhook
from kybernetes.apiserver.registry.store import Registry
from kybernetes.apiserver.serviceresolver import resolve_endpoint

if TYPE_CHECKING:
    import aiohttp


class CallError(Exception):
    """The webhook could not be called or gave no usable answer (``ErrCallingWebhook``'s reason).

    ``detail`` is the cause alone (``Post "<url>": ...``), as a conversion webhook's error quotes it.
    For the metrics (the code Kubernetes' ``ErrCallingWebhook`` carries): ``status`` is the
    webhook's own non-2xx HTTP code, None when it gave none; ``no_client`` says the call could not
    even be set up (``could not get REST client``)."""

    def __init__(self, detail: str, *, prefix: str = "failed to call webhook: ", status: int | None = None,
                 no_client: bool = False) -> None:
        super().__init__(prefix + detail)
        self.detail = detail
        self.status = status
        self.no_client = no_client


_GENERIC = {
    400: "the server rejected our request for an unknown reason",
    401: "the server has asked for the client to provide credentials",
    403: "forbidden",
    404: "the server could not find the requested resource",
    405: "the server does not allow this method on the requested resource",
    409: "the server reported a conflict",
    413: "the server has rejected the request because the request is too large",
    422: "the server rejected our request due to an error in our request",
    429: "the server has received too many requests and has asked us to try again later",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted, but may still be processing the request",
}


def http_error(status: int, body: bytes) -> str:
    """What client-go makes of a non-2xx answer: a Status body's message, else
    ``NewGenericServerResponse``'s words for the code."""
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        decoded = None
    if isinstance(decoded, dict) and decoded.get("kind") == "Status" and decoded.get("message"):
        return str(decoded["message"])
    if status in _GENERIC:
        return _GENERIC[status]
    if status >= 500:
        text = body.decode("utf-8", "replace").strip()
        return f'an error on the server ("{text}") has prevented the request from succeeding'
    return f"the server responded with the status code {status} but did not return more information"


class Resolved:
    """Where one call goes: the URL Kubernetes names in messages, the address to connect to and
    the name TLS verifies."""

    def __init__(self, url: str, connect_url: str, server_hostname: str | None) -> None:
        self.url = url
        self.connect_url = connect_url
        self.server_hostname = server_hostname


class WebhookClient:
    """Calls webhooks; one connection pool, one TLS context per distinct caBundle."""

    def __init__(self, registry: Registry, catalogue: Catalogue) -> None:
        self.registry = registry
        self.catalogue = catalogue
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _ssl(self, ca_bundle: str) -> ssl.SSLContext:
        ctx = self._contexts.get(ca_bundle)
        if ctx is None:
            ctx = ssl.create_default_context()
            if ca_bundle:
                try:
                    ctx = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode("ascii", "replace"))
                except (binascii.Error, ssl.SSLError, ValueError) as e:
                    raise CallError(f"could not get REST client: unable to load root certificates: {e}",
                                    prefix="", no_client=True) from None
            self._contexts[ca_bundle] = ctx
        return ctx

    async def call(self, hook: Webhook, review: dict[str, Any]) -> Any:
        """POST ``review`` to ``hook``; the decoded JSON answer (not yet verified)."""
        return await self.post(hook.spec.get("clientConfig") or {}, hook.timeout_seconds, review)

    async def post(self, cc: dict[str, Any], timeout: int, review: dict[str, Any]) -> Any:
        """POST ``review`` to the webhook of the client config ``cc`` (an admission webhook's or a
        CRD's conversion webhook's), bounded by ``timeout`` seconds; the decoded JSON answer."""
        ctx = self._ssl(str(cc.get("caBundle") or ""))
        target = await self._resolve(cc, timeout)
        where = f'Post "{target.url}"'
        # aiohttp's client is imported on the first call: an API server without webhooks never
        # pays for it (~0.15 s of CPU at start, ~14 MB for life).
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            async with asyncio.timeout(timeout):
                async with self._session.post(
                        target.connect_url, data=orjson.dumps(review), ssl=ctx,
                        server_hostname=target.server_hostname,
                        headers={"Content-Type": "application/json", "Accept": "application/json"}) as resp:
                    body = await resp.read()
        except TimeoutError:
            raise CallError(f"{where}: context deadline exceeded") from None
        except aiohttp.ClientConnectorCertificateError as e:
            raise CallError(f"{where}: tls: failed to verify certificate: "
                            f"{e.certificate_error}") from None
        except (aiohttp.ClientError, OSError) as e:
            raise CallError(f"{where}: {e}") from None
        if not 200 <= resp.status < 300:
            raise CallError(f"{http_error(resp.status, body)}", status=resp.status)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise CallError(f"couldn't get version/kind; json parse error: {e}") from None

    async def _resolve(self, cc: dict[str, Any], timeout: int) -> Resolved:
        query = f"?timeout={timeout}s"
        url = cc.get("url")
        if url:
            return Resolved(str(url) + query, str(url) + query, None)
        svc = cc.get("service") or {}
        name, namespace = str(svc.get("name") or ""), str(svc.get("namespace") or "")
        port = int(svc.get("port") or 443)
        path = str(svc.get("path") or "")
        host = f"{name}.{namespace}.svc"
        shown = f"https://{host}:{port}{path}{query}"
        try:
            ip, target_port = await resolve_endpoint(self.registry, self.catalogue, namespace, name, port)
        except errors.StatusError as e:
            raise CallError(f'Post "{shown}": {e.message}') from None
        netloc = f"[{ip}]" if ":" in ip else ip
        return Resolved(shown, f"https://{netloc}:{target_port}{path}{query}", host)
