"""HTTPS to an aggregated API server: where a request goes, how TLS is set up, and the proxying.

kube-aggregator's ``handler_proxy.go`` and ``remote_available_controller.go``:

* the APIService's Service is resolved to a ready endpoint by the API server itself
  (:mod:`kybernetes.apiserver.serviceresolver`), TLS verifies the name ``<service>.<namespace>.svc``
  against ``caBundle`` (the system's roots when empty; nothing with ``insecureSkipTLSVerify``),
  and the API server presents its front-proxy client certificate;
* a proxied request keeps its method, path, query, body and headers, minus hop-by-hop headers
  and the client's credentials, plus the front-proxy headers naming the user
  (:func:`frontproxy.user_headers`); the answer comes back as it is, streamed when the backend
  streams it (watches), compressed or not as the backend sent it;
* an upgrade request (``Upgrade:`` exec-style streams, WebSockets) is replayed on a connection
  of its own and, once the backend answers ``101``, bytes go both ways untouched;
* an APIService that is not Available, or whose Service has no ready endpoint, gets
  ``503 service unavailable``, a backend that cannot be reached ``503`` with the error, both as
  plain text (``http.Error``), as kube-aggregator answers;
* the discovery probe of the availability controller is a GET of ``/apis/<group>/<version>``
  (``/api/v1`` for ``v1.``) as ``system:kube-aggregator`` in ``system:masters``, without
  verifying the serving certificate and within 5 seconds, as there.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import ssl
from types import ModuleType
from typing import TYPE_CHECKING

import orjson
import yarl

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.aggregator.frontproxy import FrontProxyConfig, is_front_proxy_header, user_headers
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.apiserver.serviceresolver import resolve_endpoint
from kybernetes.httpserver.messages import AnyResponse, Request, Response, StreamResponse

if TYPE_CHECKING:
    import aiohttp

AGGREGATOR = User("system:kube-aggregator", ("system:masters",))
PROBE_TIMEOUT = 5.0
FETCH_TIMEOUT = 30.0
UPGRADE_DIAL_TIMEOUT = 10.0
HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                        "upgrade", "host", "content-length", "date"))


def text_error(message: str, status: int) -> Response:
    """Go's ``http.Error``: the message and a newline as plain text."""
    return Response(text=message + "\n", status=status, headers={"X-Content-Type-Options": "nosniff"})


def discovery_path(apiservice: Obj) -> str:
    spec = apiservice.get("spec") or {}
    if apiservice["metadata"]["name"] == "v1.":
        return f"/api/{spec.get('version')}"
    return f"/apis/{spec.get('group')}/{spec.get('version')}"


