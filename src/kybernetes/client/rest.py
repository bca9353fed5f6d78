"""The REST client: verbs on Kubernetes resources, errors as :mod:`kybernetes.errors`, and watch.

This is what client-go's ``rest`` and ``dynamic`` packages are to Kubernetes: an untyped client
that speaks the real HTTP API. Objects are plain ``dict``s decoded with orjson.

Addressing: ``api_version`` is ``"v1"`` (the legacy core group, under ``/api``) or
``"group/version"`` (under ``/apis``); ``plural`` is the resource (``"pods"``); ``namespace=""``
means a cluster-scoped resource, or "all namespaces" for list and watch.

Contract:

- **Errors.** A non-2xx answer raises the :class:`~kybernetes.errors.StatusError` subclass its
  ``Status`` names: ``reason`` picks the class where one code has several (409
  ``AlreadyExists``/``Conflict``, 410 ``Expired``/``Gone``); an unknown reason falls back to the
  class of the code, keeping the server's reason and code. A body that is not a Status (a proxy's
  HTML page, say) maps by HTTP code alone. ``details`` are kept as sent.
- **Retries.** 429 and 503 are retried for every verb (the server refused before doing
  anything); other 5xx and dropped connections are retried only for idempotent verbs (GET, PUT,
  DELETE), because a POST or PATCH that reached the server may already have been applied. A
  failure to *connect* is retried for every verb: nothing was sent. At most :data:`MAX_RETRIES`
  retries, exponential backoff with jitter, and a ``Retry-After`` header (seconds) wins over the
  computed backoff. The last error is raised.
- **Rate limit.** ``qps > 0`` turns on a client-side token bucket (``burst`` tokens, refilled at
  ``qps``); every request, including retries and watch starts, takes one token.
- **Watch.** :meth:`Client.watch` is an async iterator of :class:`WatchEvent`: one per JSON line
  of the chunked response, ``BOOKMARK`` events included. An ``ERROR`` event is raised as the
  StatusError its object describes (410 Expired when the resourceVersion is too old). The
  iterator ends when the server ends the stream (``timeoutSeconds``); a broken connection raises
  :class:`ConnectionError`. Watches are never retried here — the caller knows from which
  resourceVersion to resume (the informer does exactly that).
- **Token sources.** A client given a :class:`TokenSource` sends its token (instead of the
  config's) and, when a request, list or watch start is answered 401 Unauthorized, resets the
  source if its token is older than the request (client-go's ``ResettableTokenSource`` and its
  ``tokenSourceTransport``). That request's 401 is still raised: the caller's retry gets the new
  token. A client without one sends the config's token and does nothing on a 401.
- **List items carry their type.** The API omits ``kind``/``apiVersion`` on list items; ``list``
  fills them in from the list's own kind so that objects from a list and from a watch look alike
  (callers such as the event recorder need ``kind``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import copy
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import orjson
from multidict import CIMultiDict

from kybernetes import errors
from kybernetes.client.kubeconfig import ClusterConfig, in_cluster_config, load_kubeconfig

log = logging.getLogger(__name__)

MAX_RETRIES = 5
BACKOFF_BASE = 0.1
BACKOFF_MAX = 5.0
REQUEST_TIMEOUT = 60.0
"""Seconds a non-watch request may take in total (connect, send, receive)."""

_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}

_BY_REASON: dict[str, type[errors.StatusError]] = {
    cls.reason: cls
    for cls in (
        errors.BadRequest, errors.Unauthorized, errors.Forbidden, errors.NotFound,
        errors.MethodNotAllowed, errors.NotAcceptable, errors.AlreadyExists, errors.Conflict,
        errors.Gone, errors.Expired, errors.RequestEntityTooLarge, errors.UnsupportedMediaType,
        errors.Invalid, errors.TooManyRequests, errors.InternalError, errors.ServiceUnavailable,
        errors.Timeout,
    )
}
_BY_CODE: dict[int, type[errors.StatusError]] = {
    400: errors.BadRequest, 401: errors.Unauthorized, 403: errors.Forbidden, 404: errors.NotFound,
    405: errors.MethodNotAllowed, 406: errors.NotAcceptable, 409: errors.Conflict, 410: errors.Gone,
    413: errors.RequestEntityTooLarge, 415: errors.UnsupportedMediaType, 422: errors.Invalid,
    429: errors.TooManyRequests, 500: errors.InternalError, 503: errors.ServiceUnavailable,
    504: errors.Timeout,
}


class TokenSource(Protocol):
    """A bearer token that a 401 can invalidate (client-go's ``ResettableTokenSource``)."""

    async def token(self) -> str:
        """The token to send now (after a reset: a new one, if the source can get one)."""
        ...

    def reset_older_than(self, start: float) -> None:
        """A request that began at ``start`` (``time.monotonic()``, taken after :meth:`token`
        returned) was answered 401: drop the token if it was obtained before ``start``. A token
        obtained since then was not the one refused, so it stays."""
        ...


@dataclass
class WatchEvent:
    type: str
    """ADDED, MODIFIED, DELETED or BOOKMARK (ERROR is raised, never yielded)."""
    object: dict[str, Any]


def error_from_status(status: Any, http_code: int = 0) -> errors.StatusError:
    """The StatusError for a ``Status`` object (or any body, falling back to the HTTP code)."""
    if not isinstance(status, dict) or status.get("kind") != "Status":
        text = status.decode(errors="replace") if isinstance(status, bytes) else str(status or "")
        cls = _BY_CODE.get(http_code) or (errors.InternalError if http_code >= 500 else errors.BadRequest)
        return _make(cls, text[:1000] or f"HTTP {http_code}", None, cls.reason, http_code or cls.code)
    code = int(status.get("code") or http_code or 500)
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or reason or f"HTTP {code}")
    details = status.get("details")
    found = _BY_REASON.get(reason)
    if found is not None and found.code == code:
        cls = found
    else:
        cls = _BY_CODE.get(code) or (errors.InternalError if code >= 500 else errors.BadRequest)
    return _make(cls, message, details, reason or cls.reason, code)