class Backend:
    """Connections to aggregated API servers: one pool, one TLS context per (caBundle, insecure)."""

    def __init__(self, registry: Registry, catalogue: Catalogue, config: FrontProxyConfig,
                 client_cert: str, client_key: str) -> None:
        self.registry, self.catalogue, self.config = registry, catalogue, config
        self.client_cert, self.client_key = client_cert, client_key
        self._contexts: dict[tuple[str, bool], ssl.SSLContext] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            aiohttp = _aiohttp()
            timeout = aiohttp.ClientTimeout(total=None, connect=10.0, sock_read=None)
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout,
                                                  auto_decompress=False)
        return self._session

    def ssl_context(self, ca_bundle: str, insecure: bool) -> ssl.SSLContext:
        """The TLS client context for an APIService: verified by ``ca_bundle`` unless ``insecure``,
        presenting the front-proxy client certificate."""
        key = (ca_bundle, insecure)
        ctx = self._contexts.get(key)
        if ctx is None:
            if insecure:
                ctx = ssl.create_default_context()
                ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            elif ca_bundle:
                try:
                    ctx = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode("ascii", "replace"))
                except (binascii.Error, ssl.SSLError, ValueError) as e:
                    raise errors.InternalError(f"unable to load root certificates: {e}") from None
            else:
                ctx = ssl.create_default_context()
            ctx.load_cert_chain(self.client_cert, self.client_key)
            ctx.set_alpn_protocols(["http/1.1"])
            self._contexts[key] = ctx
        return ctx

    async def _endpoint(self, apiservice: Obj) -> tuple[str, int, str]:
        """A ready endpoint (address, port) of the APIService's Service and the name TLS verifies."""
        svc = (apiservice.get("spec") or {}).get("service") or {}
        namespace, name = str(svc.get("namespace") or ""), str(svc.get("name") or "")
        ip, port = await resolve_endpoint(self.registry, self.catalogue, namespace, name, int(svc.get("port") or 443))
        return ip, port, f"{name}.{namespace}.svc"

    async def _target(self, apiservice: Obj) -> tuple[str, str]:
        """``https://<endpoint>`` of the APIService's Service and the name TLS verifies."""
        ip, port, hostname = await self._endpoint(apiservice)
        host = f"[{ip}]" if ":" in ip else ip
        return f"https://{host}:{port}", hostname

    async def probe(self, apiservice: Obj) -> bytes:
        """The discovery check; the body on a 2xx, else an exception whose text is kube-aggregator's
        condition message (``failing or missing response from <url>: ...``)."""
        try:
            base, _ = await self._target(apiservice)
        except errors.StatusError as e:
            raise ProbeError(e.message) from None
        url = base + discovery_path(apiservice)
        headers = user_headers(AGGREGATOR)
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                async with self._http().get(url, headers=headers, ssl=self.ssl_context("", True),
                                            allow_redirects=False) as resp:
                    body = await resp.read()
        except TimeoutError:
            raise ProbeError(f'failing or missing response from {url}: Get "{url}": context deadline exceeded '
                             "(Client.Timeout exceeded while awaiting headers)") from None
        except (_aiohttp().ClientError, OSError) as e:
            raise ProbeError(f'failing or missing response from {url}: Get "{url}": {_dial_error(e)}') from None
        if not 200 <= resp.status < 300:
            raise ProbeError(f"failing or missing response from {url}: bad status from {url}: {resp.status}")
        return body

    async def fetch(self, apiservice: Obj, path: str, query: str = "") -> bytes | None:
        """A GET of ``path`` from the backend as ``system:kube-aggregator``, over verified TLS, in
        JSON; the body of a 200, else None."""
        try:
            async with asyncio.timeout(FETCH_TIMEOUT):
                resp = await self._send(apiservice, "GET", path, query, b"",
                                        [("Accept", "application/json"), *user_headers(AGGREGATOR)])
                async with resp:
                    return await resp.read() if resp.status == 200 else None
        except (errors.StatusError, _aiohttp().ClientError, OSError, TimeoutError):
            return None

    async def fetch_json(self, apiservice: Obj, path: str, query: str = "") -> Obj | None:
        body = await self.fetch(apiservice, path, query)
        try:
            doc = orjson.loads(body) if body is not None else None
        except orjson.JSONDecodeError:
            return None
        return doc if isinstance(doc, dict) else None

    async def fetch_discovery(self, apiservice: Obj) -> Obj | None:
        """The backend's ``APIResourceList`` for the APIService's group/version, or None."""
        doc = await self.fetch_json(apiservice, discovery_path(apiservice))
        return doc if doc is not None and doc.get("kind") == "APIResourceList" else None

    async def fetch_openapi(self, apiservice: Obj) -> tuple[str, bytes | None, Obj | None]:
        """The backend's OpenAPI: the v3 key of the APIService's group/version, its v3 document
        and the v2 document (each None when the backend does not serve it)."""
        key = discovery_path(apiservice).lstrip("/")
        index = await self.fetch_json(apiservice, "/openapi/v3")
        url = str(((index or {}).get("paths") or {}).get(key, {}).get("serverRelativeURL") or "")
        path, _, query = url.partition("?")
        v3 = await self.fetch(apiservice, path, query) if path.startswith("/openapi/v3/") else None
        return key, v3, await self.fetch_json(apiservice, "/openapi/v2")

    async def _send(self, apiservice: Obj, method: str, path: str, query: str, body: bytes,
                    headers: list[tuple[str, str]]) -> aiohttp.ClientResponse:
        spec = apiservice.get("spec") or {}
        ctx = self.ssl_context(str(spec.get("caBundle") or ""), bool(spec.get("insecureSkipTLSVerify")))
        base, hostname = await self._target(apiservice)
        url = base + path + (f"?{query}" if query else "")
        return await self._http().request(method, yarl.URL(url, encoded=True), data=body or None,
                                          headers=headers, ssl=ctx,
                                          server_hostname=None if spec.get("insecureSkipTLSVerify") else hostname,
                                          allow_redirects=False)

    async def proxy(self, request: Request, apiservice: Obj, user: User) -> AnyResponse:
        """Serve ``request`` from the APIService's backend as ``user``."""
        headers = [(k, v) for k, v in request.headers.items()
                   if k.lower() not in HOP_BY_HOP and not is_front_proxy_header(k, self.config)]
        headers += user_headers(user)
        if request.headers.get("Upgrade"):
            return await self._upgrade(request, apiservice, headers)
        try:
            resp = await self._send(apiservice, request.method, request.raw_path, request.query_string,
                                    request.body, headers)
        except errors.ServiceUnavailable:
            return text_error("service unavailable", 503)
        except (_aiohttp().ClientError, OSError, TimeoutError) as e:
            return text_error(f"Error trying to reach service: '{_dial_error(e)}'", 503)
        return await _relay(request, resp)


    async def _upgrade(self, request: Request, apiservice: Obj, headers: list[tuple[str, str]]) -> AnyResponse:
        """An upgrade request (exec-style streams, WebSockets): replayed to the backend with the
        upgrade headers, the user's headers set before (no round tripper adds them later, as in
        kube-aggregator), then relayed (:func:`relay_upgrade`)."""
        from kybernetes.apiserver.transport.proxy import relay_upgrade
        from kybernetes.streaming import http_upgrade

        spec = apiservice.get("spec") or {}
        insecure = bool(spec.get("insecureSkipTLSVerify"))
        ctx = self.ssl_context(str(spec.get("caBundle") or ""), insecure)
        headers += [(k, v) for k in ("Connection", "Upgrade") for v in request.headers.getall(k, [])]
        target = request.raw_path + (f"?{request.query_string}" if request.query_string else "")
        try:
            ip, port, hostname = await self._endpoint(apiservice)
            head, reader, writer = await http_upgrade(ip, port, target, headers, method=request.method, ssl=ctx,
                                                      server_hostname=None if insecure else hostname,
                                                      timeout=UPGRADE_DIAL_TIMEOUT)
        except errors.ServiceUnavailable:
            return text_error("service unavailable", 503)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as e:
            return text_error(f"Error trying to reach service: '{_dial_error(e)}'", 503)
        return await relay_upgrade(request, head, reader, writer, UPGRADE_DIAL_TIMEOUT)