def _make(cls: type[errors.StatusError], message: str, details: Any, reason: str, code: int) -> errors.StatusError:
    err: errors.StatusError
    if issubclass(cls, errors.Invalid):
        d = details if isinstance(details, dict) else {}
        err = cls(str(d.get("kind", "")), str(d.get("name", "")), list(d.get("causes") or []),
                  group=str(d.get("group", "")), message=message)
        err.details = details
    else:
        err = cls(message, details=details)
    err.reason = reason
    err.code = code
    return err


class _TokenBucket:
    """Client-side rate limit: ``burst`` tokens, refilled at ``qps`` per second; waiters queue in order."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.last = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:  # the lock makes waiters take tokens in arrival order
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.qps)
            self.last = now
            if self.tokens < 1:
                await asyncio.sleep((1 - self.tokens) / self.qps)
                self.tokens = 1.0
                self.last = time.monotonic()
            self.tokens -= 1


def resource_path(api_version: str, plural: str, namespace: str = "", name: str = "", subresource: str = "") -> str:
    """The URL path of a collection, object or subresource."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    parts = [prefix]
    if namespace:
        parts += ["namespaces", quote(namespace, safe="")]
    parts.append(plural)
    if name:
        parts.append(quote(name, safe=""))
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


class Client:
    """An untyped Kubernetes API client (one connection pool; use as ``async with``)."""

    def __init__(self, config: ClusterConfig, *, user_agent: str = "kybernetes", qps: float = 0,
                 burst: int = 0, token_source: TokenSource | None = None) -> None:
        self.config = config
        self.token_source = token_source
        """Where the bearer token comes from instead of the config (module doc, Token sources)."""
        self.user_agent = user_agent
        self._ssl = config.ssl_context()
        self._limiter = _TokenBucket(qps, burst or max(1, int(qps))) if qps > 0 else None
        # The session is made on first use: aiohttp wants a running loop, and from_kubeconfig is sync.
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._owner: Client | None = None  # an impersonating view's client (whose session it uses)
        self._impersonate: list[tuple[str, str]] = []

    def impersonating(self, user: str, groups: Sequence[str] = ()) -> Client:
        """A view of this client that acts as ``user`` in ``groups`` (``Impersonate-User`` and
        ``Impersonate-Group`` headers, as ``kubectl --as``): the API server checks that this
        client's own identity may ``impersonate`` them, then authenticates the request as them.
        The view shares this client's connections, credentials and rate limit; closing it closes
        nothing (close this client)."""
        view = copy.copy(self)
        view._owner = self._owner or self
        view._impersonate = [("Impersonate-User", user), *(("Impersonate-Group", g) for g in groups)]
        return view

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str] | None = None, *, context: str | None = None,
                        user_agent: str = "kybernetes", qps: float = 0, burst: int = 0) -> Client:
        return cls(load_kubeconfig(path, context=context), user_agent=user_agent, qps=qps, burst=burst)

    @classmethod
    def in_cluster(cls, *, user_agent: str = "kybernetes") -> Client:
        return cls(in_cluster_config(), user_agent=user_agent)

    async def close(self) -> None:
        if self._owner is not None:
            return  # a view: the session is its owner's
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._owner is not None:
            return self._owner._get_session()
        if self._closed:
            raise RuntimeError("client is closed")
        if self._session is None or self._session.closed:
            # keepalive_timeout below the server's (aiohttp: 75 s) so that we close idle pooled
            # connections first, instead of racing the server's close with a new request.
            connector = aiohttp.TCPConnector(limit=0, ssl=self._ssl if self._ssl is not None else False,
                                             keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.user_agent, "Accept": "application/json"},
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    def _headers(self, content_type: str | None = None, token: str | None = None) -> CIMultiDict[str]:
        """The request's headers; ``token``: the token source's, else the config's is sent."""
        h: CIMultiDict[str] = CIMultiDict()
        token = token or self.config.bearer_token()
        if token:
            h["Authorization"] = f"Bearer {token}"
        if content_type:
            h["Content-Type"] = content_type
        h.extend(self._impersonate)  # Impersonate-Group repeats, once per group
        return h

    async def _source_token(self) -> tuple[str | None, float]:
        """The token source's token and the request's start (for :meth:`_unauthorized`)."""
        assert self.token_source is not None
        token = await self.token_source.token()
        return token, time.monotonic()  # after token(): a token obtained by that call is older

    def _unauthorized(self, status: int, start: float) -> None:
        if status == 401 and self.token_source is not None:
            self.token_source.reset_older_than(start)

    def _request_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.config.tls_server_name:
            kw["server_hostname"] = self.config.tls_server_name
        return kw

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Any:
        """One API call with retries; the decoded JSON answer (text if it is not JSON)."""
        method = method.upper()
        data = None if body is None else body if isinstance(body, bytes | str) else orjson.dumps(body)
        url = self.config.server + path
        query = _clean_params(params)
        attempt = 0
        while True:
            if self._limiter is not None:
                await self._limiter.take()
            retry_after: float | None = None
            token, start = await self._source_token() if self.token_source is not None else (None, 0.0)
            try:
                session = self._get_session()
                async with session.request(
                    method, url, params=query, data=data,
                    headers=self._headers(content_type if data is not None else None, token),
                    timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT), **self._request_kwargs(),
                ) as resp:
                    raw = await resp.read()
                    if resp.status < 300:
                        return _decode(raw)
                    self._unauthorized(resp.status, start)
                    err = error_from_status(_decode(raw), resp.status)
                    retryable = resp.status in (429, 503) or (resp.status >= 500 and method in _IDEMPOTENT)
                    if not retryable or attempt >= MAX_RETRIES:
                        raise err
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                    log.debug("%s %s: %s, retrying", method, path, err)
            except aiohttp.ClientConnectorError as e:
                # Nothing reached the server: safe to retry any verb.
                if attempt >= MAX_RETRIES:
                    raise ConnectionError(f"{method} {url}: {e}") from e
                log.debug("%s %s: cannot connect (%s), retrying", method, path, e)
            except (TimeoutError, aiohttp.ClientError) as e:
                # The request may have been sent and applied; only idempotent verbs may go again.
                if method not in _IDEMPOTENT or attempt >= MAX_RETRIES:
                    raise ConnectionError(f"{method} {url}: {e or type(e).__name__}") from e
                log.debug("%s %s: %r, retrying", method, path, e)
            delay = retry_after if retry_after is not None else _backoff(attempt)
            attempt += 1
            await asyncio.sleep(delay)

    # -- verbs ------------------------------------------------------------------------------------

    async def get(self, api_version: str, plural: str, name: str, namespace: str = "", *,
                  subresource: str = "") -> dict[str, Any]:
        out: dict[str, Any] = await self.request(
            "GET", resource_path(api_version, plural, namespace, name, subresource))
        return out

    async def list(self, api_version: str, plural: str, namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_: str = "",
                   resource_version: str = "") -> dict[str, Any]:
        params = {"labelSelector": label_selector, "fieldSelector": field_selector,
                  "limit": limit or None, "continue": continue_, "resourceVersion": resource_version}
        out: dict[str, Any] = await self.request("GET", resource_path(api_version, plural, namespace),
                                                 params=params)
        _fill_item_types(out)
        return out

    async def list_all(self, api_version: str, plural: str, namespace: str = "", *, label_selector: str = "",
                       field_selector: str = "", page_size: int = 500) -> tuple[builtins.list[dict[str, Any]], str]:
        """Every matching object (following ``continue``) and the list's resourceVersion.

        All pages come from one snapshot. If the snapshot is compacted away between pages (410),
        the list starts over unpaginated, as client-go's pager does.
        """
        items: builtins.list[dict[str, Any]] = []
        cont = ""
        while True:
            try:
                page = await self.list(api_version, plural, namespace, label_selector=label_selector,
                                       field_selector=field_selector, limit=page_size, continue_=cont)
            except errors.Gone:
                if not cont:
                    raise
                page = await self.list(api_version, plural, namespace, label_selector=label_selector,
                                       field_selector=field_selector)
                return list(page.get("items") or []), str(page.get("metadata", {}).get("resourceVersion", ""))
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            cont = meta.get("continue") or ""
            if not cont:
                return items, str(meta.get("resourceVersion", ""))

    async def create(self, api_version: str, plural: str, obj: dict[str, Any], namespace: str = "", *,
                     subresource: str = "", name: str = "", dry_run: bool = False,
                     field_manager: str = "") -> dict[str, Any]:
        namespace = namespace or (obj.get("metadata") or {}).get("namespace", "") or ""
        params = {"dryRun": "All" if dry_run else None, "fieldManager": field_manager}
        out: dict[str, Any] = await self.request(
            "POST", resource_path(api_version, plural, namespace, name if subresource else "", subresource),
            params=params, body=obj)
        return out

    async def update(self, api_version: str, plural: str, obj: dict[str, Any], namespace: str = "", *,
                     subresource: str = "", field_manager: str = "") -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        namespace = namespace or meta.get("namespace", "") or ""
        out: dict[str, Any] = await self.request(
            "PUT", resource_path(api_version, plural, namespace, meta.get("name", ""), subresource),
            params={"fieldManager": field_manager}, body=obj)
        return out

    async def patch(self, api_version: str, plural: str, name: str, patch: Any, namespace: str = "", *,
                    patch_type: str = "merge", subresource: str = "", field_manager: str = "",
                    force: bool = False) -> dict[str, Any]:
        try:
            content_type = PATCH_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"unknown patch type {patch_type!r}; want one of {sorted(PATCH_TYPES)}") from None
        if patch_type == "apply" and not field_manager:
            raise ValueError("server-side apply needs a field_manager")
        params = {"fieldManager": field_manager, "force": "true" if force else None}
        out: dict[str, Any] = await self.request(
            "PATCH", resource_path(api_version, plural, namespace, name, subresource),
            params=params, body=patch, content_type=content_type)
        return out

    async def delete(self, api_version: str, plural: str, name: str, namespace: str = "", *,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     preconditions: dict[str, Any] | None = None) -> dict[str, Any]:
        """Delete; the answer is the deleted (or now terminating) object, or a success Status."""
        opts: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy is not None:
            opts["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            opts["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            opts["preconditions"] = preconditions
        out: dict[str, Any] = await self.request(
            "DELETE", resource_path(api_version, plural, namespace, name), body=opts)
        return out

    async def watch(self, api_version: str, plural: str, namespace: str = "", *, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "", timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True) -> AsyncIterator[WatchEvent]:
        """Stream changes after ``resource_version`` (empty: the current state as ADDED, then changes)."""
        params = _clean_params({
            "watch": "true", "resourceVersion": resource_version, "labelSelector": label_selector,
            "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": "true" if allow_bookmarks else None,
        })
        if self._limiter is not None:
            await self._limiter.take()
        url = self.config.server + resource_path(api_version, plural, namespace)
        # No total timeout: a watch lasts as long as the server keeps it. Reads may be silent for a
        # long time (no changes, bookmarks only every minute or so), so no read timeout either.
        timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_connect=30, sock_read=None)
        token, start = await self._source_token() if self.token_source is not None else (None, 0.0)
        try:
            resp_cm = self._get_session().get(url, params=params, headers=self._headers(None, token),
                                              timeout=timeout, **self._request_kwargs())
            async with resp_cm as resp:
                if resp.status >= 300:
                    self._unauthorized(resp.status, start)
                    raise error_from_status(_decode(await resp.read()), resp.status)
                buf = bytearray()
                # Split lines ourselves: StreamReader.readline caps a line at 2x its buffer size,
                # and a single object may legitimately be megabytes long.
                async for chunk in resp.content.iter_any():
                    buf += chunk
                    while True:
                        nl = buf.find(b"\n")
                        if nl < 0:
                            break
                        line = bytes(buf[:nl])
                        del buf[: nl + 1]
                        ev = _parse_event(line)
                        if ev is not None:
                            yield ev
                ev = _parse_event(bytes(buf))
                if ev is not None:
                    yield ev
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ConnectionError(f"watch {url}: {e or type(e).__name__}") from e


    @contextlib.asynccontextmanager
    async def stream(self, path: str, *, params: dict[str, Any] | None = None,
                     connect_timeout: float = 30.0) -> AsyncIterator[AsyncIterator[bytes]]:
        """GET a streaming body (``pods/log?follow=true``): ``async with client.stream(p) as chunks``.

        Entering waits for the answer's headers only: a non-2xx answer raises its StatusError there,
        a failure to connect :class:`ConnectionError`. ``chunks`` yields the body as it arrives (a
        broken connection raises :class:`ConnectionError`). Leaving the block closes the connection,
        so the server stops streaming. Never retried."""
        if self._limiter is not None:
            await self._limiter.take()
        timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_connect=connect_timeout,
                                        sock_read=None)
        token, start = await self._source_token() if self.token_source is not None else (None, 0.0)
        try:
            resp = await self._get_session().get(self.config.server + path, params=_clean_params(params),
                                                 headers=self._headers(None, token), timeout=timeout,
                                                 **self._request_kwargs())
        except (aiohttp.ClientError, TimeoutError) as e:
            raise ConnectionError(f"GET {path}: {e or type(e).__name__}") from e

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in resp.content.iter_any():
                    yield chunk
            except (aiohttp.ClientError, TimeoutError) as e:
                raise ConnectionError(f"GET {path}: {e or type(e).__name__}") from e

        try:
            if resp.status >= 300:
                self._unauthorized(resp.status, start)
                raise error_from_status(_decode(await resp.read()), resp.status)
            yield chunks()
        finally:
            resp.close()  # an unfinished body: drop the connection rather than pool it


def _parse_event(line: bytes) -> WatchEvent | None:
    line = line.strip()
    if not line:
        return None
    try:
        ev = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise errors.InternalError(f"malformed watch event: {line[:200]!r}") from e
    etype = str(ev.get("type", ""))
    obj = ev.get("object") or {}
    if etype == "ERROR":
        raise error_from_status(obj, int(obj.get("code") or 500) if isinstance(obj, dict) else 500)
    return WatchEvent(etype, obj)


def _fill_item_types(lst: dict[str, Any]) -> None:
    kind = str(lst.get("kind", ""))
    api_version = lst.get("apiVersion")
    if not kind.endswith("List") or not api_version:
        return
    item_kind = kind[: -len("List")]
    for item in lst.get("items") or ():
        if isinstance(item, dict):
            item.setdefault("kind", item_kind)
            item.setdefault("apiVersion", api_version)


def _clean_params(params: dict[str, Any] | None) -> dict[str, str]:
    """Drop unset parameters (None or ""), stringify the rest."""
    out: dict[str, str] = {}
    for k, v in (params or {}).items():
        if v is None or v == "":
            continue
        out[k] = ("true" if v else "false") if isinstance(v, bool) else str(v)
    return out


def _decode(raw: bytes) -> Any:
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


def _backoff(attempt: int) -> float:
    # Full jitter around an exponential base: spreads retries of many clients after an outage.
    d = min(BACKOFF_MAX, BACKOFF_BASE * (2**attempt))
    return d * (0.5 + random.random() / 2)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, min(float(value), 60.0))
    return None