async def _relay(request: Request, resp: aiohttp.ClientResponse) -> AnyResponse:
    """The backend's answer to the client: whole when its length is known, else streamed."""
    async with resp:
        headers = {k: v for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP}
        if resp.headers.get("Content-Length") is not None:
            return Response(body=await resp.read(), status=resp.status, headers=headers)
        out = StreamResponse(status=resp.status, headers=headers)
        await out.prepare(request)
        try:
            async for chunk in resp.content.iter_any():
                await out.write(chunk)
        except (_aiohttp().ClientError, ConnectionResetError):
            return out  # the client or the backend went away: the stream ends with it
        await out.write_eof()
        return out


def _dial_error(e: BaseException) -> str:
    """Go's wording for the common connection failures."""
    if isinstance(e, _aiohttp().ClientConnectorError) and e.os_error.errno == errno.ECONNREFUSED:
        return f"dial tcp {e.host}:{e.port}: connect: connection refused"
    return str(e) or type(e).__name__


def _aiohttp() -> ModuleType:
    """aiohttp, imported when a backend is first called: a server with only local APIServices never
    pays for its client (~0.15 s of CPU at start and ~14 MB for life)."""
    import aiohttp

    return aiohttp


class ProbeError(Exception):
    """The discovery check failed; the text is the Available condition's message."""

